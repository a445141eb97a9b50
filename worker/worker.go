// Package worker runs migration workflows and their activities on the task
// queue.
package worker

import (
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/workflows"
)

// New registers MigrationWorkflow, WaveWorkflow (whose members are
// MigrationWorkflow children on the same queue) and the activities on the
// migration task queue; call Start or Run on the result.
func New(c client.Client, a *activities.Activities, opts sdkworker.Options) sdkworker.Worker {
	w := sdkworker.New(c, workflows.TaskQueue, opts)
	w.RegisterWorkflow(workflows.MigrationWorkflow)
	w.RegisterWorkflow(workflows.WaveWorkflow)
	w.RegisterWorkflow(workflows.WaveStartWorkflow)
	w.RegisterActivity(a)
	return w
}
