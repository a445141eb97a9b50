package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// SpeedInput is the limit in force for a task.
type SpeedInput struct {
	Ref
	Mbps      int32
	Threshold float64
	// Notify sends the limit to the agent now (a copy is running); idle
	// agents get it with their next command.
	Notify bool
}

// PushSpeedLimit records the limit in force on the task (GET speed-limit and
// the task show it) and sends it to the agent, which throttles to it. The
// command SPEED_LIMIT is smsflow's; agents that do not know it ignore it and
// read the rules themselves.
func (a *Activities) PushSpeedLimit(ctx context.Context, in SpeedInput) error {
	err := a.Store.UpdateTask(ctx, in.tenant(), in.TaskID, func(task *store.Task) error {
		task.CurrentLimit, task.CurrentThreshold = in.Mbps, in.Threshold
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return failure(smserr.SMS7703, err, in.TaskID)
		}
		return err
	}
	if !in.Notify {
		return nil
	}
	return a.queue(ctx, in.Ref, sms.CmdSpeedLimit, map[string]any{"speed_limit": in.Mbps, "over_speed_threshold": in.Threshold})
}

// WaitAgentInput is the task whose agent to wait for, and how long. Ref is
// embedded so the input's JSON is a Ref's with two more fields: waits
// scheduled before they existed decode into it (Since and Timeout zero).
type WaitAgentInput struct {
	Ref
	// Since is when the workflow began to wait (its clock, the same on
	// every attempt).
	Since time.Time
	// Timeout is how long the agent may stay away: SMS.0508 once it has
	// not polled for that long, counted from the latest of Since, its last
	// poll recorded in the database, and the start of a retried attempt.
	Timeout time.Duration
}

// WaitAgent returns once the task's agent is connected (it polled within
// AgentTimeout), heartbeating while it waits. It fails with SMS.0508 when
// the agent stays away for in.Timeout. The deadline is not the activity's
// start-to-close timeout: the first attempt counts from the workflow's
// Since, and a retried attempt from its own start — attempts are retried
// when the one before was lost (the worker or the whole service was down,
// its heartbeat timed out) or could not read the database, and no agent
// could poll a service that was down meanwhile.
func (a *Activities) WaitAgent(ctx context.Context, in WaitAgentInput) error {
	connected := a.AgentTimeout
	if connected <= 0 {
		connected = 90 * time.Second
	}
	base := in.Since
	if info := activity.GetInfo(ctx); info.Attempt > 1 && info.StartedTime.After(base) {
		base = info.StartedTime
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		src, err := a.Store.Source(ctx, in.tenant(), in.SourceID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return failure(smserr.SMS0507, err)
			}
			return err
		}
		now := a.now()
		last := time.UnixMilli(src.LastVisitTime)
		if now.Sub(last) < connected {
			return nil
		}
		from := base
		if last.After(from) {
			from = last
		}
		if in.Timeout > 0 && !from.IsZero() && now.Sub(from) >= in.Timeout {
			return failure(smserr.SMS0508, nil, fmt.Sprintf("the agent of source %s has not polled for %s",
				in.SourceID, now.Sub(from).Round(time.Second)))
		}
		activity.RecordHeartbeat(ctx, src.LastVisitTime)
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the agent of source %s: %w", in.SourceID, ctx.Err())
		case <-tick.C:
		}
	}
}

// CloneInput clones a task's target for a test.
type CloneInput struct {
	Ref
	Target provider.Target
	Name   string
	// TemplateID is the clone's template (clone_test's template_id, checked
	// by the API): its target_server_name names the clone.
	TemplateID string
}

// Clone copies the target (clone_test) and records the clone on the task:
// clone_state CREATING while it copies, then FINISHED or ERROR (the SDK's
// values). The result is that clone_state: a failed clone is the operator's
// result, not a failed activity, so the workflow reads it from here.
func (a *Activities) Clone(ctx context.Context, in CloneInput) (CloneResult, error) {
	name, cloneErr := in.Name, ""
	if in.TemplateID != "" {
		tpl, err := a.Store.Template(ctx, in.tenant(), in.TemplateID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Deleted since the API checked it: no clone from a template
			// that is gone.
			cloneErr = string(smserr.SMS7101)
		case err != nil:
			return CloneResult{}, err
		case tpl.TargetServerName != "":
			name = tpl.TargetServerName
		}
	}
	record := func(cs store.CloneServer) (CloneResult, error) {
		err := a.Store.UpdateTask(ctx, in.tenant(), in.TaskID, func(task *store.Task) error {
			task.CloneServer = &cs
			return nil
		})
		if err != nil {
			return CloneResult{}, err
		}
		return CloneResult{CloneState: sms.CloneState(cs.CloneState)}, nil
	}
	if cloneErr != "" {
		return record(store.CloneServer{Name: name, CloneState: string(sms.CloneError), CloneError: cloneErr,
			ErrorMsg: "template " + in.TemplateID + " does not exist"})
	}
	if _, err := record(store.CloneServer{Name: name, CloneState: string(sms.CloneCreating)}); err != nil {
		return CloneResult{}, err
	}
	stop := heartbeat(ctx, 10*time.Second)
	c, err := a.Provider.Clone(ctx, in.Target, in.Name)
	stop()
	if ctx.Err() != nil {
		return CloneResult{}, ctx.Err() // the worker stops or the run timed out: retried
	}
	cs := store.CloneServer{VMID: c.VMID, Name: name, CloneState: string(sms.CloneFinished)}
	if err != nil {
		cs.CloneState, cs.CloneError, cs.ErrorMsg = string(sms.CloneError), string(smserr.SMS1102), err.Error()
	}
	return record(cs)
}

// CloneResult is how a clone ended: FINISHED or ERROR. Runs recorded when
// Clone returned nothing decode it as the zero value.
type CloneResult struct {
	CloneState sms.CloneState
}

// CleanupInput removes a task.
type CleanupInput struct {
	Ref
	Target       *provider.Target
	DeleteTarget bool // targets smsflow created; an existing server is kept
	AgentRunning bool // tell the agent to stop and clean up
}

// Cleanup deletes a task: the agent is told to stop and drop its state, the
// created target is removed, then the task row (which frees the source).
func (a *Activities) Cleanup(ctx context.Context, in CleanupInput) error {
	if in.AgentRunning {
		if err := a.queue(ctx, in.Ref, sms.CmdStop, nil); err != nil {
			return err
		}
	}
	if err := a.queue(ctx, in.Ref, sms.CmdDelete, nil); err != nil {
		return err
	}
	if in.DeleteTarget && in.Target != nil {
		if err := a.Provider.Delete(ctx, *in.Target); err != nil {
			return fmt.Errorf("delete target: %w", err)
		}
	} else if b, ok := a.Provider.(provider.Binder); ok && in.Target != nil {
		// A bound existing server is kept, free for another task of the
		// domain; its receiver stops with the task.
		if err := b.Release(ctx, *in.Target, in.TaskID); err != nil {
			return fmt.Errorf("release target: %w", err)
		}
	}
	err := a.Store.DeleteTask(ctx, in.tenant(), in.TaskID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete task: %w", err)
	}
	a.log(ctx).InfoContext(ctx, "task deleted", "task", in.TaskID)
	return nil
}

// heartbeat records a heartbeat every period until the returned stop is
// called, for activities whose work is one long call (a disk clone).
func heartbeat(ctx context.Context, period time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// CheckConsistency fails (SMS.1511) when the agent's last verification found
// blocks or files that differ between source and target. A task whose agent
// reported no verification passes: nothing says the copy differs.
func (a *Activities) CheckConsistency(ctx context.Context, r Ref) error {
	task, err := a.Store.Task(ctx, r.tenant(), r.TaskID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return failure(smserr.SMS7703, err, r.TaskID)
		}
		return err
	}
	for _, c := range task.ConsistencyResults {
		if bad := c.NumDifferentFiles + c.NumTargetMissFiles + c.NumTargetMoreFiles; bad > 0 {
			detail := fmt.Sprintf("%s: %d of %d differ, %d missing on the target, %d extra", c.DirCheck,
				c.NumDifferentFiles, c.NumTotalFiles, c.NumTargetMissFiles, c.NumTargetMoreFiles)
			return failure(smserr.SMS1511, nil, detail)
		}
	}
	return nil
}
