package web_test

import (
	"net/http"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/sdktest"
)

// TestSDKVocabulary reads, through the official SDK, the filters and fields
// of the spec that smsflow did not serve before (issue 13 point 5): the
// ipv6 and vm_id filters of ListServers, a task's float_ip and
// target_snapshot_id, current_task's subtask_info and log_* fields,
// ListErrorServers' target_ip, configuration-setting's migrate_type in the
// SDK's enum, a speed-limit read without rules, and the operations clear,
// skip, migration_test and start-as-sync with SMS.7715, the states
// SKIPPING, RESETING and SYNC_* and the SYNC_F_ROLLBACKING filter.
func TestSDKVocabulary(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		c := sdkClient(t, e, e.creds.AK, e.creds.SK, e.creds.ProjectID)
		withIPv6 := func(name, v6 string) string {
			return withJSON(t, linuxSource(name, nextMAC()), func(m map[string]any) { m["ipv6"] = v6 })
		}
		a := register(t, e, e.token, withIPv6("web-a", "fd00::a"))
		b := register(t, e, e.token, withIPv6("web-b", "fd00::b"))
		ta := createTask(t, e, e.token, taskBody("web-a", a))
		tb := createTask(t, e, e.token, taskBody("web-b", b))
		setTask(t, e, ta, map[string]any{"target_server": `{"id":"t-a","vm_id":"vm_a%1","name":"ta","ip":"10.9.9.9","disks":[]}`,
			"subtask_info": "MIGRATE_LINUX_FILE"})
		setTask(t, e, tb, map[string]any{"clone_server": `{"vm_id":"clone-b","name":"cb","clone_error":"","clone_state":"SUCCESS","error_msg":""}`})

		ids := func(req *model.ListServersRequest) []string {
			t.Helper()
			out, err := c.ListServers(req)
			require.NoError(t, err)
			var got []string
			for _, s := range *out.SourceServers {
				got = append(got, *s.Id)
			}
			assert.Equal(t, int32(len(got)), *out.Count)
			return got
		}
		// ipv6: the source's IPv6 address; ip, when given, is used instead.
		assert.Equal(t, []string{a}, ids(&model.ListServersRequest{Ipv6: new("fd00::a")}))
		assert.Equal(t, []string{b}, ids(&model.ListServersRequest{Ipv6: new("fd00::b")}))
		assert.Empty(t, ids(&model.ListServersRequest{Ipv6: new("fd00::c")}))
		assert.Len(t, ids(&model.ListServersRequest{Ip: new("10.0.0.1"), Ipv6: new("fd00::c")}), 2, "ip takes precedence")
		// vm_id: the platform id of the task's target or clone server,
		// matched exactly (LIKE's wildcards in it are plain characters).
		assert.Equal(t, []string{a}, ids(&model.ListServersRequest{VmId: new("vm_a%1")}))
		assert.Equal(t, []string{b}, ids(&model.ListServersRequest{VmId: new("clone-b")}))
		for _, near := range []string{"vm_a%", "vm_a", "vmxa%1", "clone", "lone-b", "ta"} {
			assert.Empty(t, ids(&model.ListServersRequest{VmId: new(near)}), near)
		}
		assert.Equal(t, []string{a}, ids(&model.ListServersRequest{VmId: new("vm_a%1"), Ipv6: new("fd00::a")}))
		assert.Empty(t, ids(&model.ListServersRequest{VmId: new("vm_a%1"), Ipv6: new("fd00::b")}))
		// Another domain's sources never match.
		r := e.do("GET", "/v3/sources?vm_id=vm_a%251", "", e.other)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.EqualValues(t, 0, r.json(t)["count"])
		r = e.do("GET", "/v3/sources?ipv6=fd00::a", "", e.other)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.EqualValues(t, 0, r.json(t)["count"])

		// float_ip: the address the agent reaches the target on.
		tk, err := c.ShowTask(&model.ShowTaskRequest{TaskId: ta})
		require.NoError(t, err)
		require.NotNil(t, tk.FloatIp)
		assert.Equal(t, "10.9.9.9", *tk.FloatIp)
		assert.Nil(t, tk.TargetSnapshotId)
		_, err = c.UpdateTask(&model.UpdateTaskRequest{TaskId: ta, Body: &model.PutTaskReq{MigrationIp: new("192.168.7.7"), SnapshotIds: new("snap-1")}})
		require.NoError(t, err)
		tk, err = c.ShowTask(&model.ShowTaskRequest{TaskId: ta})
		require.NoError(t, err)
		assert.Equal(t, "192.168.7.7", *tk.FloatIp)
		require.NotNil(t, tk.TargetSnapshotId)
		assert.Equal(t, "snap-1", *tk.TargetSnapshotId)
		tk, err = c.ShowTask(&model.ShowTaskRequest{TaskId: tb})
		require.NoError(t, err)
		assert.Nil(t, tk.FloatIp, "no target address yet")

		// current_task: subtask_info, and (in the list, whose SDK type has
		// them) the newest agent log's fields.
		src, err := c.ShowServer(&model.ShowServerRequest{SourceId: a})
		require.NoError(t, err)
		require.NotNil(t, src.CurrentTask)
		assert.Equal(t, "MIGRATE_LINUX_FILE", *src.CurrentTask.SubtaskInfo)
		current := func(id string) *model.TaskByServerSources {
			t.Helper()
			list, err := c.ListServers(&model.ListServersRequest{Id: new(id)})
			require.NoError(t, err)
			require.Len(t, *list.SourceServers, 1)
			row := (*list.SourceServers)[0]
			require.NotNil(t, row.CurrentTask)
			return row.CurrentTask
		}
		assert.Nil(t, current(a).LogUploadTime, "no log uploaded yet")
		for _, bucket := range []string{"first", "logs-a"} {
			r = e.doH("PUT", "/v3/tasks/"+ta+"/agent-log?bucket="+bucket, "agent log text",
				map[string]string{"X-Auth-Token": e.token, "Content-Type": "text/plain"})
			require.Equal(t, http.StatusOK, r.status, r.body)
		}
		cur := current(a)
		require.NotNil(t, cur.LogBucket)
		assert.Equal(t, "logs-a", *cur.LogBucket, "the newest upload")
		assert.Positive(t, *cur.LogUploadTime)
		assert.Equal(t, "/v3/tasks/"+ta+"/agent-log", *cur.LogShareUrl)
		assert.Nil(t, cur.LogExpire, "the link does not expire")
		assert.Equal(t, "MIGRATE_LINUX_FILE", *cur.SubtaskInfo)
		assert.Nil(t, current(b).LogBucket, "b's task has no log")

		// ListErrorServers: target_ip once the failed task has a target.
		setSource(t, e, a, map[string]any{"state": "error", "error_json": `{"error_code":"SMS.1801"}`})
		setSource(t, e, b, map[string]any{"state": "error"})
		errs, err := c.ListErrorServers(&model.ListErrorServersRequest{Limit: new(int32(10))})
		require.NoError(t, err)
		require.Equal(t, int32(2), *errs.Count)
		targets := map[string]*string{}
		for _, me := range *errs.MigrationErrors {
			targets[*me.SourceId] = me.TargetIp
		}
		require.NotNil(t, targets[a])
		assert.Equal(t, "10.9.9.9", *targets[a])
		assert.Nil(t, targets[b])

		// configuration-setting: migrate_type in the SDK's enum.
		cfg, err := c.ShowConfigSetting(&model.ShowConfigSettingRequest{TaskId: ta})
		require.NoError(t, err)
		assert.Equal(t, model.GetShowConfigSettingResponseMigrateTypeEnum().LINUX_MIGRATE_FILE, *cfg.MigrateType)

		// speed-limit without rules: an empty list.
		sl, err := c.ShowsSpeedLimits(&model.ShowsSpeedLimitsRequest{TaskId: ta})
		require.NoError(t, err)
		require.NotNil(t, sl.SpeedLimit)
		assert.Empty(t, *sl.SpeedLimit)

		var n int64
		require.NoError(t, e.store.DB().Model(&store.AgentLog{}).Where("task_id = ?", ta).Count(&n).Error)
		assert.Equal(t, int64(2), n)

		// The SDK's later operations, answered by the workflow's rules (the
		// fake engine applies them to the row's state), and its later
		// states read back through the SDK's enums.
		op := model.GetUpdateTaskStatusReqOperationEnum()
		act := func(state sms.TaskState, o model.UpdateTaskStatusReqOperation) error {
			t.Helper()
			setTask(t, e, tb, map[string]any{"state": state})
			_, err := c.UpdateTaskStatus(&model.UpdateTaskStatusRequest{TaskId: tb, Body: &model.UpdateTaskStatusReq{Operation: o}})
			return err
		}
		require.NoError(t, act(sms.TaskSyncFail, op.START), "a finished task syncs again")
		require.NoError(t, act(sms.TaskSyncSuccess, op.CLEAR))
		require.NoError(t, act(sms.TaskRunning, op.SKIP))
		sdktest.Err(t, act(sms.TaskSyncing, op.START), http.StatusBadRequest, "SMS.7715")
		sdktest.Err(t, act(sms.TaskRunning, op.CLEAR), http.StatusBadRequest, "SMS.8112")
		sdktest.Err(t, act(sms.TaskReady, op.SKIP), http.StatusBadRequest, "SMS.7713")
		sdktest.Err(t, act(sms.TaskMigrateSuccess, op.MIGRATION_TEST), http.StatusBadRequest, "SMS.7721")
		for _, st := range []sms.TaskState{sms.TaskSkipping, sms.TaskReseting, sms.TaskSyncSuccess, sms.TaskSyncFail} {
			setTask(t, e, tb, map[string]any{"state": st})
			shown, err := c.ShowTask(&model.ShowTaskRequest{TaskId: tb})
			require.NoError(t, err)
			assert.Equal(t, string(st), shown.State.Value())
		}
		setTask(t, e, tb, map[string]any{"state": sms.TaskReseting})
		rolling, err := c.ListTasks(&model.ListTasksRequest{State: new(model.GetListTasksRequestStateEnum().SYNC_F_ROLLBACKING)})
		require.NoError(t, err)
		require.Equal(t, int32(1), *rolling.Count, "SYNC_F_ROLLBACKING finds the RESETING task")
		assert.Equal(t, tb, *(*rolling.Tasks)[0].Id)
	})
}
