package tserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/workflows"
)

// TestTaskPriorityOrdersItsRun: a task's priority (0 low, 1 normal, 2
// high) is its run's Temporal priority key, so a backed-up queue serves a
// high-priority task's work first. No worker runs: the runs stay queued.
func TestTaskPriorityOrdersItsRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := embedded(ctx, t)
	e := &engine.Engine{Client: c, Namespace: "default"}
	for _, tc := range []struct {
		priority int32
		key      int32
	}{{0, 5}, {1, 3}, {2, 1}} {
		id := "prio-" + string(rune('0'+tc.priority))
		if err := e.Start(ctx, workflows.Input{TaskID: id, DomainID: "d1", SourceID: "s1", Type: sms.MigrateBlock,
			OSType: sms.Linux, TimeZone: "UTC", Priority: tc.priority}); err != nil {
			t.Fatal(err)
		}
		d, err := c.DescribeWorkflowExecution(ctx, workflows.MigrationWorkflowID(id), "")
		if err != nil {
			t.Fatal(err)
		}
		if got := d.GetWorkflowExecutionInfo().GetPriority().GetPriorityKey(); got != tc.key {
			t.Errorf("priority %d: the run's priority key is %d, want %d", tc.priority, got, tc.key)
		}
	}
}
