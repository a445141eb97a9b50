package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/store"
)

// anyTask reads a task row of whichever tenant.
func anyTask(t *testing.T, e *env, id string) *store.Task {
	t.Helper()
	var task store.Task
	require.NoError(t, e.store.DB().Where("id = ?", id).Take(&task).Error)
	return &task
}

// existing returns a task body binding the existing server vmID.
func existing(t *testing.T, name, sourceID, vmID string) string {
	return withJSON(t, taskBody(name, sourceID), func(m map[string]any) {
		m["exist_server"] = true
		m["target_server"] = map[string]any{"vm_id": vmID}
	})
}

// TestExistingServerTenancy (issue 8, finding 1): a task binds as its
// existing server only a target of its own domain that no other task
// holds, on create and on update; another domain's target answers exactly
// like a missing one.
func TestExistingServerTenancy(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		ctx := t.Context()
		// The first domain's task, whose target the worker created.
		mine, _ := newSourceTask(t, e, "web-1")
		created, err := e.targets.Create(ctx, provider.Spec{DomainID: e.creds.DomainID, TaskID: mine, Type: "MIGRATE_FILE"})
		require.NoError(t, err)
		require.NoError(t, e.targets.Assign("free-1", e.creds.DomainID))

		// The other domain cannot bind either, whatever it knows of them.
		theirSrc := register(t, e, e.other, linuxSource("intruder", nextMAC()))
		before := taskCount(t, e)
		var bodies []string
		for _, vm := range []string{mine, "free-1", "no-such-vm"} {
			r := e.do("POST", "/v3/tasks", existing(t, "intruder", theirSrc, vm), e.other)
			params := wantError(t, r, http.StatusNotFound, "SMS.0412", vm)
			assert.Equal(t, []string{vm}, params)
			bodies = append(bodies, strings.ReplaceAll(r.body, vm, "ID"))
		}
		assert.Equal(t, bodies[2], bodies[0], "another domain's target reads like a missing one")
		assert.Equal(t, bodies[2], bodies[1])
		assert.Equal(t, before, taskCount(t, e), "no task was created")

		// Nor by update: its own task, then pointed at the first domain's.
		theirs := createTask(t, e, e.other, taskBody("intruder", theirSrc))
		for _, body := range []string{
			`{"exist_server":true,"target_server":{"vm_id":` + q(mine) + `}}`,
			`{"exist_server":true,"target_server":{"vm_id":"free-1"}}`,
		} {
			wantError(t, e.do("PUT", "/v3/tasks/"+theirs, body, e.other), http.StatusNotFound, "SMS.0412", body)
		}
		assert.Empty(t, anyTask(t, e, theirs).TargetServer.VMID, "a refused update changes nothing")

		// The first domain's own: the target its task holds is in use; a
		// free one binds.
		second := register(t, e, e.token, linuxSource("web-2", nextMAC()))
		wantError(t, e.do("POST", "/v3/tasks", existing(t, "web-2", second, mine), e.token), http.StatusBadRequest, "SMS.7605")
		bound := createTask(t, e, e.token, existing(t, "web-2", second, "free-1"))
		third := register(t, e, e.token, linuxSource("web-3", nextMAC()))
		wantError(t, e.do("POST", "/v3/tasks", existing(t, "web-3", third, "free-1"), e.token), http.StatusBadRequest, "SMS.7605")

		// The worker binds it; the task is deleted without a run: the server
		// is kept, free again for the domain, still not the other's.
		tg, err := e.targets.Create(ctx, provider.Spec{DomainID: e.creds.DomainID, TaskID: bound, ExistVM: "free-1", Type: "MIGRATE_FILE"})
		require.NoError(t, err)
		require.NoError(t, e.store.UpdateTask(ctx, tenantOf(e), bound, func(task *store.Task) error {
			task.TargetServer.Location = tg.Location
			return nil
		}))
		eng.set(func(f *fakeEngine) { f.noRun[bound] = true })
		r := e.do("DELETE", "/v3/tasks/"+bound, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.NoError(t, e.targets.CheckBind(ctx, e.creds.DomainID, "free-1", ""))
		wantError(t, e.do("POST", "/v3/tasks", existing(t, "intruder", theirSrc, "free-1"), e.other), http.StatusNotFound, "SMS.0412")
		createTask(t, e, e.token, existing(t, "web-3", third, "free-1"))

		// The first task's created target goes with it: nothing is left
		// behind for anyone to claim.
		require.NoError(t, e.targets.Delete(ctx, created))
		wantError(t, e.do("POST", "/v3/tasks", existing(t, "intruder", theirSrc, mine), e.other), http.StatusNotFound, "SMS.0412")
	})
}

// TestExistingServerNames (issue 8, finding 2): vm_id is one plain name;
// anything a provider could resolve outside its own folder is refused at
// the API with SMS.9001 naming the field, on create and on update.
func TestExistingServerNames(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		id, _ := newSourceTask(t, e, "web-1")
		other := register(t, e, e.token, linuxSource("web-2", nextMAC()))
		for _, vm := range []string{".", "..", "../targets", "/etc", id + "/root", `a\b`, "a\x00b", ".hidden", "a b",
			strings.Repeat("x", provider.MaxServerIDLen+1)} {
			r := e.do("POST", "/v3/tasks", existing(t, "web-2", other, vm), e.token)
			assert.Equal(t, []string{"target_server.vm_id"}, wantError(t, r, http.StatusBadRequest, "SMS.9001", vm), vm)
			r = e.do("PUT", "/v3/tasks/"+id, `{"exist_server":true,"target_server":{"vm_id":`+q(vm)+`}}`, e.token)
			assert.Equal(t, []string{"target_server.vm_id"}, wantError(t, r, http.StatusBadRequest, "SMS.9001", vm), vm)
		}
		assert.Empty(t, taskRow(t, e, id).TargetServer.VMID)
		// The longest plain name passes the check (and is then not found).
		r := e.do("POST", "/v3/tasks", existing(t, "web-2", other, strings.Repeat("x", provider.MaxServerIDLen)), e.token)
		wantError(t, r, http.StatusNotFound, "SMS.0412")
	})
}

// TestTaskUpdateTemplateTenancy (issue 8, finding 5): an update refuses
// another domain's template as create does.
func TestTaskUpdateTemplateTenancy(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		r := e.do("POST", "/v3/vm/templates", specTemplate, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		tpl := r.json(t)["id"].(string)
		src := register(t, e, e.other, linuxSource("intruder", nextMAC()))
		theirs := createTask(t, e, e.other, taskBody("intruder", src))
		for _, id := range []string{tpl, "no-such-template"} {
			params := wantError(t, e.do("PUT", "/v3/tasks/"+theirs, `{"vm_template_id":`+q(id)+`}`, e.other), http.StatusNotFound, "SMS.7101")
			assert.Equal(t, []string{id}, params)
		}
		assert.Empty(t, anyTask(t, e, theirs).VMTemplateID)
		mine, _ := newSourceTask(t, e, "web-1")
		r = e.do("PUT", "/v3/tasks/"+mine, `{"vm_template_id":`+q(tpl)+`}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
	})
}
