package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/speedlimit"
	"github.com/smsflow/smsflow/workflows"
)

// boundedQueue is the task queue of this test's own worker: its
// MigrationWorkflow runs against stub activities, beside serve's worker.
const boundedQueue = "e2e-bounded-history"

// stubActivities stand in for the real ones under their names, recording
// the agent commands the workflow queues.
type stubActivities struct {
	mu       sync.Mutex
	commands []sms.Command
}

func (a *stubActivities) count(cmd sms.Command) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.commands {
		if c == cmd {
			n++
		}
	}
	return n
}

func (a *stubActivities) register(w worker.Worker) {
	reg := func(fn any, name string) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(_ context.Context, tr activities.Transition) error {
		if tr.Command != "" {
			a.mu.Lock()
			a.commands = append(a.commands, tr.Command)
			a.mu.Unlock()
		}
		return nil
	}, "Apply")
	reg(func(_ context.Context, in activities.StepInput) (activities.StepOutput, error) {
		if in.Step == sms.StepCreate {
			return activities.StepOutput{Target: &provider.Target{VMID: "vm-rec", Location: "/nowhere", Created: true}}, nil
		}
		return activities.StepOutput{}, nil
	}, "RunStep")
	reg(func(context.Context, activities.Ref) error { return nil }, "WaitAgent")
	reg(func(context.Context, activities.Ref) error { return nil }, "CheckConsistency")
	reg(func(context.Context, activities.SpeedInput) error { return nil }, "PushSpeedLimit")
	reg(func(context.Context, activities.CloneInput) error { return nil }, "Clone")
	reg(func(context.Context, activities.CleanupInput) error { return nil }, "Cleanup")
}

// TestBoundedHistoryOnTheServer runs a continuous-sync task on serve's
// embedded Temporal with a small history bound, so that its runs continue as
// new at every kind of point: mid-copy, mid-pass, between passes, in the
// launch's final pass, and idle after success. Each next run starts from
// the state the server handed it, and the agent gets each command once.
// With SMSFLOW_RECORD_HISTORIES set, every run's history is written for the
// replay test (they carry every version marker at its newest version).
func TestBoundedHistoryOnTheServer(t *testing.T) {
	s := newServer(t)
	c := dialTemporal(t, s.front, "default")
	stubs := &stubActivities{}
	w := worker.New(c, boundedQueue, worker.Options{})
	w.RegisterWorkflow(workflows.MigrationWorkflow)
	stubs.register(w)
	require.NoError(t, w.Start())
	defer w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rules := []speedlimit.Rule{{Start: "00:00", End: "23:59", Speed: 80, OverSpeedThreshold: 20}}
	in := workflows.Input{TaskID: "rec-bounded", DomainID: "d-rec", SourceID: "s-rec", MigProjectID: "p-rec",
		Type: "MIGRATE_BLOCK", OSType: "LINUX", AutoStart: true, Syncing: true, StartTargetServer: true,
		SpeedLimit: 100, SpeedRules: rules, TimeZone: "UTC", SyncInterval: time.Hour,
		AgentStepTimeout: 10 * time.Minute, HistoryBound: 150}
	id := "e2e-bounded/" + in.TaskID
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: boundedQueue}, workflows.MigrationWorkflow, in)
	require.NoError(t, err)

	var runs []string
	current := func() string {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		require.NoError(t, err)
		r := d.WorkflowExecutionInfo.Execution.RunId
		if !slices.Contains(runs, r) {
			runs = append(runs, r)
		}
		return r
	}
	current()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		require.Eventually(t, cond, time.Minute, 20*time.Millisecond, what)
	}
	// fill adds to the history (fn) until the run continues as new.
	fill := func(what string, fn func(i int)) {
		t.Helper()
		before := current()
		for i := 0; current() == before; i++ {
			require.NoError(t, ctx.Err(), "waiting for a continue-as-new "+what)
			fn(i)
			time.Sleep(20 * time.Millisecond)
		}
	}
	progress := func(sub sms.Subtask, pct int) {
		err := c.SignalWorkflow(ctx, id, "", workflows.SignalProgress, workflows.Progress{Subtask: sub, Progress: int32(pct), MigrateSpeed: 10})
		require.NoError(t, err)
	}
	action := func(op sms.Action) error {
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: workflows.UpdateAction,
			Args: []any{workflows.ActionRequest{Operation: op}}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err == nil {
			err = h.Get(ctx, nil)
		}
		return err
	}
	state := func() workflows.Status {
		v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryState)
		require.NoError(t, err)
		var st workflows.Status
		require.NoError(t, v.Get(&st))
		return st
	}

	waitFor("START", func() bool { return stubs.count("START") == 1 })
	fill("mid-copy", func(i int) { progress("MIGRATE_LINUX_BLOCK", min(1+i, 99)) })
	progress("MIGRATE_LINUX_BLOCK", 100)
	waitFor("first pass", func() bool { return stubs.count("SYNC") == 1 })
	fill("mid-pass", func(i int) { progress("SYNC_LINUX_BLOCK", min(1+i, 99)) })
	progress("SYNC_LINUX_BLOCK", 100)
	waitFor("between passes", func() bool { return state().SyncRounds == 1 })
	checks := 0
	fill("between passes", func(int) {
		require.NoError(t, action(sms.ActionNetworkCheck))
		checks++
	})
	require.NoError(t, action(sms.ActionCloneTest))
	require.NoError(t, c.SignalWorkflow(ctx, id, "", workflows.SignalSpeed, workflows.SpeedUpdate{SpeedLimit: 100,
		Rules: []speedlimit.Rule{{Start: "00:00", End: "23:59", Speed: 60, OverSpeedThreshold: 20}}}))
	require.NoError(t, action(sms.ActionTest))
	waitFor("final pass", func() bool { return stubs.count("SYNC") == 2 })
	fill("final pass", func(i int) { progress("SYNC_LINUX_BLOCK", min(1+i, 99)) })
	progress("SYNC_LINUX_BLOCK", 100)
	waitFor("success", func() bool { return state().TaskState == sms.TaskMigrateSuccess })
	fill("idle", func(i int) {
		require.NoError(t, c.SignalWorkflow(ctx, id, "", workflows.SignalSpeed, workflows.SpeedUpdate{SpeedLimit: 100 - int32(i%2)*10}))
	})
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: workflows.UpdateDelete,
		WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))
	var st workflows.Status
	require.NoError(t, c.GetWorkflow(ctx, id, "").Get(ctx, &st))
	assert.True(t, st.Deleted)

	assert.Equal(t, 1, stubs.count("START"), "the copy was sent once")
	assert.Equal(t, 2, stubs.count("SYNC"), "one pass and the launch's final pass, each sent once")
	// Checks asked for while one is being sent are answered by one more.
	assert.Positive(t, stubs.count("NETWORK_CHECK"))
	assert.LessOrEqual(t, stubs.count("NETWORK_CHECK"), checks)

	// What each run started from: the state the last one carried.
	names := []string{"copy", "mid-copy", "mid-pass", "between-passes", "final-pass", "idle"}
	require.Len(t, runs, len(names))
	hists := make([]*historypb.History, len(runs))
	for i, r := range runs {
		hists[i] = history(ctx, t, c, id, r)
	}
	resume := func(i int) *workflows.RunState {
		var next workflows.Input
		attrs := hists[i].Events[0].GetWorkflowExecutionStartedEventAttributes()
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(attrs.Input, &next))
		require.NotNil(t, next.Resume, "run %d carries state", i+1)
		return next.Resume
	}
	r := resume(1)
	assert.True(t, r.ResumeAgent && r.AgentCommand == "START" && r.Step == sms.StepMigrate, "%+v", r)
	assert.Positive(t, r.AgentProgress)
	r = resume(2)
	assert.True(t, r.ResumeAgent && r.AgentCommand == "SYNC" && !r.FinalPass && r.InSyncLoop, "%+v", r)
	r = resume(3)
	assert.True(t, r.ResumeSync && r.SyncRounds == 1 && r.TaskState == sms.TaskSyncing, "%+v", r)
	r = resume(4)
	assert.True(t, r.ResumeAgent && r.FinalPass, "%+v", r)
	assert.Equal(t, int32(60), r.Limit.Mbps, "the changed rules are in force")
	r = resume(5)
	assert.False(t, r.ResumeSteps, "idle")
	assert.Equal(t, sms.TaskMigrateSuccess, r.TaskState)

	dir := os.Getenv(recordEnv)
	if dir == "" || t.Failed() {
		return
	}
	for i, h := range hists {
		b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
		require.NoError(t, err)
		name := fmt.Sprintf("bounded-%d-%s.json", i+1, names[i])
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
}

// history is one run's whole history.
func history(ctx context.Context, t *testing.T, c client.Client, id, runID string) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, id, runID, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}
