package web_test

import (
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/taskcert"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/layout"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/testkit/testutil"
	"github.com/smsflow/smsflow/web"
	"github.com/smsflow/smsflow/workflows"
)

// fakeEngine stands in for engine.Engine. It records every call and, like
// the workflow's Update validators, judges actions and deletes with
// workflows.ValidateAction / ValidateDelete on the task's state: the row's,
// or the workflow's own when a test sets one that differs.
type fakeEngine struct {
	db *store.Store

	mu         sync.Mutex
	starts     []workflows.Input
	actions    []actionCall
	deletes    []string
	progress   []progressCall
	speeds     []speedCall
	results    []string
	targets    []targetCall
	targetErr  error                    // Target fails with it
	startErr   error                    // Start fails with it
	callErr    error                    // Progress and SpeedRules fail with it
	noRun      map[string]bool          // tasks whose workflow is gone (engine.ErrNoRun)
	wfState    map[string]sms.TaskState // the workflow's state, where it differs from the row's
	inSyncLoop map[string]bool
	uiBase     string
}

type actionCall struct {
	TaskID string
	Req    workflows.ActionRequest
}

type progressCall struct {
	TaskID string
	P      workflows.Progress
}

type speedCall struct {
	TaskID string
	U      workflows.SpeedUpdate
}

var _ web.TaskEngine = (*fakeEngine)(nil)

func newFakeEngine(s *store.Store) *fakeEngine {
	return &fakeEngine{db: s, noRun: map[string]bool{}, wfState: map[string]sms.TaskState{},
		inSyncLoop: map[string]bool{}, uiBase: "http://temporal.test"}
}

// set changes the fake's behaviour under its lock.
func (f *fakeEngine) set(fn func(f *fakeEngine)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// engineCalls is a copy of what the fake was asked so far.
type engineCalls struct {
	starts   []workflows.Input
	actions  []actionCall
	deletes  []string
	progress []progressCall
	speeds   []speedCall
	targets  []targetCall
}

func (f *fakeEngine) calls() engineCalls {
	f.mu.Lock()
	defer f.mu.Unlock()
	return engineCalls{starts: slices.Clone(f.starts), actions: slices.Clone(f.actions), deletes: slices.Clone(f.deletes),
		progress: slices.Clone(f.progress), speeds: slices.Clone(f.speeds), targets: slices.Clone(f.targets)}
}

// workflowState is what the task's workflow knows: its state (the row's
// unless overridden) and whether its target started.
func (f *fakeEngine) workflowState(ctx context.Context, taskID string) (sms.TaskState, bool, error) {
	f.mu.Lock()
	override := f.wfState[taskID]
	f.mu.Unlock()
	var task store.Task
	if err := f.db.DB().WithContext(ctx).Select("id", "state", "target_started").Where("id = ?", taskID).Take(&task).Error; err != nil {
		return "", false, fmt.Errorf("fake engine: task %s: %w", taskID, err)
	}
	if override != "" {
		task.State = override
	}
	return task.State, task.TargetStarted, nil
}

// errNoRun is what the real engine answers for a closed or missing run.
func errNoRun(taskID string) error {
	return fmt.Errorf("%w: workflow %s not found", engine.ErrNoRun, workflows.MigrationWorkflowID(taskID))
}

func (f *fakeEngine) Start(_ context.Context, in workflows.Input) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, in)
	return f.startErr
}

func (f *fakeEngine) Action(ctx context.Context, taskID string, req workflows.ActionRequest) error {
	f.mu.Lock()
	f.actions = append(f.actions, actionCall{taskID, req})
	gone, loop := f.noRun[taskID], f.inSyncLoop[taskID]
	f.mu.Unlock()
	if gone {
		return errNoRun(taskID)
	}
	state, started, err := f.workflowState(ctx, taskID)
	if err != nil {
		return err
	}
	return engine.MapError(workflows.ValidateAction(state, loop, started, req))
}

func (f *fakeEngine) Delete(ctx context.Context, taskID string) error {
	f.mu.Lock()
	f.deletes = append(f.deletes, taskID)
	gone := f.noRun[taskID]
	f.mu.Unlock()
	if gone {
		return errNoRun(taskID)
	}
	state, _, err := f.workflowState(ctx, taskID)
	if err != nil {
		return err
	}
	return engine.MapError(workflows.ValidateDelete(state))
}

func (f *fakeEngine) Progress(_ context.Context, taskID string, p workflows.Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.progress = append(f.progress, progressCall{taskID, p})
	if f.noRun[taskID] {
		return errNoRun(taskID)
	}
	return f.callErr
}

func (f *fakeEngine) CommandResult(_ context.Context, taskID string, r workflows.CommandResult) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results = append(f.results, taskID+":"+string(r.Command))
	return nil
}

func (f *fakeEngine) SpeedRules(_ context.Context, taskID string, u workflows.SpeedUpdate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.speeds = append(f.speeds, speedCall{taskID, u})
	if f.noRun[taskID] {
		return errNoRun(taskID)
	}
	return f.callErr
}

// Target records a target update and answers targetErr (the workflow's
// validator is tested in workflows).
func (f *fakeEngine) Target(_ context.Context, taskID string, u workflows.TargetUpdate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets = append(f.targets, targetCall{taskID, u})
	if f.noRun[taskID] {
		return errNoRun(taskID)
	}
	return f.targetErr
}

type targetCall struct {
	TaskID string
	U      workflows.TargetUpdate
}

func (f *fakeEngine) RunURL(taskID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.uiBase == "" {
		return ""
	}
	return f.uiBase + "/workflows/" + workflows.MigrationWorkflowID(taskID)
}

var taskOpts = web.TaskOptions{TimeZone: "Asia/Shanghai", SyncInterval: 3 * time.Minute, AgentStepTimeout: 10 * time.Minute}

// eachTask runs fn on every database with an API driving tasks through a
// fake engine.
func eachTask(t *testing.T, fn func(t *testing.T, e *env, eng *fakeEngine)) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		eng := newFakeEngine(s)
		fn(t, newEnvWithEngine(t, s, eng, taskOpts), eng)
	})
}

var macSeq atomic.Int32

// nextMAC is a MAC no other test source has: a new machine each time.
func nextMAC() string {
	n := macSeq.Add(1)
	return fmt.Sprintf("fa:16:3e:20:%02x:%02x", (n>>8)&0xff, n&0xff)
}

// taskBody is a valid create body for a source (file-level, Linux).
func taskBody(name, sourceID string) string {
	return `{"name":` + q(name) + `,"type":"MIGRATE_FILE","os_type":"LINUX","source_server":{"id":` + q(sourceID) + `},
	"target_server":{"vm_id":"","name":""},"region_name":"region","region_id":"region-1","project_name":"region","project_id":"p-1"}`
}

func createTask(t *testing.T, e *env, token, body string) string {
	t.Helper()
	r := e.do("POST", "/v3/tasks", body, token)
	require.Equal(t, http.StatusOK, r.status, r.body)
	m := r.json(t)
	require.Len(t, m, 1, "the answer is {\"id\"}: "+r.body)
	id, _ := m["id"].(string)
	require.NotEmpty(t, id)
	return id
}

// newSourceTask registers a Linux source of the first tenant and creates a
// task for it.
func newSourceTask(t *testing.T, e *env, name string) (taskID, sourceID string) {
	t.Helper()
	sourceID = register(t, e, e.token, linuxSource(name, nextMAC()))
	return createTask(t, e, e.token, taskBody(name, sourceID)), sourceID
}

// setTask changes a task row behind the API's back (as the workflow would).
func setTask(t *testing.T, e *env, id string, cols map[string]any) {
	t.Helper()
	res := e.store.DB().Model(&store.Task{}).Where("id = ?", id).Updates(cols)
	require.NoError(t, res.Error)
	require.Equal(t, int64(1), res.RowsAffected)
}

func setSource(t *testing.T, e *env, id string, cols map[string]any) {
	t.Helper()
	res := e.store.DB().Model(&store.Source{}).Where("id = ?", id).Updates(cols)
	require.NoError(t, res.Error)
	require.Equal(t, int64(1), res.RowsAffected)
}

func taskRow(t *testing.T, e *env, id string) *store.Task {
	t.Helper()
	task, err := e.store.Task(t.Context(), tenantOf(e), id)
	require.NoError(t, err)
	return task
}

func taskExists(t *testing.T, e *env, id string) bool {
	t.Helper()
	var n int64
	require.NoError(t, e.store.DB().Model(&store.Task{}).Where("id = ?", id).Count(&n).Error)
	return n == 1
}

func taskCount(t *testing.T, e *env) int64 {
	t.Helper()
	var n int64
	require.NoError(t, e.store.DB().Model(&store.Task{}).Count(&n).Error)
	return n
}

func currentTaskOf(t *testing.T, e *env, sourceID string) string {
	t.Helper()
	var src store.Source
	require.NoError(t, e.store.DB().Select("id", "current_task_id").Where("id = ?", sourceID).Take(&src).Error)
	if src.CurrentTaskID == nil {
		return ""
	}
	return *src.CurrentTaskID
}

// wantError checks an error answer: the status, the SMS code and the spec's
// envelope (error_code, error_msg, optional error_param and details under
// the same code, nothing else). It returns error_param.
func wantError(t *testing.T, r response, status int, code string, msgAndArgs ...any) []string {
	t.Helper()
	assert.Equal(t, status, r.status, append([]any{r.body}, msgAndArgs...)...)
	got, params := r.smsError(t)
	assert.Equal(t, code, got, append([]any{r.body}, msgAndArgs...)...)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(r.body), &raw))
	for k := range raw {
		assert.Contains(t, []string{"error_code", "error_msg", "encoded_authorization_message", "error_param", "details"}, k, r.body)
	}
	var b struct {
		Details []struct {
			Code string `json:"error_code"`
		} `json:"details"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &b))
	for _, d := range b.Details {
		assert.Equal(t, code, d.Code, r.body)
	}
	return params
}

func TestTaskCreate(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		ctx := t.Context()
		// The first project is the default: file-level, no public IP, an
		// existing server, continuous sync, 100 Mbit/s.
		def := createMigProject(t, e, e.token, "first-wave")
		r := e.do("POST", "/v3/migprojects", `{"name":"wave-2","region":"region","type":"MIGRATE_BLOCK","use_public_ip":true,
			"exist_server":false,"syncing":false,"speed_limit":7,"start_target_server":false}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		wave := r.json(t)["id"].(string)
		r = e.do("POST", "/v3/vm/templates", specTemplate, e.token) // region "region", names "ggg-win16-t", flavor c3.medium.2
		require.Equal(t, http.StatusOK, r.status, r.body)
		tpl := r.json(t)["id"].(string)
		mp, err := e.store.MigProject(ctx, tenantOf(e), def)
		require.NoError(t, err)

		// From the default project, named by the template, on an existing VM.
		require.NoError(t, e.targets.Assign("vm-1", e.creds.DomainID))
		src := register(t, e, e.token, linuxSource("web-1", nextMAC()))
		id := createTask(t, e, e.token, withJSON(t, taskBody("t1", src), func(m map[string]any) {
			m["vm_template_id"] = tpl
			m["target_server"] = map[string]any{"vm_id": "vm-1", "name": ""}
		}))
		task := taskRow(t, e, id)
		assert.Equal(t, sms.TaskReady, task.State)
		assert.Equal(t, "t1", task.Name)
		assert.Equal(t, sms.MigrateFile, task.Type)
		assert.Equal(t, sms.Linux, task.OSType)
		assert.Equal(t, src, task.SourceID)
		assert.Equal(t, def, task.MigProjectID)
		assert.Equal(t, int32(100), task.SpeedLimit, "the project's speed limit")
		assert.True(t, task.Syncing, "the project's syncing")
		assert.True(t, task.ExistServer, "the project's exist_server")
		assert.False(t, task.UsePublicIP, "the project's use_public_ip")
		assert.Equal(t, mp.StartTargetServer, task.StartTargetServer)
		assert.Equal(t, int32(1), task.Priority)
		assert.True(t, task.AutoStart)
		assert.Equal(t, tpl, task.VMTemplateID)
		assert.Equal(t, "region-1", task.RegionID)
		assert.Equal(t, "p-1", task.ProjectID)
		assert.Equal(t, sms.LogInit, task.LogCollectStatus)
		require.NotNil(t, task.TargetServer)
		assert.Equal(t, "ggg-win16-t", task.TargetServer.Name, "the template names the target")
		assert.Equal(t, "c3.medium.2", task.TargetServer.Flavor, "the template's flavor")
		assert.Equal(t, "vm-1", task.TargetServer.VMID)
		require.NotEmpty(t, task.TargetServer.Disks, "the source's recommended layout")
		assert.Equal(t, "/dev/vda", *task.TargetServer.Disks[0].Name)
		var subs []sms.Subtask
		for _, st := range task.SubTasks {
			subs = append(subs, st.Name)
			assert.Zero(t, st.Progress)
		}
		assert.Equal(t, sms.Subtasks("MIGRATE_FILE", "LINUX"), subs)
		assert.Equal(t, id, currentTaskOf(t, e, src), "the task is its source's current task")

		calls := eng.calls()
		require.Len(t, calls.starts, 1, "one workflow per task")
		in := calls.starts[0]
		assert.Equal(t, id, in.TaskID)
		assert.Equal(t, e.creds.DomainID, in.DomainID)
		assert.Equal(t, "p-1", in.ProjectID)
		assert.Equal(t, src, in.SourceID)
		assert.Equal(t, def, in.MigProjectID)
		assert.Equal(t, sms.MigrateFile, in.Type)
		assert.Equal(t, sms.Linux, in.OSType)
		assert.True(t, in.AutoStart)
		assert.True(t, in.Syncing)
		assert.True(t, in.ExistServer)
		assert.Equal(t, int32(100), in.SpeedLimit)
		assert.Empty(t, in.SpeedRules)
		assert.Equal(t, taskOpts.TimeZone, in.TimeZone)
		assert.Equal(t, taskOpts.SyncInterval, in.SyncInterval)
		assert.Equal(t, taskOpts.AgentStepTimeout, in.AgentStepTimeout)
		assert.Nil(t, in.Resume)

		// From another project: its settings, and a name from the source.
		src2 := register(t, e, e.token, withJSON(t, linuxSource("web-2", nextMAC()), func(m map[string]any) { m["migprojectid"] = wave }))
		id2 := createTask(t, e, e.token, taskBody("t2", src2))
		task2 := taskRow(t, e, id2)
		assert.Equal(t, wave, task2.MigProjectID)
		assert.Equal(t, int32(7), task2.SpeedLimit)
		assert.False(t, task2.Syncing)
		assert.False(t, task2.ExistServer)
		assert.True(t, task2.UsePublicIP)
		assert.False(t, task2.StartTargetServer)
		assert.Equal(t, "web-2-target", task2.TargetServer.Name)
		assert.Empty(t, task2.VMTemplateID)
		assert.Empty(t, task2.TargetServer.Flavor)

		// The request wins over the project and the template.
		src3 := register(t, e, e.token, linuxSource("web-3", nextMAC()))
		id3 := createTask(t, e, e.token, withJSON(t, taskBody("t3", src3), func(m map[string]any) {
			m["vm_template_id"] = tpl
			m["target_server"] = map[string]any{"name": "explicit", "disks": []any{map[string]any{"name": "/dev/sda", "size": 1 << 30,
				"used_size": 1 << 20, "device_use": "BOOT", "physical_volumes": []any{}}}}
			m["syncing"], m["exist_server"], m["use_public_ip"], m["start_target_server"] = false, false, true, false
			m["speed_limit"], m["over_speed_threshold"], m["priority"], m["auto_start"] = 5, 20.5, 2, false
		}))
		task3 := taskRow(t, e, id3)
		assert.Equal(t, "explicit", task3.TargetServer.Name)
		assert.Equal(t, "c3.medium.2", task3.TargetServer.Flavor)
		require.Len(t, task3.TargetServer.Disks, 1)
		assert.Equal(t, "/dev/sda", *task3.TargetServer.Disks[0].Name)
		assert.Equal(t, int32(5), task3.SpeedLimit)
		assert.Equal(t, 20.5, task3.OverSpeedThreshold)
		assert.Equal(t, int32(2), task3.Priority)
		assert.False(t, task3.Syncing)
		assert.False(t, task3.ExistServer)
		assert.True(t, task3.UsePublicIP)
		assert.False(t, task3.StartTargetServer)
		assert.False(t, task3.AutoStart)
		calls = eng.calls()
		require.Len(t, calls.starts, 3)
		assert.Equal(t, id3, calls.starts[2].TaskID)
		assert.False(t, calls.starts[2].AutoStart)
		assert.Equal(t, 20.5, calls.starts[2].OverSpeedThreshold)

		// Refusals. None leaves a task behind or starts a workflow.
		free := register(t, e, e.token, linuxSource("free", nextMAC()))
		win := register(t, e, e.token, withJSON(t, fixture(t, "register-windows.json"), func(m map[string]any) {
			m["networks"].([]any)[0].(map[string]any)["mac"] = nextMAC()
		}))
		broken := register(t, e, e.token, linuxSource("broken", nextMAC()))
		setSource(t, e, broken, map[string]any{"state": "unavailable"})
		theirs := register(t, e, e.other, linuxSource("theirs", nextMAC()))
		theirTpl := createTemplate(t, e, e.other, "their-template")
		r = e.do("POST", "/v3/vm/templates", `{"template":{"name":"far","is_template":false,"region":"elsewhere","projectid":"p","availability_zone":"az1"}}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		far := r.json(t)["id"].(string)

		base := taskBody("bad", free)
		edit := func(fn func(m map[string]any)) string { return withJSON(t, base, fn) }
		cases := []struct {
			name   string
			body   string
			status int
			code   string
			param  string
		}{
			{"missing name", edit(func(m map[string]any) { delete(m, "name") }), 400, "SMS.6013", "name"},
			{"name too long", edit(func(m map[string]any) { m["name"] = strings.Repeat("n", 256) }), 400, "SMS.9001", "name"},
			{"name not a string", edit(func(m map[string]any) { m["name"] = 5 }), 400, "SMS.9001", "name"},
			{"missing type", edit(func(m map[string]any) { delete(m, "type") }), 400, "SMS.6013", "type"},
			{"bad type", edit(func(m map[string]any) { m["type"] = "MIGRATE_DISK" }), 400, "SMS.7712", "type"},
			{"bad os_type", edit(func(m map[string]any) { m["os_type"] = "SOLARIS" }), 400, "SMS.9001", "os_type"},
			{"os_type not the source's", edit(func(m map[string]any) { m["os_type"] = "WINDOWS" }), 400, "SMS.6610", "os_type"},
			{"file-level Windows", withJSON(t, taskBody("bad", win), func(m map[string]any) { delete(m, "os_type") }), 400, "SMS.7712", "type"},
			{"missing source_server", edit(func(m map[string]any) { delete(m, "source_server") }), 400, "SMS.6013", "source_server"},
			{"missing source id", edit(func(m map[string]any) { m["source_server"] = map[string]any{} }), 400, "SMS.6013", "source_server.id"},
			{"missing target_server", edit(func(m map[string]any) { delete(m, "target_server") }), 400, "SMS.6013", "target_server"},
			{"missing region_id", edit(func(m map[string]any) { delete(m, "region_id") }), 400, "SMS.6013", "region_id"},
			{"unknown source", edit(func(m map[string]any) { m["source_server"] = map[string]any{"id": "nope"} }), 404, "SMS.7602", "nope"},
			{"another tenant's source", edit(func(m map[string]any) { m["source_server"] = map[string]any{"id": theirs} }), 404, "SMS.7602", theirs},
			{"unavailable source", edit(func(m map[string]any) { m["source_server"] = map[string]any{"id": broken} }), 400, "SMS.6005", "source_server.id"},
			{"second task for a source", edit(func(m map[string]any) { m["source_server"] = map[string]any{"id": src} }), 400, "SMS.6005", "source_server.id"},
			{"unknown template", edit(func(m map[string]any) { m["vm_template_id"] = "nope" }), 404, "SMS.7101", "nope"},
			{"another tenant's template", edit(func(m map[string]any) { m["vm_template_id"] = theirTpl }), 404, "SMS.7101", theirTpl},
			{"template of another region", edit(func(m map[string]any) { m["vm_template_id"] = far }), 400, "SMS.7321", "vm_template_id"},
			{"target VM of another task", edit(func(m map[string]any) { m["target_server"] = map[string]any{"vm_id": "vm-1"} }), 400, "SMS.7605", "target_server.vm_id"},
			{"speed_limit over 10000", edit(func(m map[string]any) { m["speed_limit"] = 10001 }), 400, "SMS.9001", "speed_limit"},
			{"over_speed_threshold over 100", edit(func(m map[string]any) { m["over_speed_threshold"] = 100.5 }), 400, "SMS.9001", "over_speed_threshold"},
			{"priority out of the SDK's enum", edit(func(m map[string]any) { m["priority"] = 3 }), 400, "SMS.9001", "priority"},
			{"bad target disk", edit(func(m map[string]any) {
				m["target_server"] = map[string]any{"disks": []any{map[string]any{"name": "/dev/vda", "size": -1, "used_size": 0, "physical_volumes": []any{}}}}
			}), 400, "SMS.9001", "target_server.disks[0].size"},
			{"target disk of 2^63-1 bytes", edit(func(m map[string]any) {
				m["target_server"] = map[string]any{"disks": []any{map[string]any{"name": "/dev/vda", "size": int64(math.MaxInt64), "used_size": 0, "physical_volumes": []any{}}}}
			}), 400, "SMS.9001", "target_server.disks[0].size"},
			{"target disk used past its size", edit(func(m map[string]any) {
				m["target_server"] = map[string]any{"disks": []any{map[string]any{"name": "/dev/vda", "size": 1 << 30, "used_size": 1<<30 + 1, "physical_volumes": []any{}}}}
			}), 400, "SMS.9001", "target_server.disks[0].used_size"},
			{"too many target disks", edit(func(m map[string]any) {
				m["target_server"] = map[string]any{"disks": manyTargetDisks(layout.MaxDisks + 1)}
			}), 400, "SMS.9001", "target_server.disks"},
			{"malformed JSON", `{"name":`, 400, "SMS.6010", ""},
			{"not an object", `[]`, 400, "SMS.6011", ""},
			{"empty body", ``, 400, "SMS.6012", ""},
		}
		before, started := taskCount(t, e), len(eng.calls().starts)
		for _, tc := range cases {
			r := e.do("POST", "/v3/tasks", tc.body, e.token)
			params := wantError(t, r, tc.status, tc.code, tc.name)
			if tc.param != "" {
				assert.Contains(t, params, tc.param, tc.name)
			}
			assert.Equal(t, before, taskCount(t, e), tc.name+": no task kept")
			assert.Len(t, eng.calls().starts, started, tc.name+": no workflow started")
		}
		assert.Empty(t, currentTaskOf(t, e, free))
		assert.Equal(t, id, currentTaskOf(t, e, src), "the busy source keeps its task")
		r = e.do("POST", "/v3/tasks", edit(func(m map[string]any) { m["source_server"] = map[string]any{"id": src} }), e.token)
		assert.Contains(t, r.body, id, "the refusal names the source's task")

		// The workflow does not start: no task is kept, and the source is free.
		eng.set(func(f *fakeEngine) { f.startErr = errors.New("temporal is down") })
		r = e.do("POST", "/v3/tasks", base, e.token)
		wantError(t, r, http.StatusInternalServerError, string(smserr.InternalCode))
		assert.NotContains(t, r.body, "temporal is down", "the cause is logged, not answered")
		assert.Equal(t, before, taskCount(t, e))
		assert.Len(t, eng.calls().starts, started+1)
		assert.Empty(t, currentTaskOf(t, e, free))
		eng.set(func(f *fakeEngine) { f.startErr = nil })
		again := createTask(t, e, e.token, base)
		assert.Equal(t, again, currentTaskOf(t, e, free))

		// The other tenant sees none of it.
		assert.Equal(t, float64(0), e.do("GET", "/v3/tasks", "", e.other).json(t)["count"])
	})
}

func TestTaskList(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		ids, srcs := make([]string, 3), make([]string, 3)
		for i := range ids {
			ids[i], srcs[i] = newSourceTask(t, e, fmt.Sprintf("t%d", i))
		}
		setTask(t, e, ids[1], map[string]any{"state": sms.TaskRunning})
		setTask(t, e, ids[2], map[string]any{"enterprise_project_id": "ep-2"})
		theirs := createTask(t, e, e.other, taskBody("t0", register(t, e, e.other, linuxSource("theirs", nextMAC()))))

		list := func(query string) (got []string, count float64, rows []map[string]any) {
			t.Helper()
			r := e.do("GET", "/v3/tasks?"+query, "", e.token)
			require.Equal(t, http.StatusOK, r.status, query+": "+r.body)
			m := r.json(t)
			for _, x := range m["tasks"].([]any) {
				row := x.(map[string]any)
				got = append(got, row["id"].(string))
				rows = append(rows, row)
			}
			return got, m["count"].(float64), rows
		}
		all, count, rows := list("")
		assert.ElementsMatch(t, ids, all)
		assert.Equal(t, float64(3), count)
		assert.NotContains(t, all, theirs)
		for _, row := range rows {
			for _, k := range []string{"id", "name", "type", "os_type", "state", "estimate_complete_time", "create_date", "priority",
				"speed_limit", "migrate_speed", "compress_rate", "start_target_server", "error_json", "total_time", "migration_ip",
				"sub_tasks", "source_server", "target_server", "enterprise_project_id", "remain_seconds", "workflow_url"} {
				assert.Contains(t, row, k)
			}
			i := slices.Index(ids, row["id"].(string))
			assert.Equal(t, srcs[i], row["source_server"].(map[string]any)["id"])
			assert.Equal(t, fmt.Sprintf("t%d", i), row["source_server"].(map[string]any)["name"])
		}

		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"state=RUNNING", ids[1:2]},
			{"state=READY", []string{ids[0], ids[2]}},
			{"state=MIGRATE_SUCCESS", nil},
			{"name=t2", ids[2:3]},
			{"name=t", nil},
			{"id=" + ids[0], ids[0:1]},
			{"id=" + theirs, nil},
			{"source_server_id=" + srcs[1], ids[1:2]},
			{"enterprise_project_id=ep-2", ids[2:3]},
			{"state=READY&name=t1", nil},
			{"state=RUNNING&source_server_id=" + srcs[1], ids[1:2]},
		} {
			got, count, _ := list(tc.query)
			assert.ElementsMatch(t, tc.want, got, tc.query)
			assert.Equal(t, float64(len(tc.want)), count, tc.query)
		}
		// The SDK's SYNC_F_ROLLBACKING filter is RESETING.
		setTask(t, e, ids[1], map[string]any{"state": sms.TaskReseting})
		for _, q := range []string{"state=RESETING", "state=SYNC_F_ROLLBACKING"} {
			got, _, _ := list(q)
			assert.Equal(t, ids[1:2], got, q)
		}
		setTask(t, e, ids[1], map[string]any{"state": sms.TaskRunning})

		// Paging keeps the list's order; count ignores it.
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"limit=2", all[:2]},
			{"limit=2&offset=2", all[2:]},
			{"limit=1&offset=1", all[1:2]},
			{"offset=3", nil},
			{"limit=200&offset=0", all},
		} {
			got, count, _ := list(tc.query)
			assert.Equal(t, tc.want, got, tc.query)
			assert.Equal(t, float64(3), count, tc.query)
		}

		for _, tc := range []struct{ query, param string }{
			{"limit=201", "limit"}, {"limit=-1", "limit"}, {"limit=ten", "limit"}, {"offset=-1", "offset"},
			{"offset=65536", "offset"}, {"name=" + strings.Repeat("x", 256), "name"}, {"id=" + strings.Repeat("x", 256), "id"},
		} {
			r := e.do("GET", "/v3/tasks?"+tc.query, "", e.token)
			params := wantError(t, r, http.StatusBadRequest, "SMS.9001", tc.query)
			assert.Equal(t, []string{tc.param}, params, tc.query)
		}
		wantError(t, e.do("GET", "/v3/tasks", "", ""), http.StatusUnauthorized, "SMS.6522")

		r := e.do("GET", "/v3/tasks", "", e.other)
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, float64(1), r.json(t)["count"], "each tenant sees its own")
		assert.Empty(t, eng.calls().actions)
	})
}

func TestTaskShow(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		id, src := newSourceTask(t, e, "web-1")
		r := e.do("GET", "/v3/tasks/"+id, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		m := r.json(t)
		for _, k := range []string{"id", "name", "type", "os_type", "state", "priority", "speed_limit", "region_id", "region_name",
			"project_name", "project_id", "start_target_server", "enterprise_project_id", "migration_ip", "vm_template_id",
			"source_server", "target_server", "estimate_complete_time", "connected", "create_date", "start_date", "finish_date",
			"migrate_speed", "compress_rate", "error_json", "total_time", "remain_seconds", "clone_server", "sub_tasks",
			"network_check_info", "total_cpu_usage", "agent_cpu_usage", "total_mem_usage", "agent_mem_usage", "total_disk_io",
			"agent_disk_io", "special_config", "log_collect_status", "workflow_url"} {
			assert.Contains(t, m, k)
		}
		assert.Equal(t, id, m["id"])
		assert.Equal(t, "web-1", m["name"])
		assert.Equal(t, "READY", m["state"])
		assert.Equal(t, true, m["connected"], "its agent registered just now")
		assert.Equal(t, "http://temporal.test/workflows/migration/"+id, m["workflow_url"])
		ss := m["source_server"].(map[string]any)
		assert.Equal(t, src, ss["id"])
		assert.Equal(t, "web-1", ss["name"])
		assert.Equal(t, "10.0.0.1", ss["ip"])
		assert.Equal(t, "LINUX", ss["os_type"])
		ts := m["target_server"].(map[string]any)
		assert.Equal(t, "web-1-target", ts["name"])
		assert.NotEmpty(t, ts["disks"])
		assert.Equal(t, []any{}, ts["btrfs_list"], "an array of strings for the SDK")
		subs := m["sub_tasks"].([]any)
		require.Len(t, subs, len(sms.Subtasks("MIGRATE_FILE", "LINUX")))
		assert.Equal(t, "CREATE_CLOUD_SERVER", subs[0].(map[string]any)["name"])
		assert.Equal(t, float64(1), subs[0].(map[string]any)["id"])
		assert.Equal(t, []any{}, m["special_config"])

		// The workflow's figures show up.
		setTask(t, e, id, map[string]any{"state": sms.TaskRunning, "total_time": 3600, "start_date": 1700000000000})
		before := time.Now().UnixMilli()
		r = e.do("PUT", "/v3/tasks/"+id+"/progress", `{"subtask_name":"MIGRATE_LINUX_FILE","progress":40,"replicatesize":400,
			"totalsize":1000,"process_trace":"copying","migrate_speed":50.5,"remain_time":120}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		after := time.Now().UnixMilli()
		r = e.do("GET", "/v3/tasks/"+id, "", e.token)
		assert.NotContains(t, r.body, "e+", "integers stay integers")
		m = r.json(t)
		assert.Equal(t, "RUNNING", m["state"])
		assert.Equal(t, float64(120), m["remain_seconds"])
		assert.Equal(t, float64(3600), m["total_time"])
		assert.Equal(t, float64(1700000000000), m["start_date"])
		assert.Equal(t, 50.5, m["migrate_speed"])
		assert.Equal(t, float64(400), m["replicatesize"])
		ect := int64(m["estimate_complete_time"].(float64))
		assert.True(t, ect >= before+120000 && ect <= after+120000, "estimate_complete_time %d", ect)
		assert.Equal(t, "MIGRATE_LINUX_FILE", m["subtask_info"])
		for _, s := range m["sub_tasks"].([]any) {
			st := s.(map[string]any)
			if st["name"] == "MIGRATE_LINUX_FILE" {
				assert.Equal(t, float64(40), st["progress"])
				assert.Equal(t, "copying", st["process_trace"])
			}
		}

		// Without the Temporal UI there is no link.
		eng.set(func(f *fakeEngine) { f.uiBase = "" })
		assert.NotContains(t, e.do("GET", "/v3/tasks/"+id, "", e.token).json(t), "workflow_url")

		// Unknown, and another tenant's, answer alike.
		params := wantError(t, e.do("GET", "/v3/tasks/nope", "", e.token), http.StatusNotFound, "SMS.7703")
		assert.Equal(t, []string{"nope"}, params)
		r = e.do("GET", "/v3/tasks/"+id, "", e.other)
		params = wantError(t, r, http.StatusNotFound, "SMS.7703")
		assert.Equal(t, []string{id}, params)
		assert.NotContains(t, r.body, "web-1")
		wantError(t, e.do("GET", "/v3/tasks/"+strings.Repeat("x", 256), "", e.token), http.StatusBadRequest, "SMS.9001")
	})
}

func TestTaskUpdate(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		id, _ := newSourceTask(t, e, "web-1")
		require.NoError(t, e.targets.Assign("vm-9", e.creds.DomainID))
		r := e.do("PUT", "/v3/tasks/"+id, `{"name":"renamed","type":"MIGRATE_BLOCK","speed_limit":300,"migration_ip":"10.0.0.9",
			"region_id":"r-2","region_name":"region-2","project_id":"p-2","project_name":"proj-2","use_public_ip":false,"exist_server":true,
			"target_server":{"vm_id":"vm-9","name":"tgt-2","flavor":"s6.large","os_type":"LINUX",
			  "disks":[{"name":"/dev/vda","size":42949672960,"used_size":1,"device_use":"BOOT","physical_volumes":[]}]},
			"clone_server":{"vm_id":"c-1","name":"clone-1"}}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{}`, r.body, "the SDK decodes an object")
		task := taskRow(t, e, id)
		assert.Equal(t, "renamed", task.Name)
		assert.Equal(t, sms.MigrateBlock, task.Type)
		assert.Equal(t, int32(300), task.SpeedLimit)
		assert.Equal(t, "10.0.0.9", task.MigrationIP)
		assert.Equal(t, "r-2", task.RegionID)
		assert.Equal(t, "region-2", task.RegionName)
		assert.Equal(t, "p-2", task.ProjectID)
		assert.Equal(t, "proj-2", task.ProjectName)
		assert.False(t, task.UsePublicIP)
		assert.True(t, task.ExistServer)
		assert.Equal(t, "vm-9", task.TargetServer.VMID)
		assert.Equal(t, "tgt-2", task.TargetServer.Name)
		assert.Equal(t, "s6.large", task.TargetServer.Flavor)
		require.Len(t, task.TargetServer.Disks, 1)
		assert.Equal(t, int64(42949672960), *task.TargetServer.Disks[0].Size)
		require.NotNil(t, task.CloneServer)
		assert.Equal(t, "c-1", task.CloneServer.VMID)
		assert.Equal(t, "web-1", e.do("GET", "/v3/tasks/"+id, "", e.token).json(t)["source_server"].(map[string]any)["name"])

		// The new default limit reaches the workflow at once.
		speeds := eng.calls().speeds
		require.Len(t, speeds, 1)
		assert.Equal(t, id, speeds[0].TaskID)
		assert.Equal(t, int32(300), speeds[0].U.SpeedLimit)
		assert.Empty(t, speeds[0].U.Rules)

		// Absent fields keep their values; no speed change, no signal.
		r = e.do("PUT", "/v3/tasks/"+id, `{}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, task.Name, taskRow(t, e, id).Name)
		assert.Equal(t, task.TargetServer, taskRow(t, e, id).TargetServer)
		assert.Len(t, eng.calls().speeds, 1)

		// Once started, the type and the target disks are fixed.
		setTask(t, e, id, map[string]any{"state": sms.TaskRunning})
		wantError(t, e.do("PUT", "/v3/tasks/"+id, `{"type":"MIGRATE_FILE"}`, e.token), http.StatusBadRequest, "SMS.7712")
		wantError(t, e.do("PUT", "/v3/tasks/"+id, `{"target_server":{"disks":[]}}`, e.token), http.StatusBadRequest, "SMS.8106")
		r = e.do("PUT", "/v3/tasks/"+id, `{"name":"running-renamed","type":"MIGRATE_BLOCK"}`, e.token)
		require.Equal(t, http.StatusOK, r.status, "the same type is no change: "+r.body)
		assert.Equal(t, "running-renamed", taskRow(t, e, id).Name)

		snapshot := taskRow(t, e, id)
		for _, tc := range []struct{ name, body, code, param string }{
			{"bad type", `{"type":"MIGRATE_DISK"}`, "SMS.7712", "type"},
			{"speed over 10000", `{"speed_limit":10001,"name":"x"}`, "SMS.9001", "speed_limit"},
			{"negative speed", `{"speed_limit":-1}`, "SMS.9001", "speed_limit"},
			{"name too long", `{"name":` + q(strings.Repeat("n", 256)) + `}`, "SMS.9001", "name"},
			{"bad target os_type", `{"target_server":{"os_type":"SOLARIS"}}`, "SMS.9001", "target_server.os_type"},
			{"target disk without a name", `{"target_server":{"disks":[{"size":1,"used_size":0,"physical_volumes":[]}]}}`, "SMS.6013", "target_server.disks[0].name"},
			{"target disk of 2^63-1 bytes", `{"target_server":{"disks":[{"name":"/dev/vda","size":9223372036854775807,"used_size":0,"physical_volumes":[]}]}}`, "SMS.9001", "target_server.disks[0].size"},
			{"target disk used past its size", `{"target_server":{"disks":[{"name":"/dev/vda","size":1024,"used_size":1025,"physical_volumes":[]}]}}`, "SMS.9001", "target_server.disks[0].used_size"},
			{"too many target disks", withJSON(t, `{}`, func(m map[string]any) {
				m["target_server"] = map[string]any{"disks": manyTargetDisks(layout.MaxDisks + 1)}
			}), "SMS.9001", "target_server.disks"},
			{"wrong JSON type", `{"exist_server":"yes"}`, "SMS.9001", "exist_server"},
			{"malformed JSON", `{"name":"x"`, "SMS.6010", ""},
		} {
			r := e.do("PUT", "/v3/tasks/"+id, tc.body, e.token)
			params := wantError(t, r, http.StatusBadRequest, tc.code, tc.name)
			if tc.param != "" {
				assert.Contains(t, params, tc.param, tc.name)
			}
		}
		wantError(t, e.do("PUT", "/v3/tasks/nope", `{"name":"x"}`, e.token), http.StatusNotFound, "SMS.7703")
		wantError(t, e.do("PUT", "/v3/tasks/"+id, `{"name":"stolen","speed_limit":1}`, e.other), http.StatusNotFound, "SMS.7703")
		after := taskRow(t, e, id)
		snapshot.UpdatedAt, after.UpdatedAt = time.Time{}, time.Time{}
		assert.Equal(t, snapshot, after, "refused updates change nothing")
		assert.Len(t, eng.calls().speeds, 1)
	})
}

func TestTaskDelete(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		deletes := func() []string { return eng.calls().deletes }

		// A task with a run: the workflow is asked and deletes it itself.
		a, _ := newSourceTask(t, e, "a")
		r := e.do("DELETE", "/v3/tasks/"+a, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{}`, r.body)
		assert.Equal(t, []string{a}, deletes())
		assert.True(t, taskExists(t, e, a), "left to its workflow")

		// Without a run the API removes it, and frees its source.
		b, srcB := newSourceTask(t, e, "b")
		eng.set(func(f *fakeEngine) { f.noRun[b] = true })
		r = e.do("DELETE", "/v3/tasks/"+b, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, []string{a, b}, deletes())
		assert.False(t, taskExists(t, e, b))
		assert.Empty(t, currentTaskOf(t, e, srcB))
		createTask(t, e, e.token, taskBody("b-again", srcB))

		// Being deleted already: the API refuses before asking (SMS.7719)...
		c, _ := newSourceTask(t, e, "c")
		setTask(t, e, c, map[string]any{"state": sms.TaskDeleting})
		params := wantError(t, e.do("DELETE", "/v3/tasks/"+c, "", e.token), http.StatusBadRequest, "SMS.7719")
		assert.Equal(t, []string{c}, params)
		assert.Len(t, deletes(), 2, "the engine is not asked")
		// ...and the workflow's own refusal comes through the same way.
		d, _ := newSourceTask(t, e, "d")
		eng.set(func(f *fakeEngine) { f.wfState[d] = sms.TaskDeleting })
		wantError(t, e.do("DELETE", "/v3/tasks/"+d, "", e.token), http.StatusBadRequest, "SMS.7719")
		assert.Equal(t, d, deletes()[len(deletes())-1])
		assert.True(t, taskExists(t, e, d))

		// A running task is deleted through its run whether its agent is
		// connected (stopped first) or gone (§4.2.4: a disconnected
		// agent is exactly when a delete is allowed).
		for _, seen := range []time.Duration{0, 10 * time.Minute} {
			run, srcRun := newSourceTask(t, e, "run-"+seen.String())
			setTask(t, e, run, map[string]any{"state": sms.TaskRunning})
			setSource(t, e, srcRun, map[string]any{"last_visit_time": time.Now().Add(-seen).UnixMilli()})
			r := e.do("DELETE", "/v3/tasks/"+run, "", e.token)
			require.Equal(t, http.StatusOK, r.status, "agent last seen %s ago: %s", seen, r.body)
			assert.Equal(t, run, deletes()[len(deletes())-1])
		}
		n := len(deletes())

		// Unknown, and another tenant's.
		wantError(t, e.do("DELETE", "/v3/tasks/nope", "", e.token), http.StatusNotFound, "SMS.7703")
		wantError(t, e.do("DELETE", "/v3/tasks/"+a, "", e.other), http.StatusNotFound, "SMS.7703")
		assert.Len(t, deletes(), n)
		assert.True(t, taskExists(t, e, a))
	})
}

func TestTaskBatchDelete(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		x, _ := newSourceTask(t, e, "x")
		y, _ := newSourceTask(t, e, "y")
		z, _ := newSourceTask(t, e, "z")
		eng.set(func(f *fakeEngine) { f.noRun[x], f.noRun[y] = true, true })
		setTask(t, e, z, map[string]any{"state": sms.TaskDeleting})

		for _, tc := range []struct{ name, body, code string }{
			{"no ids", `{}`, "SMS.6013"},
			{"ids not an array", `{"ids":"` + x + `"}`, "SMS.9001"},
			{"id too long", `{"ids":[` + q(strings.Repeat("x", 256)) + `]}`, "SMS.9001"},
			{"malformed JSON", `{"ids":[`, "SMS.6010"},
		} {
			wantError(t, e.do("POST", "/v3/tasks/delete", tc.body, e.token), http.StatusBadRequest, tc.code, tc.name)
		}
		// One refusal deletes none.
		params := wantError(t, e.do("POST", "/v3/tasks/delete", `{"ids":[`+q(x)+`,`+q(z)+`]}`, e.token), http.StatusBadRequest, "SMS.7719")
		assert.Equal(t, []string{z}, params)
		params = wantError(t, e.do("POST", "/v3/tasks/delete", `{"ids":[`+q(x)+`,"missing"]}`, e.token), http.StatusNotFound, "SMS.7703")
		assert.Equal(t, []string{"missing"}, params)
		wantError(t, e.do("POST", "/v3/tasks/delete", `{"ids":[`+q(x)+`]}`, e.other), http.StatusNotFound, "SMS.7703")
		assert.Empty(t, eng.calls().deletes)
		assert.True(t, taskExists(t, e, x))
		assert.True(t, taskExists(t, e, y))

		r := e.do("POST", "/v3/tasks/delete", `{"ids":[`+q(x)+`,`+q(x)+`,`+q(y)+`]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{}`, r.body)
		assert.Equal(t, []string{x, y}, eng.calls().deletes, "each once")
		assert.False(t, taskExists(t, e, x))
		assert.False(t, taskExists(t, e, y))
		assert.True(t, taskExists(t, e, z))
		r = e.do("POST", "/v3/tasks/delete", `{"ids":[]}`, e.token)
		assert.Equal(t, http.StatusOK, r.status, r.body)
	})
}

// TestTaskAction: every operation in every state, answered by the
// workflow's validator (SMS.7713–7722, SMS.8112) through the engine.
func TestTaskAction(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		id, _ := newSourceTask(t, e, "web-1")
		tpl := createTemplate(t, e, e.token, "clone-tpl") // clone_test's template_id must name one
		const (
			ready, running, syncing, success  = sms.TaskReady, sms.TaskRunning, sms.TaskSyncing, sms.TaskMigrateSuccess
			failed, aborting, abort, deleting = sms.TaskMigrateFail, sms.TaskAborting, sms.TaskAbort, sms.TaskDeleting
		)
		const synced, syncFail, skipping, reseting = sms.TaskSyncSuccess, sms.TaskSyncFail, sms.TaskSkipping, sms.TaskReseting
		states := []sms.TaskState{ready, running, syncing, success, failed, aborting, abort, deleting, synced, syncFail, skipping, reseting}
		// The states that accept each operation (no sync loop, no started
		// target), and the refusal's code elsewhere.
		ops := []struct {
			op      sms.Action
			allowed []sms.TaskState
			refusal string
		}{
			// start on a finished task synchronizes it again
			{"start", []sms.TaskState{ready, abort, failed, success, synced, syncFail}, "SMS.7713"},
			{"stop", []sms.TaskState{running, syncing, skipping}, "SMS.7714"},
			{"test", []sms.TaskState{success, synced}, "SMS.7721"}, // finished: launches a target left stopped
			{"clone_test", nil, "SMS.7721"},
			{"restart", []sms.TaskState{failed}, "SMS.7722"},
			{"network_check", []sms.TaskState{ready, running, syncing, abort, skipping}, "SMS.7713"},
			{"clear", []sms.TaskState{success, synced, syncFail}, "SMS.8112"},
			{"skip", []sms.TaskState{running, syncing}, "SMS.7713"},
			{"migration_test", nil, "SMS.7721"},
			{"sync_failed_rollback", []sms.TaskState{syncFail}, "SMS.7718"},
		}
		type tcase struct {
			state                sms.TaskState
			op                   sms.Action
			inSyncLoop, tStarted bool
			want                 string // "" accepted
		}
		var cases []tcase
		for _, o := range ops {
			for _, s := range states {
				want := o.refusal
				if slices.Contains(o.allowed, s) {
					want = ""
				}
				if o.op == "start" && s == syncing {
					want = "SMS.7715" // a pass outside the sync loop: not finished, not continuous sync
				}
				cases = append(cases, tcase{state: s, op: o.op, want: want})
			}
		}
		cases = append(cases,
			tcase{state: syncing, op: "test", inSyncLoop: true},
			tcase{state: syncing, op: "clone_test", inSyncLoop: true},
			tcase{state: syncing, op: "migration_test", inSyncLoop: true},
			tcase{state: syncing, op: "start", inSyncLoop: true, want: "SMS.7713"},
			tcase{state: running, op: "test", inSyncLoop: true, want: "SMS.7721"},
			tcase{state: success, op: "restart", tStarted: true, want: "SMS.7713"},
			tcase{state: success, op: "test", tStarted: true, want: "SMS.7721"},
			tcase{state: synced, op: "test", tStarted: true, want: "SMS.7721"},
			tcase{state: failed, op: "restart", tStarted: true},
			tcase{state: ready, op: "restart", tStarted: true, want: "SMS.7722"},
		)
		for _, tc := range cases {
			name := fmt.Sprintf("%s in %s (sync loop %v, target started %v)", tc.op, tc.state, tc.inSyncLoop, tc.tStarted)
			setTask(t, e, id, map[string]any{"state": tc.state, "target_started": tc.tStarted})
			eng.set(func(f *fakeEngine) { f.inSyncLoop[id] = tc.inSyncLoop })
			n := len(eng.calls().actions)
			r := e.do("POST", "/v3/tasks/"+id+"/action", `{"operation":`+q(string(tc.op))+`,"template_id":`+q(tpl)+`,"is_need_consistency_check":true,"switch_hce":false}`, e.token)
			if tc.want == "" {
				assert.Equal(t, http.StatusOK, r.status, name+": "+r.body)
				assert.JSONEq(t, `{}`, r.body, name)
			} else {
				wantError(t, r, http.StatusBadRequest, tc.want, name)
			}
			calls := eng.calls().actions
			if assert.Len(t, calls, n+1, name) {
				want := workflows.ActionRequest{Operation: tc.op, TemplateID: tpl, IsNeedConsistencyCheck: true}
				if tc.op == sms.ActionStart || tc.op == sms.ActionRestart {
					want.ConsistencyCheck = new(true) // start and restart set the task's check
				}
				assert.Equal(t, actionCall{id, want}, calls[n], name)
			}
		}

		// Refused by the API itself: the engine is not asked.
		setTask(t, e, id, map[string]any{"state": ready, "target_started": false})
		n := len(eng.calls().actions)
		for _, tc := range []struct {
			name, body  string
			status      int
			code, param string
			token, path string
		}{
			{name: "unknown operation", body: `{"operation":"pause"}`, status: 400, code: "SMS.9001", param: "operation"},
			{name: "operation in capitals", body: `{"operation":"START"}`, status: 400, code: "SMS.9001", param: "operation"},
			{name: "operation not a string", body: `{"operation":1}`, status: 400, code: "SMS.9001", param: "operation"},
			{name: "no operation", body: `{"template_id":"x"}`, status: 400, code: "SMS.6013", param: "operation"},
			{name: "template_id too long", body: `{"operation":"start","template_id":` + q(strings.Repeat("t", 2049)) + `}`, status: 400, code: "SMS.9001", param: "template_id"},
			{name: "malformed JSON", body: `{"operation":"start"`, status: 400, code: "SMS.6010"},
			{name: "empty body", body: ``, status: 400, code: "SMS.6012"},
			{name: "unknown task", body: `{"operation":"start"}`, status: 404, code: "SMS.7703", path: "/v3/tasks/nope/action"},
			{name: "another tenant's task", body: `{"operation":"start"}`, status: 404, code: "SMS.7703", token: e.other},
		} {
			path, token := tc.path, tc.token
			if path == "" {
				path = "/v3/tasks/" + id + "/action"
			}
			if token == "" {
				token = e.token
			}
			params := wantError(t, e.do("POST", path, tc.body, token), tc.status, tc.code, tc.name)
			if tc.param != "" {
				assert.Equal(t, []string{tc.param}, params, tc.name)
			}
			assert.Len(t, eng.calls().actions, n, tc.name+": the engine is not asked")
		}

		// A task whose workflow is gone cannot act (SMS.7713).
		eng.set(func(f *fakeEngine) { f.noRun[id] = true })
		wantError(t, e.do("POST", "/v3/tasks/"+id+"/action", `{"operation":"start"}`, e.token), http.StatusBadRequest, "SMS.7713")
		assert.Len(t, eng.calls().actions, n+1)
	})
}

const progressBody = `{"subtask_name":"MIGRATE_LINUX_FILE","progress":40,"replicatesize":400,"totalsize":1000,
	"process_trace":"copying /var","migrate_speed":5,"compress_rate":1.5,"remain_time":60,"total_cpu_usage":30,"agent_cpu_usage":3,
	"total_mem_usage":1024,"agent_mem_usage":64,"total_disk_io":20,"agent_disk_io":2,"need_migration_test":true,"agent_time":"2024-01-01 10:00:00"}`

func TestTaskProgress(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		id, src := newSourceTask(t, e, "web-1")
		path := "/v3/tasks/" + id + "/progress"
		forwarded := func() []progressCall { return eng.calls().progress }
		subtask := func(name sms.Subtask) store.SubTask {
			for _, st := range taskRow(t, e, id).SubTasks {
				if st.Name == name {
					return st
				}
			}
			t.Fatalf("no subtask %s", name)
			return store.SubTask{}
		}

		// Not running: refused (SMS.0501), nothing recorded or forwarded.
		for _, state := range []sms.TaskState{sms.TaskReady, sms.TaskMigrateSuccess, sms.TaskAbort} {
			setTask(t, e, id, map[string]any{"state": state})
			params := wantError(t, e.do("PUT", path, progressBody, e.token), http.StatusBadRequest, "SMS.0501", state)
			assert.Equal(t, []string{id}, params)
		}
		assert.Empty(t, forwarded())
		assert.Zero(t, subtask("MIGRATE_LINUX_FILE").Progress)
		assert.Zero(t, taskRow(t, e, id).Replicatesize)

		// Running: recorded, and forwarded to the workflow.
		setTask(t, e, id, map[string]any{"state": sms.TaskRunning})
		before := time.Now()
		r := e.do("PUT", path, progressBody, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{}`, r.body)
		task := taskRow(t, e, id)
		st := subtask("MIGRATE_LINUX_FILE")
		assert.Equal(t, int32(40), st.Progress)
		assert.Equal(t, "copying /var", *st.ProcessTrace)
		assert.NotNil(t, st.StartDate)
		assert.Equal(t, int64(400), task.Replicatesize)
		assert.Equal(t, int64(1000), task.Totalsize)
		assert.Equal(t, int64(60), task.RemainSeconds)
		assert.Equal(t, 5.0, task.MigrateSpeed)
		assert.Equal(t, 30.0, task.TotalCPUUsage)
		assert.Equal(t, "2024-01-01 10:00:00", task.AgentTime)
		assert.True(t, task.NeedMigrationTest)
		m := e.do("GET", "/v3/sources/"+src, "", e.token).json(t)
		assert.Equal(t, float64(400), m["replicatesize"], "the source shows the copy too")
		assert.Equal(t, float64(1000), m["totalsize"])
		calls := forwarded()
		require.Len(t, calls, 1)
		assert.Equal(t, id, calls[0].TaskID)
		assert.Equal(t, sms.Subtask("MIGRATE_LINUX_FILE"), calls[0].P.Subtask)
		assert.Equal(t, int32(40), calls[0].P.Progress)
		assert.Equal(t, 5.0, calls[0].P.MigrateSpeed)
		assert.False(t, calls[0].P.At.Before(before.Truncate(time.Millisecond)))

		// The workflow hears of routine reports at most every few seconds;
		// the database records each.
		r = e.do("PUT", path, withJSON(t, progressBody, func(m map[string]any) { m["progress"] = 41 }), e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, int32(41), subtask("MIGRATE_LINUX_FILE").Progress)
		assert.Len(t, forwarded(), 1, "throttled")
		// A finished step, or a speed over the limit in force, goes at once.
		r = e.do("PUT", path, withJSON(t, progressBody, func(m map[string]any) { m["progress"] = 100 }), e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Len(t, forwarded(), 2)
		assert.Equal(t, int32(100), forwarded()[1].P.Progress)
		setTask(t, e, id, map[string]any{"current_limit": 10, "current_threshold": 10.0})
		r = e.do("PUT", path, withJSON(t, progressBody, func(m map[string]any) { m["migrate_speed"] = 10.5 }), e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Len(t, forwarded(), 2, "10.5 is within 10 Mbit/s + 10%")
		r = e.do("PUT", path, withJSON(t, progressBody, func(m map[string]any) { m["migrate_speed"] = 50 }), e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Len(t, forwarded(), 3, "over the limit")
		assert.Equal(t, 50.0, forwarded()[2].P.MigrateSpeed)

		// The spec's spelling of the detach step is stored as the SDK's.
		r = e.do("PUT", path, withJSON(t, progressBody, func(m map[string]any) {
			m["subtask_name"], m["progress"] = "DETACH_AGENT_IMAGE", 100
		}), e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, int32(100), subtask("DETTACH_AGENT_IMAGE").Progress)
		assert.Equal(t, sms.Subtask("DETTACH_AGENT_IMAGE"), forwarded()[3].P.Subtask)

		// A syncing task reports too; a closed run is no error.
		setTask(t, e, id, map[string]any{"state": sms.TaskSyncing})
		eng.set(func(f *fakeEngine) { f.noRun[id] = true })
		r = e.do("PUT", path, withJSON(t, progressBody, func(m map[string]any) {
			m["subtask_name"], m["progress"] = "SYNC_LINUX_FILE", 100
		}), e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Len(t, forwarded(), 5)
		eng.set(func(f *fakeEngine) { f.noRun[id] = false })

		n := len(forwarded())
		snapshot := taskRow(t, e, id)
		for _, tc := range []struct {
			name, body  string
			code, param string
		}{
			{"unknown subtask", withJSON(t, progressBody, func(m map[string]any) { m["subtask_name"] = "MIGRATE_WINDOWS_BLOCK" }), "SMS.6004", "subtask_name"},
			{"progress over 100", withJSON(t, progressBody, func(m map[string]any) { m["progress"] = 101 }), "SMS.6101", "progress"},
			{"negative progress", withJSON(t, progressBody, func(m map[string]any) { m["progress"] = -1 }), "SMS.6101", "progress"},
			{"no subtask_name", withJSON(t, progressBody, func(m map[string]any) { delete(m, "subtask_name") }), "SMS.6013", "subtask_name"},
			{"no replicatesize", withJSON(t, progressBody, func(m map[string]any) { delete(m, "replicatesize") }), "SMS.6013", "replicatesize"},
			{"no process_trace", withJSON(t, progressBody, func(m map[string]any) { delete(m, "process_trace") }), "SMS.6013", "process_trace"},
			{"cpu usage over 100", withJSON(t, progressBody, func(m map[string]any) { m["total_cpu_usage"] = 100.1 }), "SMS.9001", "total_cpu_usage"},
			{"negative totalsize", withJSON(t, progressBody, func(m map[string]any) { m["totalsize"] = -1 }), "SMS.9001", "totalsize"},
			{"agent_time too long", withJSON(t, progressBody, func(m map[string]any) { m["agent_time"] = strings.Repeat("1", 31) }), "SMS.9001", "agent_time"},
			{"progress not an integer", withJSON(t, progressBody, func(m map[string]any) { m["progress"] = "40" }), "SMS.9001", "progress"},
			{"malformed JSON", `{"progress":`, "SMS.6010", ""},
		} {
			params := wantError(t, e.do("PUT", path, tc.body, e.token), http.StatusBadRequest, tc.code, tc.name)
			if tc.param != "" {
				assert.Contains(t, params, tc.param, tc.name)
			}
		}
		wantError(t, e.do("PUT", path, withJSON(t, progressBody, func(m map[string]any) { m["progress"] = 100 }), e.other), http.StatusNotFound, "SMS.7703")
		wantError(t, e.do("PUT", "/v3/tasks/nope/progress", progressBody, e.token), http.StatusNotFound, "SMS.7703")
		assert.Len(t, forwarded(), n, "refused reports are not forwarded")
		after := taskRow(t, e, id)
		snapshot.UpdatedAt, after.UpdatedAt = time.Time{}, time.Time{}
		assert.Equal(t, snapshot, after, "nor recorded")

		// A failing engine is a server fault.
		eng.set(func(f *fakeEngine) { f.callErr = errors.New("frontend unavailable") })
		wantError(t, e.do("PUT", path, withJSON(t, progressBody, func(m map[string]any) { m["progress"] = 100 }), e.token),
			http.StatusInternalServerError, string(smserr.InternalCode))
	})
}

func TestTaskSpeedLimit(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		src := register(t, e, e.token, linuxSource("web-1", nextMAC()))
		id := createTask(t, e, e.token, withJSON(t, taskBody("web-1", src), func(m map[string]any) {
			m["speed_limit"], m["over_speed_threshold"] = 100, 20
		}))
		path := "/v3/tasks/" + id + "/speed-limit"
		show := func() string {
			t.Helper()
			r := e.do("GET", path, "", e.token)
			require.Equal(t, http.StatusOK, r.status, r.body)
			return r.body
		}
		// No windows yet: an empty list (§4.2.9), not a window never set.
		assert.JSONEq(t, `{"speed_limit":[]}`, show())

		valid := `{"speed_limit":[{"start":"18:00","end":"24:00","speed":200},{"start":"08:00","end":"18:00","speed":40,"over_speed_threshold":10}]}`
		r := e.do("POST", path, valid, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{}`, r.body)
		assert.JSONEq(t, valid, show(), "stored as sent")
		speeds := eng.calls().speeds
		require.Len(t, speeds, 1)
		assert.Equal(t, id, speeds[0].TaskID)
		assert.Equal(t, int32(100), speeds[0].U.SpeedLimit)
		assert.Equal(t, 20.0, speeds[0].U.OverSpeedThreshold)
		require.Len(t, speeds[0].U.Rules, 2)
		assert.Equal(t, "18:00", speeds[0].U.Rules[0].Start)
		assert.Equal(t, int32(200), speeds[0].U.Rules[0].Speed)
		assert.Equal(t, 10.0, speeds[0].U.Rules[1].OverSpeedThreshold)
		stored := show()

		rule := func(start, end string, speed any) map[string]any {
			return map[string]any{"start": start, "end": end, "speed": speed}
		}
		body := func(rules ...map[string]any) string {
			b, err := json.Marshal(map[string]any{"speed_limit": rules})
			require.NoError(t, err)
			return string(b)
		}
		six := make([]map[string]any, 6)
		for i := range six {
			six[i] = rule(fmt.Sprintf("%02d:00", i), fmt.Sprintf("%02d:00", i+1), 10)
		}
		for _, tc := range []struct{ name, body, code, param string }{
			{"overlapping windows", body(rule("00:00", "10:00", 1), rule("09:00", "12:00", 2)), "SMS.9001", "speed_limit[1]"},
			{"end past 24:00", body(rule("22:00", "24:30", 1)), "SMS.6405", "speed_limit[0].end"},
			{"hour 25", body(rule("25:00", "24:00", 1)), "SMS.6405", "speed_limit[0].start"},
			{"not HH:MM", body(rule("8h00", "18:00", 1)), "SMS.6405", "speed_limit[0].start"},
			{"not a time", body(rule("08:00", "noon", 1)), "SMS.6405", "speed_limit[0].end"},
			{"empty time", body(rule("", "18:00", 1)), "SMS.6405", "speed_limit[0].start"},
			{"start equals end", body(rule("10:00", "10:00", 1)), "SMS.9001", "speed_limit[0].end"},
			{"start after end", body(rule("18:00", "08:00", 1)), "SMS.9001", "speed_limit[0].end"},
			{"more than 5 windows", body(six...), "SMS.9001", "speed_limit"},
			{"speed over 10000", body(rule("00:00", "24:00", 10001)), "SMS.9001", "speed_limit[0].speed"},
			{"negative speed", body(rule("00:00", "24:00", -1)), "SMS.9001", "speed_limit[0].speed"},
			{"threshold over 100", body(map[string]any{"start": "00:00", "end": "24:00", "speed": 1, "over_speed_threshold": 100.5}), "SMS.9001", "speed_limit[0].over_speed_threshold"},
			{"no speed", body(map[string]any{"start": "00:00", "end": "24:00"}), "SMS.6013", "speed_limit[0].speed"},
			{"no start", body(map[string]any{"end": "24:00", "speed": 1}), "SMS.6013", "speed_limit[0].start"},
			{"speed not an integer", body(rule("00:00", "24:00", 1.5)), "SMS.9001", ""},
			{"no speed_limit", `{}`, "SMS.6013", "speed_limit"},
			{"speed_limit not an array", `{"speed_limit":{}}`, "SMS.9001", "speed_limit"},
			{"malformed JSON", `{"speed_limit":[`, "SMS.6010", ""},
		} {
			params := wantError(t, e.do("POST", path, tc.body, e.token), http.StatusBadRequest, tc.code, tc.name)
			if tc.param != "" {
				assert.Contains(t, params, tc.param, tc.name)
			}
			assert.JSONEq(t, stored, show(), tc.name+": rules unchanged")
			assert.Len(t, eng.calls().speeds, 1, tc.name+": the engine is not told")
		}

		// Another tenant can neither read nor change them.
		wantError(t, e.do("GET", path, "", e.other), http.StatusNotFound, "SMS.7703")
		wantError(t, e.do("POST", path, body(rule("00:00", "24:00", 1)), e.other), http.StatusNotFound, "SMS.7703")
		wantError(t, e.do("POST", "/v3/tasks/nope/speed-limit", body(rule("00:00", "24:00", 1)), e.token), http.StatusNotFound, "SMS.7703")
		assert.JSONEq(t, stored, show())
		assert.Len(t, eng.calls().speeds, 1)

		// Five windows are fine; no windows is back to the task's limit. A
		// closed run is no error: the next run reads the rules.
		r = e.do("POST", path, body(six[:5]...), e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		eng.set(func(f *fakeEngine) { f.noRun[id] = true })
		r = e.do("POST", path, `{"speed_limit":[]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{"speed_limit":[]}`, show())
		speeds = eng.calls().speeds
		require.Len(t, speeds, 3)
		assert.Len(t, speeds[1].U.Rules, 5)
		assert.Empty(t, speeds[2].U.Rules)

		// The spec's own example (§4.2.10) writes hours without a leading zero.
		example := `{"speed_limit":[{"start":"0:00","end":"8:00","speed":20},{"start":"8:00","end":"15:00","speed":50},{"start":"15:00","end":"23:59","speed":25}]}`
		r = e.do("POST", path, example, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, example, show())
		eng.set(func(f *fakeEngine) { f.noRun[id], f.callErr = false, errors.New("frontend unavailable") })
		wantError(t, e.do("POST", path, valid, e.token), http.StatusInternalServerError, string(smserr.InternalCode))
	})
}

// TestTaskSecrets: the TLS key and the passphrase go only to the task's
// tenant, only while a copy runs, and never to the log.
func TestTaskSecrets(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		logs := &testutil.Buffer{}
		eng := newFakeEngine(s)
		e := newEnvWith(t, s, envOptions{engine: eng, taskOptions: taskOpts,
			logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		id, _ := newSourceTask(t, e, "web-1")
		const pass = "pass-phrase-42"
		cert, key, err := taskcert.New("smsflow-task-" + id)
		require.NoError(t, err)
		ca := cert // SSL_CONFIG stores the task certificate as its own CA

		// Not before the copy starts (SMS.9905), nor before SSL_CONFIG ran (SMS.0521).
		wantError(t, e.do("GET", "/v3/tasks/"+id+"/certkey", "", e.token), http.StatusBadRequest, "SMS.9905")
		wantError(t, e.do("GET", "/v3/tasks/"+id+"/passphrase", "", e.token), http.StatusBadRequest, "SMS.9905")
		setTask(t, e, id, map[string]any{"state": sms.TaskRunning})
		wantError(t, e.do("GET", "/v3/tasks/"+id+"/certkey", "", e.token), http.StatusBadRequest, "SMS.0521")
		wantError(t, e.do("GET", "/v3/tasks/"+id+"/passphrase", "", e.token), http.StatusBadRequest, "SMS.0521")

		sealedKey, err := e.box.Seal(key)
		require.NoError(t, err)
		sealedPass, err := e.box.Seal(pass)
		require.NoError(t, err)
		require.NoError(t, e.store.DB().Model(&store.Task{}).Where("id = ?", id).
			Updates(store.Task{CertPEM: cert, CAPEM: ca, KeyPEMEnc: sealedKey, PassphraseEnc: sealedPass}).Error)
		assert.NotContains(t, sealedKey, "PRIVATE KEY", "stored sealed")

		for _, state := range []sms.TaskState{sms.TaskRunning, sms.TaskSyncing} {
			setTask(t, e, id, map[string]any{"state": state})
			r := e.do("GET", "/v3/tasks/"+id+"/certkey", "", e.token)
			require.Equal(t, http.StatusOK, r.status, r.body)
			m := r.json(t)
			assert.Equal(t, cert, m["cert"])
			assert.Equal(t, key, m["private_key"])
			assert.NotContains(t, m, "ca", "the CA only with enable_ca_cert")
			// The target's management and data pairs: each a pair of its
			// own, issued by the task certificate, the same key at every read.
			keys := map[string]bool{key: true}
			for _, role := range []string{"target_mgmt", "target_data"} {
				c, k := m[role+"_cert"].(string), m[role+"_private_key"].(string)
				_, err := tls.X509KeyPair([]byte(c), []byte(k))
				require.NoError(t, err, role)
				require.NoError(t, taskcert.Verify(ca, c, time.Now()), role)
				assert.NotEqual(t, cert, c, role)
				assert.False(t, keys[k], "%s has a key of its own", role)
				keys[k] = true
			}
			r = e.do("GET", "/v3/tasks/"+id+"/certkey?enable_ca_cert=true", "", e.token)
			require.Equal(t, http.StatusOK, r.status, r.body)
			withCA := r.json(t)
			assert.Equal(t, ca, withCA["ca"])
			assert.Equal(t, m["target_data_private_key"], withCA["target_data_private_key"], "derived, not new at each read")
			assert.Equal(t, m["target_mgmt_private_key"], withCA["target_mgmt_private_key"])
			wantError(t, e.do("GET", "/v3/tasks/"+id+"/certkey?enable_ca_cert=maybe", "", e.token), http.StatusBadRequest, "SMS.9001")
			r = e.do("GET", "/v3/tasks/"+id+"/passphrase", "", e.token)
			require.Equal(t, http.StatusOK, r.status, r.body)
			assert.JSONEq(t, `{"task_id":`+q(id)+`,"passphrase":`+q(pass)+`}`, r.body)
		}

		// Another tenant learns nothing, not even that the task exists.
		for _, p := range []string{"/certkey", "/passphrase"} {
			r := e.do("GET", "/v3/tasks/"+id+p, "", e.other)
			wantError(t, r, http.StatusNotFound, "SMS.7703", p)
			assert.NotContains(t, r.body, pass)
			assert.NotContains(t, r.body, "PRIVATE KEY")
			wantError(t, e.do("GET", "/v3/tasks/nope"+p, "", e.token), http.StatusNotFound, "SMS.7703", p)
		}
		// Once the copy is over, no longer.
		setTask(t, e, id, map[string]any{"state": sms.TaskMigrateSuccess})
		wantError(t, e.do("GET", "/v3/tasks/"+id+"/certkey", "", e.token), http.StatusBadRequest, "SMS.9905")
		wantError(t, e.do("GET", "/v3/tasks/"+id+"/passphrase", "", e.token), http.StatusBadRequest, "SMS.9905")

		out := logs.String()
		assert.Contains(t, out, "task key read", "key reads are audited")
		assert.NotContains(t, out, pass)
		assert.NotContains(t, out, "c2VjcmV0LWtleQ")
		assert.NotContains(t, out, "PRIVATE KEY")
	})
}

func TestTaskConfigurationSetting(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		id, _ := newSourceTask(t, e, "web-1")
		path := "/v3/tasks/" + id + "/configuration-setting"
		r := e.do("GET", path, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{"task_id":`+q(id)+`,"migrate_type":"LINUX_MIGRATE_FILE","configurations":[]}`, r.body)

		r = e.do("POST", path, `{"configurations":[{"config_key":"MIGRATE_EXCLUDE_DIR","config_value":"/tmp"},
			{"config_key":"LINUX_CPU_LIMIT","config_value":"50","config_status":"ON"}]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		// Setting a key again replaces it; the others stay.
		r = e.do("POST", path, `{"configurations":[{"config_key":"MIGRATE_EXCLUDE_DIR","config_value":"/tmp,/var/tmp"}]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		want := `{"task_id":` + q(id) + `,"migrate_type":"LINUX_MIGRATE_FILE","configurations":[
			{"config_key":"MIGRATE_EXCLUDE_DIR","config_value":"/tmp,/var/tmp"},
			{"config_key":"LINUX_CPU_LIMIT","config_value":"50","config_status":"ON"}]}`
		assert.JSONEq(t, want, e.do("GET", path, "", e.token).body)
		m := e.do("GET", "/v3/tasks/"+id, "", e.token).json(t)
		assert.Len(t, m["special_config"], 2, "the task shows them too")

		for _, tc := range []struct{ name, body, code, param string }{
			{"unknown key", `{"configurations":[{"config_key":"ROOT_PASSWORD","config_value":"x"}]}`, "SMS.9001", "configurations[0].config_key"},
			{"no value", `{"configurations":[{"config_key":"LINUX_CPU_LIMIT"}]}`, "SMS.6013", "configurations[0].config_value"},
			{"value too long", `{"configurations":[{"config_key":"LINUX_CPU_LIMIT","config_value":` + q(strings.Repeat("9", 4097)) + `}]}`, "SMS.9001", "configurations[0].config_value"},
			{"no configurations", `{}`, "SMS.6013", "configurations"},
			{"malformed JSON", `{"configurations":`, "SMS.6010", ""},
		} {
			params := wantError(t, e.do("POST", path, tc.body, e.token), http.StatusBadRequest, tc.code, tc.name)
			if tc.param != "" {
				assert.Equal(t, []string{tc.param}, params, tc.name)
			}
		}
		wantError(t, e.do("GET", path, "", e.other), http.StatusNotFound, "SMS.7703")
		wantError(t, e.do("POST", path, `{"configurations":[{"config_key":"LINUX_CPU_LIMIT","config_value":"1"}]}`, e.other), http.StatusNotFound, "SMS.7703")
		assert.JSONEq(t, want, e.do("GET", path, "", e.token).body, "refusals change nothing")
	})
}

func TestTaskConsistencyResult(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		id, src := newSourceTask(t, e, "web-1")
		path := "/v3/tasks/" + id + "/consistency-result"
		r := e.do("GET", path, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{"task_id":`+q(id)+`,"result_list":[]}`, r.body)

		result := `{"dir_check":"/","num_total_files":10,"num_different_files":1,"num_target_miss_files":0,"num_target_more_files":2}`
		r = e.do("POST", path, `{"consistency_result":[`+result+`]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		var got struct {
			TaskID     string   `json:"task_id"`
			ResultList []string `json:"result_list"` // the SDK declares strings
		}
		require.NoError(t, json.Unmarshal([]byte(e.do("GET", path, "", e.token).body), &got))
		assert.Equal(t, id, got.TaskID)
		require.Len(t, got.ResultList, 1)
		assert.JSONEq(t, result, got.ResultList[0])
		assert.Equal(t, true, e.do("GET", "/v3/sources/"+src, "", e.token).json(t)["is_consistency_result_exist"])

		for _, tc := range []struct{ name, body, code, param string }{
			{"negative count", `{"consistency_result":[{"dir_check":"/","num_total_files":-1,"num_different_files":0,"num_target_miss_files":0,"num_target_more_files":0}]}`, "SMS.9001", "consistency_result[0].num_total_files"},
			{"no dir_check", `{"consistency_result":[{"num_total_files":1,"num_different_files":0,"num_target_miss_files":0,"num_target_more_files":0}]}`, "SMS.6013", "consistency_result[0].dir_check"},
			{"no count", `{"consistency_result":[{"dir_check":"/"}]}`, "SMS.6013", "consistency_result[0].num_total_files"},
			{"count not an integer", `{"consistency_result":[{"dir_check":"/","num_total_files":"10"}]}`, "SMS.9001", ""},
			{"malformed JSON", `{"consistency_result":[`, "SMS.6010", ""},
		} {
			params := wantError(t, e.do("POST", path, tc.body, e.token), http.StatusBadRequest, tc.code, tc.name)
			if tc.param != "" {
				assert.Contains(t, params, tc.param, tc.name)
			}
		}
		wantError(t, e.do("GET", path, "", e.other), http.StatusNotFound, "SMS.7703")
		wantError(t, e.do("POST", path, `{"consistency_result":[]}`, e.other), http.StatusNotFound, "SMS.7703")
		require.NoError(t, json.Unmarshal([]byte(e.do("GET", path, "", e.token).body), &got))
		assert.Len(t, got.ResultList, 1, "refusals change nothing")

		// Export: the named tasks' results as CSV.
		ex := "/v3/tasks/consistency-results/export"
		r = e.do("POST", ex, `{"task_info":[{"task_id":`+q(id)+`,"source_id":`+q(src)+`,"source_name":"web-1"}]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/csv"), r.header.Get("Content-Type"))
		assert.Contains(t, r.header.Get("Content-Disposition"), "attachment")
		rows, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
		require.NoError(t, err)
		assert.Equal(t, [][]string{
			{"task_id", "source_id", "source_name", "dir_check", "num_total_files", "num_different_files", "num_target_miss_files", "num_target_more_files"},
			{id, src, "web-1", "/", "10", "1", "0", "2"},
		}, rows)
		for _, tc := range []struct {
			name, body  string
			status      int
			code, param string
			token       string
		}{
			{name: "no task_info", body: `{}`, status: 400, code: "SMS.6013", param: "task_info"},
			{name: "empty task id", body: `{"task_info":[{"task_id":""}]}`, status: 400, code: "SMS.9001", param: "task_info[0].task_id"},
			{name: "no task id", body: `{"task_info":[{"source_id":"s"}]}`, status: 400, code: "SMS.6013", param: "task_info[0].task_id"},
			{name: "unknown task", body: `{"task_info":[{"task_id":"nope"}]}`, status: 404, code: "SMS.7703", param: "nope"},
			{name: "another tenant's task", body: `{"task_info":[{"task_id":` + q(id) + `}]}`, status: 404, code: "SMS.7703", param: id, token: e.other},
		} {
			token := tc.token
			if token == "" {
				token = e.token
			}
			r := e.do("POST", ex, tc.body, token)
			params := wantError(t, r, tc.status, tc.code, tc.name)
			assert.Equal(t, []string{tc.param}, params, tc.name)
			assert.NotContains(t, r.body, "num_total_files", tc.name)
		}

		// An empty list clears the results and the source's flag.
		r = e.do("POST", path, `{"consistency_result":[]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{"task_id":`+q(id)+`,"result_list":[]}`, e.do("GET", path, "", e.token).body)
		assert.Equal(t, false, e.do("GET", "/v3/sources/"+src, "", e.token).json(t)["is_consistency_result_exist"])
	})
}

func TestTaskCollectLog(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		id, src := newSourceTask(t, e, "web-1")
		path := "/v3/tasks/" + id + "/log"
		commands := func() []store.Command {
			cmds, err := e.store.Commands(t.Context(), tenantOf(e), src)
			require.NoError(t, err)
			return cmds
		}
		// Not before the task starts (SMS.7717).
		wantError(t, e.do("POST", path, `{"log_bucket":"logs"}`, e.token), http.StatusBadRequest, "SMS.7717")
		assert.Empty(t, commands())

		setTask(t, e, id, map[string]any{"state": sms.TaskRunning})
		for _, tc := range []struct{ name, body, code, param string }{
			{"no bucket", `{}`, "SMS.6013", "log_bucket"},
			{"bucket name too long", `{"log_bucket":` + q(strings.Repeat("b", 256)) + `}`, "SMS.9001", "log_bucket"},
			{"malformed JSON", `{"log_bucket":`, "SMS.6010", ""},
		} {
			params := wantError(t, e.do("POST", path, tc.body, e.token), http.StatusBadRequest, tc.code, tc.name)
			if tc.param != "" {
				assert.Equal(t, []string{tc.param}, params, tc.name)
			}
		}
		wantError(t, e.do("POST", path, `{"log_bucket":"logs"}`, e.other), http.StatusNotFound, "SMS.7703")
		assert.Empty(t, commands())
		assert.Equal(t, sms.LogInit, taskRow(t, e, id).LogCollectStatus)

		r := e.do("POST", path, `{"log_bucket":"logs"}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, sms.LogUploading, taskRow(t, e, id).LogCollectStatus)
		cmds := commands()
		require.Len(t, cmds, 1)
		assert.Equal(t, sms.CmdUploadLog, cmds[0].Name)
		assert.Equal(t, "logs", cmds[0].Bucket)
		assert.Equal(t, id, cmds[0].TaskID)
		// One collection at a time (SMS.7716).
		wantError(t, e.do("POST", path, `{"log_bucket":"logs"}`, e.token), http.StatusBadRequest, "SMS.7716")
		assert.Len(t, commands(), 1)
	})
}

func TestTaskNetworkCheckInfo(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		id, _ := newSourceTask(t, e, "web-1")
		path := "/v3/" + id + "/update-network-check-info"
		info := `{"domain_connectivity":true,"destination_connectivity":false,"network_delay":12.5,"network_jitter":1.5,
			"migration_speed":100,"loss_percentage":0.5,"cpu_usage":20,"mem_usage":512,"evaluation_result":"GOOD"}`
		r := e.do("POST", path, info, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{"task_id":`+q(id)+`}`, r.body)
		m := e.do("GET", "/v3/tasks/"+id, "", e.token).json(t)
		got, err := json.Marshal(m["network_check_info"])
		require.NoError(t, err)
		assert.JSONEq(t, info, string(got))

		for _, tc := range []struct{ name, body, code, param string }{
			{"loss over 100%", withJSON(t, info, func(m map[string]any) { m["loss_percentage"] = 101 }), "SMS.9001", "loss_percentage"},
			{"negative delay", withJSON(t, info, func(m map[string]any) { m["network_delay"] = -1 }), "SMS.9001", "network_delay"},
			{"no delay", withJSON(t, info, func(m map[string]any) { delete(m, "network_delay") }), "SMS.6013", "network_delay"},
			{"no evaluation", withJSON(t, info, func(m map[string]any) { delete(m, "evaluation_result") }), "SMS.6013", "evaluation_result"},
			{"connectivity not a boolean", withJSON(t, info, func(m map[string]any) { m["domain_connectivity"] = "yes" }), "SMS.9001", "domain_connectivity"},
			{"malformed JSON", `{"network_delay":`, "SMS.6010", ""},
		} {
			params := wantError(t, e.do("POST", path, tc.body, e.token), http.StatusBadRequest, tc.code, tc.name)
			if tc.param != "" {
				assert.Equal(t, []string{tc.param}, params, tc.name)
			}
		}
		wantError(t, e.do("POST", path, withJSON(t, info, func(m map[string]any) { m["evaluation_result"] = "BAD" }), e.other), http.StatusNotFound, "SMS.7703")
		wantError(t, e.do("POST", "/v3/nope/update-network-check-info", info, e.token), http.StatusNotFound, "SMS.7703")
		assert.Equal(t, "GOOD", taskRow(t, e, id).NetworkCheckInfo.EvaluationResult, "refusals change nothing")
	})
}

// manyTargetDisks is n valid target disks.
func manyTargetDisks(n int) []any {
	disks := make([]any, n)
	for i := range disks {
		disks[i] = map[string]any{"name": fmt.Sprintf("/dev/vd%d", i), "size": 1 << 30, "used_size": 0, "physical_volumes": []any{}}
	}
	return disks
}
