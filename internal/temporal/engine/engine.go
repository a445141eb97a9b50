// Package engine is the API's side of Temporal: it starts a task's
// MigrationWorkflow and delivers operator actions (Updates, whose validator
// decides with an SMS code), agent progress and speed rule changes (signals).
package engine

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/workflows"
)

// ErrNoRun: the task has no running workflow (it finished, or was terminated
// in the Temporal UI).
var ErrNoRun = errors.New("engine: no running workflow for the task")

// Engine talks to the Temporal frontend.
type Engine struct {
	Client    client.Client
	Namespace string
	// UIBase is the Temporal Web UI's address (http://host:port), for links.
	UIBase string
}

// SearchAttributes are registered on the namespace.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	workflows.SearchTaskID:    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	workflows.SearchSourceID:  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	workflows.SearchProject:   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	workflows.SearchTaskState: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	workflows.SearchWaveID:    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
}

// EnsureSearchAttributes adds the search attributes to the namespace. The
// embedded server creates them with a new namespace; this adds the ones a
// newer smsflow brought (SmsWaveId) to a namespace made before, and to an
// external cluster's. Attributes that exist are left alone.
func (e *Engine) EnsureSearchAttributes(ctx context.Context) error {
	_, err := e.Client.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: e.Namespace, SearchAttributes: SearchAttributes,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("engine: register search attributes: %w", err)
	}
	return nil
}

// Start launches a task's workflow (id migration/<taskID>).
func (e *Engine) Start(ctx context.Context, in workflows.Input) error {
	_, err := e.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    workflows.MigrationWorkflowID(in.TaskID),
		TaskQueue:             workflows.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// The task's priority orders its workflow and activity tasks when
		// the queue is backed up (its activities inherit it).
		Priority: temporal.Priority{PriorityKey: PriorityKey(in.Priority)},
	}, workflows.MigrationWorkflow, in)
	if err != nil {
		return fmt.Errorf("engine: start workflow for task %s: %w", in.TaskID, err)
	}
	return nil
}

// PriorityKey maps a task's priority (0 low, 1 normal, 2 high) onto
// Temporal's priority keys (1 runs first, 3 is the default, 5 last).
func PriorityKey(p int32) int { return workflows.PriorityKey(p) }

// Action runs an operator action as an Update and waits for its verdict:
// a validator's refusal comes back as the *smserr.Error it names.
func (e *Engine) Action(ctx context.Context, taskID string, req workflows.ActionRequest) error {
	return e.update(ctx, taskID, workflows.UpdateAction, req)
}

// Delete asks the workflow to delete the task.
func (e *Engine) Delete(ctx context.Context, taskID string) error {
	return e.update(ctx, taskID, workflows.UpdateDelete)
}

func (e *Engine) update(ctx context.Context, taskID, name string, args ...any) error {
	h, err := e.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.MigrationWorkflowID(taskID), UpdateName: name, Args: args,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	return MapError(err)
}

// Progress forwards an agent's progress report.
func (e *Engine) Progress(ctx context.Context, taskID string, p workflows.Progress) error {
	return MapError(e.Client.SignalWorkflow(ctx, workflows.MigrationWorkflowID(taskID), "", workflows.SignalProgress, p))
}

// CommandResult forwards an agent's command result.
func (e *Engine) CommandResult(ctx context.Context, taskID string, r workflows.CommandResult) error {
	return MapError(e.Client.SignalWorkflow(ctx, workflows.MigrationWorkflowID(taskID), "", workflows.SignalCommand, r))
}

// SpeedRules delivers a changed rule set; it takes effect at once.
func (e *Engine) SpeedRules(ctx context.Context, taskID string, u workflows.SpeedUpdate) error {
	return MapError(e.Client.SignalWorkflow(ctx, workflows.MigrationWorkflowID(taskID), "", workflows.SignalSpeed, u))
}

// Target hands PUT /v3/tasks/{id}'s target changes to the task's run.
func (e *Engine) Target(ctx context.Context, taskID string, u workflows.TargetUpdate) error {
	return e.update(ctx, taskID, workflows.UpdateTarget, u)
}

// RunURL links a task to its run in the Temporal UI ("" without a UI).
func (e *Engine) RunURL(taskID string) string {
	if e.UIBase == "" {
		return ""
	}
	return strings.TrimRight(e.UIBase, "/") + "/namespaces/" + url.PathEscape(e.Namespace) + "/workflows/" +
		url.PathEscape(workflows.MigrationWorkflowID(taskID))
}

// MapError turns workflow errors into what the API answers: an update
// validator's ApplicationError typed "SMS.xxxx" into that SMS error (a wave
// code SMS.85xx with its params and status), a
// missing or closed run into ErrNoRun. Test fakes of the engine use it
// too, so they answer as the real one does.
func MapError(err error) error {
	if err == nil {
		return nil
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && strings.HasPrefix(ae.Type(), "SMS.") {
		for _, d := range wave.Errors() {
			if string(d.Code) == ae.Type() {
				var params []string
				if ae.HasDetails() {
					_ = ae.Details(&params)
				}
				return d.New(params...)
			}
		}
		e := smserr.New(smserr.Code(ae.Type()))
		var param string
		if ae.HasDetails() && ae.Details(&param) == nil && param != "" {
			e = smserr.New(smserr.Code(ae.Type()), param)
		}
		return e.WithDetail(ae.Message())
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: %v", ErrNoRun, err)
	}
	return fmt.Errorf("engine: %w", err)
}
