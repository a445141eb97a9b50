package web_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/temporal/engine"
)

// TestTaskOptionsReachTheRun: every create option the run acts on is in
// its input; the consistency check is on unless the request turns it off.
func TestTaskOptionsReachTheRun(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		plain, _ := newSourceTask(t, e, "web-1")
		src := register(t, e, e.token, linuxSource("web-2", nextMAC()))
		opted := createTask(t, e, e.token, withJSON(t, taskBody("web-2", src), func(m map[string]any) {
			m["start_network_check"], m["need_migration_test"], m["is_need_consistency_check"] = true, true, false
		}))
		starts := eng.calls().starts
		require.Len(t, starts, 2)
		assert.Equal(t, plain, starts[0].TaskID)
		assert.False(t, starts[0].SkipConsistencyCheck, "verified by default")
		assert.False(t, starts[0].StartNetworkCheck)
		assert.False(t, starts[0].NeedMigrationTest)
		assert.Equal(t, true, e.do("GET", "/v3/tasks/"+plain, "", e.token).json(t)["is_need_consistency_check"])
		assert.Equal(t, opted, starts[1].TaskID)
		assert.True(t, starts[1].SkipConsistencyCheck)
		assert.True(t, starts[1].StartNetworkCheck)
		assert.True(t, starts[1].NeedMigrationTest)
		assert.Equal(t, false, e.do("GET", "/v3/tasks/"+opted, "", e.token).json(t)["is_need_consistency_check"])
	})
}

// TestTaskActionOptions: switch_hce is refused (smsflow cannot switch a
// target to HCE); start's is_need_consistency_check reaches the run and
// the task; clone_test without a template takes clonevm_template_id.
func TestTaskActionOptions(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		id, _ := newSourceTask(t, e, "web-1")
		r := e.do("POST", "/v3/tasks/"+id+"/action", `{"operation":"start","switch_hce":true}`, e.token)
		assert.Equal(t, []string{"switch_hce"}, wantError(t, r, http.StatusBadRequest, "SMS.9001"))
		assert.Empty(t, eng.calls().actions, "a refused option sends nothing")

		setTask(t, e, id, map[string]any{"state": sms.TaskAbort})
		r = e.do("POST", "/v3/tasks/"+id+"/action", `{"operation":"start","switch_hce":false,"is_need_consistency_check":false}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		acts := eng.calls().actions
		require.Len(t, acts, 1)
		require.NotNil(t, acts[0].Req.ConsistencyCheck)
		assert.False(t, *acts[0].Req.ConsistencyCheck)
		assert.False(t, taskRow(t, e, id).IsNeedConsistencyCheck)

		// Absent, the task keeps its setting (not the spec's default false).
		setTask(t, e, id, map[string]any{"state": sms.TaskAbort, "is_need_consistency_check": true})
		r = e.do("POST", "/v3/tasks/"+id+"/action", `{"operation":"start"}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		acts = eng.calls().actions
		assert.Nil(t, acts[1].Req.ConsistencyCheck)
		assert.True(t, taskRow(t, e, id).IsNeedConsistencyCheck)

		// clonevm_template_id: checked on create, used by clone_test.
		tpl := createTemplate(t, e, e.token, "clone-tpl")
		theirs := createTemplate(t, e, e.other, "their-tpl")
		for _, bad := range []string{"no-such-template", theirs} {
			src := register(t, e, e.token, linuxSource("web-x", nextMAC()))
			r := e.do("POST", "/v3/tasks", withJSON(t, taskBody("web-x", src), func(m map[string]any) { m["clonevm_template_id"] = bad }), e.token)
			wantError(t, r, http.StatusNotFound, "SMS.7101", bad)
			require.NoError(t, e.store.DB().Exec("DELETE FROM sources WHERE id = ?", src).Error)
		}
		src := register(t, e, e.token, linuxSource("web-3", nextMAC()))
		cl := createTask(t, e, e.token, withJSON(t, taskBody("web-3", src), func(m map[string]any) { m["clonevm_template_id"] = tpl }))
		setTask(t, e, cl, map[string]any{"state": sms.TaskSyncing})
		eng.set(func(f *fakeEngine) { f.inSyncLoop[cl] = true })
		require.Equal(t, http.StatusOK, e.do("POST", "/v3/tasks/"+cl+"/action", `{"operation":"clone_test"}`, e.token).status)
		require.Equal(t, http.StatusOK, e.do("POST", "/v3/tasks/"+cl+"/action", `{"operation":"clone_test","template_id":"`+tpl+`"}`, e.token).status)
		acts = eng.calls().actions
		require.Len(t, acts, 4)
		assert.Equal(t, tpl, acts[2].Req.TemplateID, "the task's clone template")
		assert.Equal(t, tpl, acts[3].Req.TemplateID)
	})
}

// TestTaskMigrationIP: migration_ip is the address the agent dials, so it
// must be an IP address, and an IPv6 one on a task that uses IPv6
// (SMS.6602), on create and on update.
func TestTaskMigrationIP(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		for _, tc := range []struct {
			name string
			edit func(m map[string]any)
		}{
			{"not an IP", func(m map[string]any) { m["migration_ip"] = "target.example" }},
			{"IPv4 on IPv6", func(m map[string]any) { m["migration_ip"], m["use_ipv6"] = "10.0.0.9", true }},
		} {
			src := register(t, e, e.token, linuxSource("web-x", nextMAC()))
			r := e.do("POST", "/v3/tasks", withJSON(t, taskBody("web-x", src), tc.edit), e.token)
			assert.Equal(t, []string{"migration_ip"}, wantError(t, r, http.StatusBadRequest, "SMS.6602", tc.name), tc.name)
			require.NoError(t, e.store.DB().Exec("DELETE FROM sources WHERE id = ?", src).Error)
		}
		src := register(t, e, e.token, linuxSource("web-6", nextMAC()))
		id := createTask(t, e, e.token, withJSON(t, taskBody("web-6", src), func(m map[string]any) {
			m["migration_ip"], m["use_ipv6"] = "fd00::9", true
		}))
		assert.Equal(t, "fd00::9", taskRow(t, e, id).MigrationIP)
		wantError(t, e.do("PUT", "/v3/tasks/"+id, `{"migration_ip":"10.0.0.9"}`, e.token), http.StatusBadRequest, "SMS.6602")
		r := e.do("PUT", "/v3/tasks/"+id, `{"migration_ip":"10.0.0.9","use_ipv6":false,"use_public_ip":false}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		wantError(t, e.do("PUT", "/v3/tasks/"+id, `{"use_ipv6":true}`, e.token), http.StatusBadRequest, "SMS.6602")
		task := taskRow(t, e, id)
		assert.Equal(t, "10.0.0.9", task.MigrationIP)
		assert.False(t, task.UseIPv6)
		assert.False(t, task.UsePublicIP)
	})
}

// TestTaskUpdateReachesTheRun: PUT's exist_server, target_server.vm_id,
// target_disk_ids, snapshot_ids and enterprise_project go to the running
// workflow, after the SMS.7605 check; when the run refuses (its target is
// made: SMS.7706) nothing is written; another tenant's task is 404 and its
// run hears nothing.
func TestTaskUpdateReachesTheRun(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		id, _ := newSourceTask(t, e, "web-1")
		require.NoError(t, e.targets.Assign("vm-9", e.creds.DomainID))
		r := e.do("PUT", "/v3/tasks/"+id, `{"exist_server":true,"target_server":{"vm_id":"vm-9"},"target_disk_ids":"d-1,d-2",
			"snapshot_ids":"s-1","enterprise_project":"ep-1"}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		calls := eng.calls().targets
		require.Len(t, calls, 1)
		u := calls[0].U
		assert.Equal(t, id, calls[0].TaskID)
		require.NotNil(t, u.ExistServer)
		assert.True(t, *u.ExistServer)
		assert.Equal(t, "vm-9", *u.VMID)
		assert.Equal(t, "d-1,d-2", *u.TargetDiskIDs)
		assert.Equal(t, "s-1", *u.SnapshotIDs)
		assert.Equal(t, "ep-1", *u.EnterpriseProject)
		task := taskRow(t, e, id)
		assert.Equal(t, "d-1,d-2", task.TargetServer.TargetDiskIDs)
		assert.Equal(t, "s-1", task.TargetServer.SnapshotIDs)
		assert.Equal(t, "ep-1", task.EnterpriseProjectID)

		// A server another task targets: SMS.7605, and the run hears nothing.
		other, _ := newSourceTask(t, e, "web-2")
		wantError(t, e.do("PUT", "/v3/tasks/"+other, `{"exist_server":true,"target_server":{"vm_id":"vm-9"}}`, e.token),
			http.StatusBadRequest, "SMS.7605")
		assert.Len(t, eng.calls().targets, 1)

		// The run refuses: nothing is written.
		eng.set(func(f *fakeEngine) {
			f.targetErr = engine.MapError(temporal.NewApplicationError("the task already has its target server", "SMS.7706"))
		})
		wantError(t, e.do("PUT", "/v3/tasks/"+id, `{"snapshot_ids":"s-2","name":"renamed"}`, e.token), http.StatusBadRequest, "SMS.7706")
		assert.Equal(t, "s-1", taskRow(t, e, id).TargetServer.SnapshotIDs)
		assert.NotEqual(t, "renamed", taskRow(t, e, id).Name)

		// A task without a run takes the change in its row alone.
		eng.set(func(f *fakeEngine) { f.targetErr, f.noRun[id] = nil, true })
		require.Equal(t, http.StatusOK, e.do("PUT", "/v3/tasks/"+id, `{"snapshot_ids":"s-3"}`, e.token).status)
		assert.Equal(t, "s-3", taskRow(t, e, id).TargetServer.SnapshotIDs)

		// A change the API refuses anyway never reaches the run.
		eng.set(func(f *fakeEngine) { f.noRun[id] = false })
		setTask(t, e, id, map[string]any{"state": sms.TaskRunning})
		n := len(eng.calls().targets)
		wantError(t, e.do("PUT", "/v3/tasks/"+id, `{"snapshot_ids":"s-4","type":"MIGRATE_BLOCK"}`, e.token), http.StatusBadRequest, "SMS.7712")
		assert.Len(t, eng.calls().targets, n)

		// Other fields alone do not bother the run; another tenant gets 404.
		n = len(eng.calls().targets)
		require.Equal(t, http.StatusOK, e.do("PUT", "/v3/tasks/"+id, `{"name":"renamed"}`, e.token).status)
		wantError(t, e.do("PUT", "/v3/tasks/"+id, `{"snapshot_ids":"x"}`, e.other), http.StatusNotFound, "SMS.7703")
		assert.Len(t, eng.calls().targets, n)
	})
}
