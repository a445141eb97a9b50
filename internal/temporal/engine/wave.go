package engine

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/smsflow/smsflow/workflows"
)

// waveSA is the wave search attribute: a wave's runs carry it from their
// first event (the Schedule's action and StartWave set it; the workflow
// upserts it again), its members' runs from their start.
var waveSA = temporal.NewSearchAttributeKeyKeyword(workflows.SearchWaveID)

// waveAction is how a wave run is started: by StartWave directly, by its
// Schedule through WaveStartWorkflow (a Schedule's runs get the scheduled
// time appended to their id; WaveStartWorkflow starts wave/<id> itself).
func waveAction(in workflows.WaveInput) *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		ID:                    workflows.WaveScheduleID(in.WaveID),
		Workflow:              workflows.WaveStartWorkflow,
		Args:                  []any{in},
		TaskQueue:             workflows.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(waveSA.ValueSet(in.WaveID)),
	}
}

// waveSpec fires once, at the second at (UTC): a calendar entry with its
// year, so it never matches again, and one remaining action besides.
func waveSpec(at time.Time) *client.ScheduleSpec {
	at = at.UTC()
	one := func(v int) []client.ScheduleRange { return []client.ScheduleRange{{Start: v}} }
	return &client.ScheduleSpec{Calendars: []client.ScheduleCalendarSpec{{
		Year: one(at.Year()), Month: one(int(at.Month())), DayOfMonth: one(at.Day()),
		Hour: one(at.Hour()), Minute: one(at.Minute()), Second: one(at.Second()),
		Comment: "wave " + at.Format(time.RFC3339),
	}}}
}

// ScheduleWave creates the wave's Temporal Schedule (wave-schedule/<id>),
// which starts WaveWorkflow (wave/<id>) once at at, or moves an existing
// one to at with in. The Schedules page of the Temporal UI shows it.
func (e *Engine) ScheduleWave(ctx context.Context, waveID string, at time.Time, in workflows.WaveInput) error {
	in.WaveID = waveID
	sc := e.Client.ScheduleClient()
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID: workflows.WaveScheduleID(waveID), Spec: *waveSpec(at), Action: waveAction(in),
		// A wave runs once: a late start (smsflow was down at start_at)
		// still starts it, within a week.
		CatchupWindow: 7 * 24 * time.Hour, RemainingActions: 1,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, Note: "wave " + waveID,
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("engine: schedule wave %s: %w", waveID, err)
	}
	err = sc.GetHandle(ctx, workflows.WaveScheduleID(waveID)).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(cur client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := cur.Description.Schedule
			s.Spec, s.Action = waveSpec(at), waveAction(in)
			if s.State == nil {
				s.State = &client.ScheduleState{}
			}
			s.State.LimitedActions, s.State.RemainingActions = true, 1
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("engine: reschedule wave %s: %w", waveID, err)
	}
	return nil
}

// UnscheduleWave deletes the wave's Schedule; a wave with none is fine.
func (e *Engine) UnscheduleWave(ctx context.Context, waveID string) error {
	err := e.Client.ScheduleClient().GetHandle(ctx, workflows.WaveScheduleID(waveID)).Delete(ctx)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("engine: delete schedule of wave %s: %w", waveID, err)
	}
	return nil
}

// PauseWaveSchedule pauses (pause true) or unpauses the wave's Schedule,
// with a note the Schedules page shows.
func (e *Engine) PauseWaveSchedule(ctx context.Context, waveID string, pause bool) error {
	h := e.Client.ScheduleClient().GetHandle(ctx, workflows.WaveScheduleID(waveID))
	var err error
	if pause {
		err = h.Pause(ctx, client.SchedulePauseOptions{Note: "wave paused by an operator"})
	} else {
		err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: "wave resumed by an operator"})
	}
	if err != nil {
		return MapError(err)
	}
	return nil
}

// StartWave starts the wave's run now (wave/<id>) and deletes its
// Schedule, if any, so it cannot start a second one. A wave that already
// runs is refused by Temporal (the id is taken).
func (e *Engine) StartWave(ctx context.Context, in workflows.WaveInput) error {
	a := waveAction(in)
	_, err := e.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.WaveWorkflowID(in.WaveID), TaskQueue: a.TaskQueue, TypedSearchAttributes: a.TypedSearchAttributes,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
	}, workflows.WaveWorkflow, in)
	if err != nil {
		return fmt.Errorf("engine: start wave %s: %w", in.WaveID, err)
	}
	return e.UnscheduleWave(ctx, in.WaveID)
}

// WaveAction runs an operator action on the wave's run as the validated
// Update "wave-action": a refusal comes back as the wave's *smserr.Error
// (SMS.85xx), a wave with no run as ErrNoRun.
func (e *Engine) WaveAction(ctx context.Context, waveID string, req workflows.WaveActionRequest) error {
	h, err := e.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.WaveWorkflowID(waveID), UpdateName: workflows.UpdateWaveAction, Args: []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	return MapError(err)
}

// WaveRunURL links a wave to its run in the Temporal UI ("" without a UI).
func (e *Engine) WaveRunURL(waveID string) string {
	if e.UIBase == "" {
		return ""
	}
	return strings.TrimRight(e.UIBase, "/") + "/namespaces/" + url.PathEscape(e.Namespace) + "/workflows/" +
		url.PathEscape(workflows.WaveWorkflowID(waveID))
}

// WaveScheduleURL links a wave to its Schedule in the Temporal UI.
func (e *Engine) WaveScheduleURL(waveID string) string {
	if e.UIBase == "" {
		return ""
	}
	return strings.TrimRight(e.UIBase, "/") + "/namespaces/" + url.PathEscape(e.Namespace) + "/schedules/" +
		url.PathEscape(workflows.WaveScheduleID(waveID))
}
