package web_test

import (
	"net/http"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/sdktest"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/web"
	"github.com/smsflow/smsflow/workflows"
)

// TestTaskCreateTimeZone: a workflow input never says "Local" — the zone is
// named when the task is created — and a zone that does not load is the
// API's 400 (SMS.8509), with no task and no run, not UTC in the workflow.
// The official SDK's CreateTask gets the same answers.
func TestTaskCreateTimeZone(t *testing.T) {
	t.Setenv("TZ", "Asia/Tokyo") // what "Local" means on this machine
	for _, c := range []struct {
		zone, want string
	}{
		{"Local", "Asia/Tokyo"},
		{"", "Asia/Tokyo"},
		{"Europe/Berlin", "Europe/Berlin"},
	} {
		// Subtests of their own: a repeated name would get a "#01" suffix,
		// which cuts the SQLite DSN short at the "#".
		t.Run("zone="+c.zone, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, s *store.Store) {
				eng := newFakeEngine(s)
				e := newEnvWithEngine(t, s, eng, web.TaskOptions{TimeZone: c.zone})
				createTask(t, e, e.token, taskBody("tz", register(t, e, e.token, linuxSource("tz", nextMAC()))))
				starts := eng.calls().starts
				require.Len(t, starts, 1)
				assert.Equal(t, c.want, starts[0].TimeZone, "configured %q", c.zone)
			})
		})
	}
	t.Run("zone=Mars", func(t *testing.T) {
		testdb.Each(t, func(t *testing.T, s *store.Store) {
			eng := newFakeEngine(s)
			e := newEnvWithEngine(t, s, eng, web.TaskOptions{TimeZone: "Mars/Olympus"})
			before := taskCount(t, e)
			src := register(t, e, e.token, linuxSource("tz-bad", nextMAC()))
			r := e.do("POST", "/v3/tasks", taskBody("tz-bad", src), e.token)
			params := wantError(t, r, http.StatusBadRequest, "SMS.8509")
			assert.Equal(t, []string{"Mars/Olympus"}, params)

			c := sdkClient(t, e, e.creds.AK, e.creds.SK, e.creds.ProjectID)
			_, err := c.CreateTask(&model.CreateTaskRequest{Body: &model.PostTask{
				Name: "tz-sdk", Type: model.GetPostTaskTypeEnum().MIGRATE_FILE, SourceServer: &model.SourceServerByTask{Id: src},
				TargetServer: &model.TargetServerByTask{Name: "tz-sdk-target", VmId: ""}, OsType: new(model.GetPostTaskOsTypeEnum().LINUX),
				RegionName: "region", RegionId: "region-1", ProjectName: "region", ProjectId: "p-1"}})
			sdktest.Err(t, err, http.StatusBadRequest, "SMS.8509")
			assert.Empty(t, eng.calls().starts, "no run starts")
			assert.Equal(t, before, taskCount(t, e), "no task is kept")
		})
	})
}

// TestTaskDeleteAgentGone: §4.2.3/§4.2.4 allow deleting a task whose agent
// is disconnected — a source that died mid-copy — singly, in a batch and
// through the SDK; the run is asked to delete it (it stops waiting for the
// agent and cleans up). Another tenant's task stays 404.
func TestTaskDeleteAgentGone(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		c := sdkClient(t, e, e.creds.AK, e.creds.SK, e.creds.ProjectID)
		gone := func(name string, state sms.TaskState) string {
			id, src := newSourceTask(t, e, name)
			setTask(t, e, id, map[string]any{"state": state})
			setSource(t, e, src, map[string]any{"last_visit_time": time.Now().Add(-time.Hour).UnixMilli()})
			return id
		}
		one := gone("copying", sms.TaskRunning)
		wantError(t, e.do("DELETE", "/v3/tasks/"+one, "", e.other), http.StatusNotFound, "SMS.7703")
		r := e.do("DELETE", "/v3/tasks/"+one, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)

		x, y := gone("syncing", sms.TaskSyncing), gone("running", sms.TaskRunning)
		r = e.do("POST", "/v3/tasks/delete", `{"ids":[`+q(x)+`,`+q(y)+`]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)

		viaSDK := gone("sdk", sms.TaskRunning)
		_, err := c.DeleteTask(&model.DeleteTaskRequest{TaskId: viaSDK})
		require.NoError(t, err)
		assert.Equal(t, []string{one, x, y, viaSDK}, eng.calls().deletes, "each run is told to delete its task")
	})
}

// TestTaskNoDeadEnds: a task that finished with start_target_server=false
// takes test (which starts the target); restart after a launch is refused
// (SMS.7713) rather than copying over the launched target. Both through the
// SDK's UpdateTaskStatus.
func TestTaskNoDeadEnds(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		c := sdkClient(t, e, e.creds.AK, e.creds.SK, e.creds.ProjectID)
		id, _ := newSourceTask(t, e, "later")
		op := func(o model.UpdateTaskStatusReqOperation) error {
			_, err := c.UpdateTaskStatus(&model.UpdateTaskStatusRequest{TaskId: id, Body: &model.UpdateTaskStatusReq{Operation: o}})
			return err
		}
		ops := model.GetUpdateTaskStatusReqOperationEnum()
		setTask(t, e, id, map[string]any{"state": sms.TaskMigrateSuccess, "target_started": false})
		sdktest.Err(t, op(ops.RESTART), http.StatusBadRequest, "SMS.7722", "the target never started")
		require.NoError(t, op(ops.TEST), "test launches the stopped target")
		sdktest.Err(t, op(ops.CLONE_TEST), http.StatusBadRequest, "SMS.7721", "clone_test is for continuous sync")

		setTask(t, e, id, map[string]any{"target_started": true})
		sdktest.Err(t, op(ops.RESTART), http.StatusBadRequest, "SMS.7713", "a launched target is not copied over")
		sdktest.Err(t, op(ops.TEST), http.StatusBadRequest, "SMS.7721", "launched already")
	})
}

// TestTaskCloneTestTemplate: clone_test's template_id names the clone's
// template: one of the tenant's, or 404 SMS.7101 (another tenant's alike)
// before the run is asked. clone_state takes only the SDK's values.
func TestTaskCloneTestTemplate(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		c := sdkClient(t, e, e.creds.AK, e.creds.SK, e.creds.ProjectID)
		id, _ := newSourceTask(t, e, "clone")
		mine := createTemplate(t, e, e.token, "mine")
		theirs := createTemplate(t, e, e.other, "theirs")
		clone := func(tpl string) error {
			_, err := c.UpdateTaskStatus(&model.UpdateTaskStatusRequest{TaskId: id, Body: &model.UpdateTaskStatusReq{
				Operation: model.GetUpdateTaskStatusReqOperationEnum().CLONE_TEST, TemplateId: &tpl}})
			return err
		}
		setTask(t, e, id, map[string]any{"state": sms.TaskSyncing})
		eng.set(func(f *fakeEngine) { f.inSyncLoop[id] = true })
		for _, bad := range []string{theirs, "no-such-template"} {
			sdktest.Err(t, clone(bad), http.StatusNotFound, "SMS.7101", bad)
			params := wantError(t, e.do("POST", "/v3/tasks/"+id+"/action", `{"operation":"clone_test","template_id":`+q(bad)+`}`, e.token),
				http.StatusNotFound, "SMS.7101")
			assert.Equal(t, []string{bad}, params)
		}
		assert.Empty(t, eng.calls().actions, "the run is not asked")
		require.NoError(t, clone(mine))
		calls := eng.calls().actions
		require.Len(t, calls, 1)
		assert.Equal(t, workflows.ActionRequest{Operation: sms.ActionCloneTest, TemplateID: mine}, calls[0].Req)

		// clone_state: the SDK's enum, nothing else (the SDK can only
		// send those; a raw client is refused).
		for _, st := range []string{"SUCCESS", "FAILED", "finished"} {
			wantError(t, e.do("PUT", "/v3/tasks/"+id, `{"clone_server":{"clone_state":`+q(st)+`}}`, e.token), http.StatusBadRequest, "SMS.9001", st)
		}
		_, err := c.UpdateTask(&model.UpdateTaskRequest{TaskId: id, Body: &model.PutTaskReq{CloneServer: &model.CloneServer{
			Name: new("c1"), CloneState: new(model.GetCloneServerCloneStateEnum().FINISHED)}}})
		require.NoError(t, err)
		shown, err := c.ShowTask(&model.ShowTaskRequest{TaskId: id})
		require.NoError(t, err)
		require.NotNil(t, shown.CloneServer)
		require.NotNil(t, shown.CloneServer.CloneState)
		assert.Equal(t, "FINISHED", shown.CloneServer.CloneState.Value())

		// A target's physical volumes: device_use is the SDK's enum too.
		body := `{"target_server":{"disks":[{"name":"/dev/vda","size":1,"used_size":0,"device_use":"OS",
			"physical_volumes":[{"device_use":"DATA"}]}]}}`
		setTask(t, e, id, map[string]any{"state": sms.TaskReady})
		params := wantError(t, e.do("PUT", "/v3/tasks/"+id, body, e.token), http.StatusBadRequest, "SMS.9001")
		assert.Equal(t, []string{"target_server.disks[0].physical_volumes[0].device_use"}, params)
	})
}

// TestCloneStatesAreTheSDKs: the vocabulary's clone states are the SDK's
// CloneServerCloneState enum, no more, no less.
func TestCloneStatesAreTheSDKs(t *testing.T) {
	enum := reflect.ValueOf(model.GetCloneServerCloneStateEnum())
	var sdk []string
	for i := range enum.NumField() {
		sdk = append(sdk, enum.Field(i).Interface().(model.CloneServerCloneState).Value())
	}
	var ours []string
	for _, s := range sms.CloneStates {
		ours = append(ours, string(s))
		assert.True(t, s.Valid())
	}
	assert.ElementsMatch(t, sdk, ours)
	assert.False(t, sms.CloneState("SUCCESS").Valid())
}

// TestTaskDeleteWithoutRunLeavesNoTarget: a task whose run is gone (ended
// from the Temporal UI) is deleted by the API, and the target it created is
// removed with it, as the run's own delete does: nothing is left orphaned.
func TestTaskDeleteWithoutRunLeavesNoTarget(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		ctx := t.Context()
		id, _ := newSourceTask(t, e, "orphan")
		tg, err := e.targets.Create(ctx, provider.Spec{TaskID: id, DomainID: e.creds.DomainID, Name: "orphan-target"})
		require.NoError(t, err)
		require.NoError(t, e.store.UpdateTask(ctx, tenantOf(e), id, func(task *store.Task) error {
			task.ExistServer = false // a target the task created
			task.TargetServer.VMID, task.TargetServer.Location = tg.VMID, tg.Location
			return nil
		}))
		eng.set(func(f *fakeEngine) { f.noRun[id] = true })
		wantError(t, e.do("DELETE", "/v3/tasks/"+id, "", e.other), http.StatusNotFound, "SMS.7703")
		_, err = os.Stat(tg.Location)
		require.NoError(t, err, "another tenant's delete touches nothing")
		r := e.do("DELETE", "/v3/tasks/"+id, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.False(t, taskExists(t, e, id))
		_, err = os.Stat(tg.Location)
		assert.True(t, os.IsNotExist(err), "the created target is removed: %v", err)
	})
}
