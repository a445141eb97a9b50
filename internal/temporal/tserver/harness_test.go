package tserver_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/internal/temporal/tserver"
	"github.com/smsflow/smsflow/workflows"
)

// embedded starts an in-memory embedded server with smsflow's search
// attributes and dials it; both are stopped when the test ends.
func embedded(ctx context.Context, t *testing.T) client.Client {
	t.Helper()
	srv, err := tserver.Start(ctx, tserver.Options{DataDir: t.TempDir(), FrontendAddr: "127.0.0.1:0", InMemory: true,
		SearchAttributes: engine.SearchAttributes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c, err := client.Dial(client.Options{HostPort: srv.FrontendAddr(), Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// registerStubMigration registers MigrationWorkflow's activities as stubs
// on w: the agent answers each copy command at once (a 100 % progress
// signal through c), CREATE makes a target, the rest does nothing.
func registerStubMigration(w worker.Worker, c client.Client) {
	w.RegisterActivityWithOptions(func(ctx context.Context, tr activities.Transition) error {
		if (tr.Command == sms.CmdStart || tr.Command == sms.CmdSync) && tr.BeginSubtask != "" {
			go func() {
				time.Sleep(100 * time.Millisecond)
				_ = c.SignalWorkflow(context.Background(), workflows.MigrationWorkflowID(tr.TaskID), "",
					workflows.SignalProgress, workflows.Progress{Subtask: tr.BeginSubtask, Progress: 100})
			}()
		}
		return nil
	}, activity.RegisterOptions{Name: "Apply"})
	w.RegisterActivityWithOptions(func(_ context.Context, in activities.StepInput) (activities.StepOutput, error) {
		if in.Step == sms.StepCreate {
			return activities.StepOutput{Target: &provider.Target{VMID: "vm-" + in.TaskID, Created: true}}, nil
		}
		return activities.StepOutput{}, nil
	}, activity.RegisterOptions{Name: "RunStep"})
	for _, name := range []string{"WaitAgent", "CheckConsistency"} {
		w.RegisterActivityWithOptions(func(context.Context, activities.Ref) error { return nil }, activity.RegisterOptions{Name: name})
	}
	w.RegisterActivityWithOptions(func(context.Context, activities.SpeedInput) error { return nil },
		activity.RegisterOptions{Name: "PushSpeedLimit"})
	w.RegisterActivityWithOptions(func(context.Context, activities.CloneInput) error { return nil },
		activity.RegisterOptions{Name: "Clone"})
	w.RegisterActivityWithOptions(func(context.Context, activities.CleanupInput) error { return nil },
		activity.RegisterOptions{Name: "Cleanup"})
}
