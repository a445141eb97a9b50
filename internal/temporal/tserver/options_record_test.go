package tserver_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/workflows"
)

// TestRecordOptionHistories runs one task with the options that take a
// workflow change (start_network_check, need_migration_test, a PUT's
// target update, no consistency check) on the embedded server over stub
// activities, and writes its history to $SMSFLOW_RECORD_HISTORIES, where
// workflows' replay test replays it (the new branch of each marker):
//
//	SMSFLOW_RECORD_HISTORIES=$PWD/workflows/testdata/histories go test ./internal/temporal/tserver/ -run TestRecordOptionHistories
func TestRecordOptionHistories(t *testing.T) {
	dir := os.Getenv("SMSFLOW_RECORD_HISTORIES")
	if dir == "" {
		t.Skip("set SMSFLOW_RECORD_HISTORIES to record the options history")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := embedded(ctx, t)
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	w.RegisterWorkflow(workflows.MigrationWorkflow)
	registerStubMigration(w, c)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e := &engine.Engine{Client: c, Namespace: "default"}

	const id = "rec-options"
	in := workflows.Input{TaskID: id, DomainID: "d1", SourceID: "s1", MigProjectID: "mp", Type: sms.MigrateBlock,
		OSType: sms.Linux, TimeZone: "UTC", SyncInterval: time.Hour, AgentStepTimeout: time.Minute,
		StartNetworkCheck: true, NeedMigrationTest: true, SkipConsistencyCheck: true}
	if err := e.Start(ctx, in); err != nil {
		t.Fatal(err)
	}
	retry := func(what string, fn func() error) {
		t.Helper()
		var err error
		for ctx.Err() == nil {
			if err = fn(); err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s: %v", what, err)
	}
	retry("target update", func() error {
		return e.Target(ctx, id, workflows.TargetUpdate{SnapshotIDs: new("s-1"), EnterpriseProject: new("ep-1")})
	})
	retry("start", func() error { return e.Action(ctx, id, workflows.ActionRequest{Operation: sms.ActionStart}) })
	// The launch is refused until the clone test; both wait for the sync loop.
	retry("clone_test", func() error { return e.Action(ctx, id, workflows.ActionRequest{Operation: sms.ActionCloneTest}) })
	retry("test", func() error { return e.Action(ctx, id, workflows.ActionRequest{Operation: sms.ActionTest}) })
	retry("delete", func() error { return e.Delete(ctx, id) })
	if err := c.GetWorkflow(ctx, workflows.MigrationWorkflowID(id), "").Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	recordRun(ctx, t, c, workflows.MigrationWorkflowID(id), "", filepath.Join(dir, "options-start-check-migration-test.json"))
}
