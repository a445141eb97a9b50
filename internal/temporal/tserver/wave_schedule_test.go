package tserver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/workflows"
)

// The engine's wave Schedule on the embedded server: made, moved (the
// second ScheduleWave updates it), paused and unpaused, and when it fires it
// starts wave/<id> once, carrying SmsWaveId; deleting it twice is fine.
func TestWaveScheduleOnTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := embedded(ctx, t)
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	w.RegisterWorkflow(workflows.WaveWorkflow)
	w.RegisterWorkflow(workflows.WaveStartWorkflow)
	w.RegisterActivityWithOptions(func(context.Context, activities.WaveRef) (activities.WavePlan, error) {
		return activities.WavePlan{Spec: wave.Spec{MaxConcurrent: 1, TimeZone: "UTC", CutoverMode: wave.CutoverAuto}}, nil
	}, activity.RegisterOptions{Name: "LoadWave"})
	w.RegisterActivityWithOptions(func(context.Context, activities.WaveRef, activities.WaveStateChange) error { return nil },
		activity.RegisterOptions{Name: "SetWaveState"})
	w.RegisterActivityWithOptions(func(context.Context, activities.WaveRef, []activities.WaveMemberChange) error { return nil },
		activity.RegisterOptions{Name: "UpdateWaveMembers"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e := &engine.Engine{Client: c, Namespace: "default"}
	in := workflows.WaveInput{WaveID: "sched", DomainID: "d1", TimeZone: "UTC"}

	if err := e.ScheduleWave(ctx, "sched", time.Now().Add(time.Hour), in); err != nil {
		t.Fatal(err)
	}
	h := c.ScheduleClient().GetHandle(ctx, workflows.WaveScheduleID("sched"))
	if err := e.PauseWaveSchedule(ctx, "sched", true); err != nil {
		t.Fatal(err)
	}
	d, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Schedule.State.Paused || d.Schedule.State.RemainingActions != 1 {
		t.Fatalf("schedule state %+v: want paused with one action left", d.Schedule.State)
	}
	if err := e.PauseWaveSchedule(ctx, "sched", false); err != nil {
		t.Fatal(err)
	}
	// Far enough ahead that the describe below sees it before it fires on
	// a loaded machine (3 s once left 98 ms).
	at := time.Now().Add(10 * time.Second).Truncate(time.Second)
	if err := e.ScheduleWave(ctx, "sched", at, in); err != nil { // moved
		t.Fatal(err)
	}
	if d, err = h.Describe(ctx); err != nil {
		t.Fatal(err)
	}
	if next := d.Info.NextActionTimes; len(next) != 1 || !next[0].Equal(at) {
		t.Fatalf("next actions %v, want only %s", next, at)
	}
	// It fires and the wave (no members) runs to DONE.
	var run client.WorkflowRun
	for run == nil && ctx.Err() == nil {
		if _, err := c.DescribeWorkflowExecution(ctx, workflows.WaveWorkflowID("sched"), ""); err == nil {
			run = c.GetWorkflow(ctx, workflows.WaveWorkflowID("sched"), "")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if run == nil {
		t.Fatal("the schedule never started the wave")
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatalf("wave run: %v", err)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, workflows.WaveWorkflowID("sched"), "")
	if err != nil {
		t.Fatal(err)
	}
	if sa := desc.WorkflowExecutionInfo.SearchAttributes.GetIndexedFields()[workflows.SearchWaveID]; sa == nil || string(sa.Data) != `"sched"` {
		t.Fatalf("SmsWaveId = %v", sa)
	}
	if d, err = h.Describe(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Info.NumActions != 1 || len(d.Info.NextActionTimes) != 0 {
		t.Fatalf("after firing: %d actions, next %v", d.Info.NumActions, d.Info.NextActionTimes)
	}
	for i := 0; i < 2; i++ {
		if err := e.UnscheduleWave(ctx, "sched"); err != nil {
			t.Fatalf("unschedule %d: %v", i, err)
		}
	}
	var nf *serviceerror.NotFound
	if _, err := h.Describe(ctx); !errors.As(err, &nf) {
		t.Fatalf("describe after delete: %v", err)
	}
}
