package tserver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/workflows"
)

// TestRecordWaveHistories runs waves on the embedded server with scripted
// members and stub activities, and writes every run's history to
// $SMSFLOW_RECORD_HISTORIES (../workflows/testdata/histories), where
// workflows' replay test replays them against today's WaveWorkflow:
//
//	SMSFLOW_RECORD_HISTORIES=$PWD/workflows/testdata/histories go test ./tserver/ -run TestRecordWaveHistories
//
// The members are the real MigrationWorkflow over stub activities, with an
// agent that finishes each copy command at once; one member's history is
// recorded too (a run with the wave-member marker).
func TestRecordWaveHistories(t *testing.T) {
	dir := os.Getenv("SMSFLOW_RECORD_HISTORIES")
	if dir == "" {
		t.Skip("set SMSFLOW_RECORD_HISTORIES to record wave histories")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := embedded(ctx, t)

	plans := map[string]activities.WavePlan{}
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	w.RegisterWorkflow(workflows.WaveWorkflow)
	w.RegisterWorkflow(workflows.MigrationWorkflow)
	registerStubMigration(w, c)
	w.RegisterActivityWithOptions(func(_ context.Context, ref activities.WaveRef) (activities.WavePlan, error) {
		return plans[ref.WaveID], nil
	}, activity.RegisterOptions{Name: "LoadWave"})
	w.RegisterActivityWithOptions(func(_ context.Context, ref activities.WaveRef, taskID string) (activities.TaskSpec, error) {
		return activities.TaskSpec{TaskID: taskID, DomainID: ref.DomainID, SourceID: "src-" + taskID, MigProjectID: "mp",
			Type: sms.MigrateBlock, OSType: sms.Linux, TimeZone: "UTC", SyncInterval: time.Second, AgentStepTimeout: time.Minute}, nil
	}, activity.RegisterOptions{Name: "WaveMemberInput"})
	w.RegisterActivityWithOptions(func(context.Context, activities.WaveRef, activities.WaveStateChange) error { return nil },
		activity.RegisterOptions{Name: "SetWaveState"})
	w.RegisterActivityWithOptions(func(context.Context, activities.WaveRef, []activities.WaveMemberChange) error { return nil },
		activity.RegisterOptions{Name: "UpdateWaveMembers"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e := &engine.Engine{Client: c, Namespace: "default"}

	plan := func(id string, n, maxConcurrent int, budget int32) activities.WavePlan {
		p := activities.WavePlan{State: wave.WaveScheduled, Spec: wave.Spec{Name: id, ProjectID: "mp", MaxConcurrent: maxConcurrent,
			Budget: wave.Budget{DefaultMbps: budget}, TimeZone: "UTC", CutoverMode: wave.CutoverAuto, MaxFailures: n}}
		for i := 0; i < n; i++ {
			p.Members = append(p.Members, activities.WavePlanMember{ID: fmt.Sprintf("%s-m%d", id, i),
				TaskID: fmt.Sprintf("%s-t%d", id, i), Priority: 1, State: wave.MemberPending})
		}
		return p
	}
	wait := func(id string, want wave.WaveState) {
		t.Helper()
		for ctx.Err() == nil {
			v, err := c.QueryWorkflow(ctx, workflows.WaveWorkflowID(id), "", workflows.QueryWaveState)
			if err == nil {
				var st workflows.WaveStatus
				if v.Get(&st) == nil && st.State == want {
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		v, err := c.QueryWorkflow(context.Background(), workflows.WaveWorkflowID(id), "", workflows.QueryWaveState)
		var st workflows.WaveStatus
		if err == nil {
			_ = v.Get(&st)
		}
		for _, m := range st.Members {
			if m.State != wave.MemberDone {
				t.Logf("member %s (task %s) is %s", m.ID, m.TaskID, m.State)
				recordRun(context.Background(), t, c, workflows.MigrationWorkflowID(m.TaskID), "", "/tmp/stuck-member-"+m.TaskID+".json")
			}
		}
		recordRun(context.Background(), t, c, workflows.WaveWorkflowID(id), "", "/tmp/stuck-wave.json")
		t.Fatalf("wave %s never reached %s: %s %s", id, want, st.State, st.Reason)
	}
	action := func(id string, a wave.Action) {
		t.Helper()
		if err := e.WaveAction(ctx, id, workflows.WaveActionRequest{Action: a}); err != nil {
			t.Fatalf("%s %s: %v", id, a, err)
		}
	}

	// A wave to DONE: three members through a window of two, approvals.
	plans["rec-done"] = plan("rec-done", 3, 2, 100)
	p := plans["rec-done"]
	p.Spec.TestFirst, p.Spec.CutoverMode = true, wave.CutoverApprove
	plans["rec-done"] = p
	start(ctx, t, e, "rec-done")
	wait("rec-done", wave.WaveTesting)
	waitTested(ctx, t, c, "rec-done")
	action("rec-done", wave.ActionApproveTest)
	action("rec-done", wave.ActionApproveCutover)
	wait("rec-done", wave.WaveDone)
	record(ctx, t, c, "rec-done", dir, "wave-done")
	recordRun(ctx, t, c, workflows.MigrationWorkflowID("rec-done-t0"), "", filepath.Join(dir, "wave-member-done.json"))

	// Failures, pause, retry, resume, cancel.
	plans["rec-cancel"] = plan("rec-cancel", 3, 3, 90)
	p = plans["rec-cancel"]
	p.Spec.MaxFailures = 0
	p.Members[0].TaskID = "" // no task: fails at once
	plans["rec-cancel"] = p
	start(ctx, t, e, "rec-cancel")
	wait("rec-cancel", wave.WavePaused)
	if err := c.SignalWorkflow(ctx, workflows.WaveWorkflowID("rec-cancel"), "", workflows.SignalWaveRetryFailed, nil); err != nil {
		t.Fatal(err)
	}
	action("rec-cancel", wave.ActionResume)
	action("rec-cancel", wave.ActionCancel)
	record(ctx, t, c, "rec-cancel", dir, "wave-pause-retry-cancel")

	// A continue-as-new or two (a small bound keeps the server's load
	// low: 130 members at the real bound starved the worker on a loaded
	// 2-core machine).
	plans["rec-can"] = plan("rec-can", 12, 4, 400)
	if err := e.StartWave(ctx, workflows.WaveInput{WaveID: "rec-can", DomainID: "d1", ProjectID: "p1", TimeZone: "UTC",
		OpsPerRun: 60}); err != nil {
		t.Fatal(err)
	}
	wait("rec-can", wave.WaveDone)
	record(ctx, t, c, "rec-can", dir, "wave-continue-as-new")
}

func start(ctx context.Context, t *testing.T, e *engine.Engine, id string) {
	t.Helper()
	if err := e.StartWave(ctx, workflows.WaveInput{WaveID: id, DomainID: "d1", ProjectID: "p1", TimeZone: "UTC"}); err != nil {
		t.Fatal(err)
	}
}

// waitTested waits until every member of the wave is TESTED.
func waitTested(ctx context.Context, t *testing.T, c client.Client, id string) {
	t.Helper()
	for ctx.Err() == nil {
		v, err := c.QueryWorkflow(ctx, workflows.WaveWorkflowID(id), "", workflows.QueryWaveState)
		if err == nil {
			var st workflows.WaveStatus
			n := 0
			if v.Get(&st) == nil {
				for _, m := range st.Members {
					if m.State == wave.MemberTested {
						n++
					}
				}
				if n == len(st.Members) {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("tests never done")
}

// record writes each run of the wave (oldest first) as name-<n>.json,
// once the last run closed.
func record(ctx context.Context, t *testing.T, c client.Client, id, dir, name string) {
	t.Helper()
	wid := workflows.WaveWorkflowID(id)
	if err := c.GetWorkflow(ctx, wid, "").Get(ctx, nil); err != nil {
		t.Logf("%s ended: %v", id, err)
	}
	// Visibility follows the run's end a moment later.
	var runs []*workflowpb.WorkflowExecutionInfo
	for try := 0; try < 100; try++ {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = '%s'", wid)})
		if err != nil {
			t.Fatal(err)
		}
		runs = resp.Executions
		if len(runs) > 0 && runs[0].Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(runs) == 0 {
		t.Fatalf("no runs of %s", wid)
	}
	for i := range runs {
		r := runs[len(runs)-1-i] // the list is newest first
		if r.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("%s still running", wid)
		}
		file := name + ".json"
		if len(runs) > 1 {
			file = fmt.Sprintf("%s-%d.json", name, i+1)
		}
		recordRun(ctx, t, c, wid, r.Execution.RunId, filepath.Join(dir, file))
	}
}

// recordRun writes one run's history (runID "": the latest).
func recordRun(ctx context.Context, t *testing.T, c client.Client, wid, runID, file string) {
	t.Helper()
	hist := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, wid, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d events", filepath.Base(file), len(hist.Events))
}
