package web_test

import (
	"net/http"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/sms"
)

// TestSDKTaskOptions: the official SDK sets every task option through
// CreateTask, UpdateTask and UpdateTaskStatus, and each reaches the task's
// run (or is refused with its code).
func TestSDKTaskOptions(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		c := sdkClient(t, e, e.creds.AK, e.creds.SK, e.creds.ProjectID)
		src := register(t, e, e.token, linuxSource("web-1", nextMAC()))
		tpl := createTemplate(t, e, e.token, "clone-tpl")
		created, err := c.CreateTask(&model.CreateTaskRequest{Body: &model.PostTask{
			Name: "sdk-task", Type: model.GetPostTaskTypeEnum().MIGRATE_FILE, OsType: new(model.GetPostTaskOsTypeEnum().LINUX),
			SourceServer: &model.SourceServerByTask{Id: src}, TargetServer: &model.TargetServerByTask{},
			RegionName: "region", RegionId: "region-1", ProjectName: "region", ProjectId: "p-1",
			AutoStart: new(false), MigrationIp: new("fd00::7"), UseIpv6: new(true), UsePublicIp: new(false), Priority: new(int32(2)),
			ClonevmTemplateId: new(tpl), StartNetworkCheck: new(true), IsNeedConsistencyCheck: new(false), NeedMigrationTest: new(true),
		}})
		require.NoError(t, err)
		id := *created.Id
		starts := eng.calls().starts
		require.Len(t, starts, 1)
		in := starts[0]
		assert.False(t, in.AutoStart)
		assert.True(t, in.StartNetworkCheck)
		assert.True(t, in.SkipConsistencyCheck)
		assert.True(t, in.NeedMigrationTest)
		assert.Equal(t, int32(2), in.Priority, "the run starts with the task's priority")
		task := taskRow(t, e, id)
		assert.Equal(t, "fd00::7", task.MigrationIP)
		assert.True(t, task.UseIPv6)
		assert.False(t, task.UsePublicIP)
		assert.Equal(t, int32(2), task.Priority)
		assert.Equal(t, tpl, task.CloneVMTemplateID)
		shown, err := c.ShowTask(&model.ShowTaskRequest{TaskId: id})
		require.NoError(t, err)
		assert.True(t, *shown.NeedMigrationTest)
		assert.Equal(t, "fd00::7", *shown.MigrationIp)

		// A priority outside 0–2 and a migration_ip that is no IP are refused.
		_, err = c.CreateTask(&model.CreateTaskRequest{Body: &model.PostTask{
			Name: "bad", Type: model.GetPostTaskTypeEnum().MIGRATE_FILE, SourceServer: &model.SourceServerByTask{Id: src},
			TargetServer: &model.TargetServerByTask{}, RegionName: "r", RegionId: "r", ProjectName: "p", ProjectId: "p",
			Priority: new(int32(3))}})
		assertSDKCode(t, err, "SMS.9001")

		_, err = c.UpdateTask(&model.UpdateTaskRequest{TaskId: id, Body: &model.PutTaskReq{
			MigrationIp: new("10.0.0.7"), UseIpv6: new(false), EnterpriseProject: new("ep-1"), TargetDiskIds: new("d-1"),
			SnapshotIds: new("s-1"), ExistServer: new(false)}})
		require.NoError(t, err)
		targets := eng.calls().targets
		require.Len(t, targets, 1)
		assert.Equal(t, "ep-1", *targets[0].U.EnterpriseProject)
		assert.Equal(t, "d-1", *targets[0].U.TargetDiskIDs)
		assert.Equal(t, "s-1", *targets[0].U.SnapshotIDs)
		assert.False(t, *targets[0].U.ExistServer)
		assert.Equal(t, "10.0.0.7", taskRow(t, e, id).MigrationIP)
		_, err = c.UpdateTask(&model.UpdateTaskRequest{TaskId: id, Body: &model.PutTaskReq{MigrationIp: new("target.example")}})
		assertSDKCode(t, err, "SMS.6602")

		op := model.GetUpdateTaskStatusReqOperationEnum()
		_, err = c.UpdateTaskStatus(&model.UpdateTaskStatusRequest{TaskId: id, Body: &model.UpdateTaskStatusReq{
			Operation: op.START, SwitchHce: new(true)}})
		assertSDKCode(t, err, "SMS.9001")
		_, err = c.UpdateTaskStatus(&model.UpdateTaskStatusRequest{TaskId: id, Body: &model.UpdateTaskStatusReq{
			Operation: op.START, SwitchHce: new(false), IsNeedConsistencyCheck: new(true)}})
		require.NoError(t, err)
		acts := eng.calls().actions
		require.Len(t, acts, 1)
		assert.Equal(t, sms.ActionStart, acts[0].Req.Operation)
		assert.True(t, *acts[0].Req.ConsistencyCheck)
		assert.True(t, taskRow(t, e, id).IsNeedConsistencyCheck)

		setTask(t, e, id, map[string]any{"state": sms.TaskSyncing})
		eng.set(func(f *fakeEngine) { f.inSyncLoop[id] = true })
		_, err = c.UpdateTaskStatus(&model.UpdateTaskStatusRequest{TaskId: id, Body: &model.UpdateTaskStatusReq{Operation: op.CLONE_TEST}})
		require.NoError(t, err)
		acts = eng.calls().actions
		assert.Equal(t, tpl, acts[len(acts)-1].Req.TemplateID, "clonevm_template_id")
	})
}

func assertSDKCode(t *testing.T, err error, code string) {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if assert.ErrorAs(t, err, &se) {
		assert.Equal(t, code, se.ErrorCode, se.ErrorMessage)
		assert.Equal(t, http.StatusBadRequest, se.StatusCode)
	}
}
