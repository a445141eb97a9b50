package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/testkit/sdktest"
)

// targetStarted reads the local provider's record of a target's launch.
func targetStarted(t *testing.T, location string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(location, "target.json"))
	require.NoError(t, err)
	var m struct {
		Started bool `json:"started"`
	}
	require.NoError(t, json.Unmarshal(b, &m))
	return m.Started
}

// TestSDKStartTargetLater: with the official SDK against the real server, a
// task created with start_target_server=false finishes with its target
// stopped; restart is refused (SMS.7722), test starts the target, and a
// restart after the launch is refused (SMS.7713), never copying over it.
func TestSDKStartTargetLater(t *testing.T) {
	s := newServer(t)
	c := sdkClient(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newAgent(t, s, "later-01")
	a.onCommand = copyAll(ctx)
	go a.run(ctx)

	created, err := c.CreateTask(&model.CreateTaskRequest{Body: &model.PostTask{
		Name: "later", Type: model.GetPostTaskTypeEnum().MIGRATE_BLOCK, OsType: new(model.GetPostTaskOsTypeEnum().LINUX),
		SourceServer: &model.SourceServerByTask{Id: a.sourceID}, TargetServer: &model.TargetServerByTask{Name: "later-target", VmId: ""},
		RegionName: "local", RegionId: "local", ProjectName: "default", ProjectId: s.creds.ProjectID,
		StartTargetServer: new(false), Syncing: new(false), ExistServer: new(false)}})
	require.NoError(t, err)
	id := *created.Id
	s.recordHistory(id, "start-target-later")
	sdkWaitState(t, s, c, id, "MIGRATE_SUCCESS", 90*time.Second)
	loc := s.task(id).TargetServer.Location
	require.NotEmpty(t, loc)
	assert.False(t, targetStarted(t, loc), "start_target_server=false leaves the target stopped")

	op := func(o model.UpdateTaskStatusReqOperation) error {
		_, err := c.UpdateTaskStatus(&model.UpdateTaskStatusRequest{TaskId: id, Body: &model.UpdateTaskStatusReq{Operation: o}})
		return err
	}
	ops := model.GetUpdateTaskStatusReqOperationEnum()
	sdktest.Err(t, op(ops.RESTART), http.StatusBadRequest, "SMS.7722", "the target never started")
	require.NoError(t, op(ops.TEST), "test launches the stopped target")
	require.Eventually(t, func() bool { return targetStarted(t, loc) }, 60*time.Second, 200*time.Millisecond, "test started the target")
	sdkWaitState(t, s, c, id, "MIGRATE_SUCCESS", 30*time.Second)
	sdktest.Err(t, op(ops.RESTART), http.StatusBadRequest, "SMS.7713", "a launched target is not copied over")
	assert.Equal(t, 1, a.count("START"), "one copy")

	_, err = c.DeleteTask(&model.DeleteTaskRequest{TaskId: id})
	require.NoError(t, err)
	waitGone(t, c, id)
}

// TestSDKDeleteAgentGone: §4.2.4 — a task whose agent is disconnected can be
// deleted. The source's agent never comes back after registering: the run
// sets the target up, then waits for the agent before the copy; a delete
// through the SDK ends that wait at once, removes the target and the task.
func TestSDKDeleteAgentGone(t *testing.T) {
	s := newServer(t, "--agent-timeout", "5s")
	c := sdkClient(t, s)
	a := newAgent(t, s, "gone-01") // registers, then never polls
	id := s.localTask("gone", "MIGRATE_BLOCK", a.sourceID, nil)
	s.recordHistory(id, "delete-agent-gone")
	var tk *model.ShowTaskResponse
	require.Eventually(t, func() bool {
		tk = sdkShow(t, c, id)
		st := subtask(tk, "FORMAT_DISK_LINUX_BLOCK")
		return tk.Connected != nil && !*tk.Connected && st != nil && st.Progress == 100
	}, 60*time.Second, 200*time.Millisecond, "the run waits for the agent before the copy")
	require.Equal(t, "RUNNING", tk.State.Value())
	loc := s.task(id).TargetServer.Location
	require.NotEmpty(t, loc)

	_, err := c.DeleteTask(&model.DeleteTaskRequest{TaskId: id})
	require.NoError(t, err, "a disconnected agent's task can be deleted")
	waitGone(t, c, id)
	_, err = os.Stat(loc)
	assert.True(t, os.IsNotExist(err), "the created target is removed")
	var src struct {
		CurrentTask *struct {
			ID string `json:"id"`
		} `json:"current_task"`
	}
	s.call("GET", "/v3/sources/"+a.sourceID, nil, &src)
	assert.True(t, src.CurrentTask == nil || src.CurrentTask.ID == "", "the source is free")
}

// waitGone waits for a deleted task to answer 404 through the SDK; the run
// deletes it within seconds, not after the agent step timeout.
func waitGone(t *testing.T, c interface {
	ShowTask(*model.ShowTaskRequest) (*model.ShowTaskResponse, error)
}, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, err := c.ShowTask(&model.ShowTaskRequest{TaskId: id})
		var se *sdkerr.ServiceResponseError
		return errors.As(err, &se) && se.StatusCode == http.StatusNotFound
	}, 20*time.Second, 200*time.Millisecond, "task %s is deleted", id)
}

// TestSDKCloneTestTemplate: clone_test's template_id through the SDK and
// the real run: a template that is not the tenant's is 404 SMS.7101 before
// the run is asked; the tenant's names the clone, whose clone_state is the
// SDK's FINISHED.
func TestSDKCloneTestTemplate(t *testing.T) {
	s := newServer(t)
	c := sdkClient(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newAgent(t, s, "clone-01")
	a.onCommand = copyAll(ctx)
	go a.run(ctx)
	tpl, err := c.CreateTemplate(&model.CreateTemplateRequest{Body: &model.CreateTemplateReq{Template: &model.TemplateRequest{
		Name: "clone-tpl", IsTemplate: new(true), Region: new("local"), Projectid: new(s.creds.ProjectID),
		TargetServerName: new("web-clone")}}})
	require.NoError(t, err)
	id := s.localTask("clone", "MIGRATE_BLOCK", a.sourceID, map[string]any{"syncing": true})
	sdkWaitState(t, s, c, id, "SYNCING", 90*time.Second)

	clone := func(tplID string) error {
		_, err := c.UpdateTaskStatus(&model.UpdateTaskStatusRequest{TaskId: id, Body: &model.UpdateTaskStatusReq{
			Operation: model.GetUpdateTaskStatusReqOperationEnum().CLONE_TEST, TemplateId: &tplID}})
		return err
	}
	sdktest.Err(t, clone("no-such-template"), http.StatusNotFound, "SMS.7101")
	// SYNCING is written just before the run enters its sync loop: retry
	// the few milliseconds it may be refused with SMS.7721.
	require.Eventually(t, func() bool { return clone(*tpl.Id) == nil }, 30*time.Second, 200*time.Millisecond)
	var shown *model.ShowTaskResponse
	require.Eventually(t, func() bool {
		shown = sdkShow(t, c, id)
		return shown.CloneServer != nil && shown.CloneServer.CloneState != nil &&
			shown.CloneServer.CloneState.Value() == "FINISHED"
	}, 60*time.Second, 200*time.Millisecond, "the clone is made")
	require.NotNil(t, shown.CloneServer.Name)
	assert.Equal(t, "web-clone", *shown.CloneServer.Name, "named by its template")
	assert.NotEmpty(t, shown.CloneServer.VmId)

	_, err = c.DeleteTask(&model.DeleteTaskRequest{TaskId: id})
	require.NoError(t, err)
	waitGone(t, c, id)
}
