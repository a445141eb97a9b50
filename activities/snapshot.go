package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// SnapshotInput names a snapshot of the task's target. The id is the
// workflow's own (never a request's), the target the run's.
type SnapshotInput struct {
	Ref
	Target provider.Target
	ID     string
}

// SnapshotTarget snapshots the target before a finished task's sync pass,
// so a failed pass can be rolled back, and records the id as the task's
// target_snapshot_id. Taken is false when the provider keeps no snapshots.
func (a *Activities) SnapshotTarget(ctx context.Context, in SnapshotInput) (taken bool, err error) {
	sn, ok := a.Provider.(provider.Snapshotter)
	if !ok {
		return false, nil
	}
	if err := a.ownTarget(ctx, in); err != nil {
		return false, err
	}
	// The copy of a large disk is one long call: heartbeats keep the
	// attempt alive, and one lost with its worker is retried soon.
	stop := heartbeat(ctx, 5*time.Second)
	err = sn.Snapshot(ctx, in.Target, in.ID)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		a.log(ctx).WarnContext(ctx, "target snapshot failed", "task", in.TaskID, "snapshot", in.ID, "err", err)
		return false, failure(smserr.SMS1408, err, in.Target.VMID, err.Error())
	}
	err = a.Store.UpdateTask(ctx, in.tenant(), in.TaskID, func(task *store.Task) error {
		if task.TargetServer != nil {
			task.TargetServer.SnapshotIDs = in.ID
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, failure(smserr.SMS7703, err, in.TaskID)
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// RestoreTarget writes the snapshot back into the target
// (sync_failed_rollback): SMS.1410 when it is gone, SMS.1412 when the
// restore fails.
func (a *Activities) RestoreTarget(ctx context.Context, in SnapshotInput) error {
	sn, ok := a.Provider.(provider.Snapshotter)
	if !ok {
		return failure(smserr.SMS1410, provider.ErrNoSnapshot, in.ID)
	}
	if err := a.ownTarget(ctx, in); err != nil {
		return err
	}
	stop := heartbeat(ctx, 5*time.Second)
	err := sn.Restore(ctx, in.Target, in.ID)
	stop()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, provider.ErrNoSnapshot):
		return failure(smserr.SMS1410, err, in.ID)
	}
	a.log(ctx).WarnContext(ctx, "target restore failed", "task", in.TaskID, "snapshot", in.ID, "err", err)
	return failure(smserr.SMS1412, err, in.ID, err.Error())
}

// DeleteSnapshots removes the target's snapshots (clear); the record goes
// with the Transition that follows.
func (a *Activities) DeleteSnapshots(ctx context.Context, in SnapshotInput) error {
	sn, ok := a.Provider.(provider.Snapshotter)
	if !ok {
		return nil
	}
	if err := a.ownTarget(ctx, in); err != nil {
		return err
	}
	if err := sn.DeleteSnapshots(ctx, in.Target); err != nil {
		return failure(smserr.SMS1409, err, in.ID, err.Error())
	}
	return nil
}

// ownTarget checks that the target is the one recorded on the task of the
// Ref's tenant: a snapshot is only ever taken, restored or deleted in that
// task's own target folder (SMS.7703 for another domain's task, SMS.8103
// for a target that is not the task's).
func (a *Activities) ownTarget(ctx context.Context, in SnapshotInput) error {
	task, err := a.Store.Task(ctx, in.tenant(), in.TaskID)
	if errors.Is(err, store.ErrNotFound) {
		return failure(smserr.SMS7703, err, in.TaskID)
	}
	if err != nil {
		return fmt.Errorf("snapshot: load task: %w", err)
	}
	if task.TargetServer == nil || task.TargetServer.Location == "" || task.TargetServer.Location != in.Target.Location {
		return failure(smserr.SMS8103, fmt.Errorf("target %s is not task %s's", in.Target.VMID, in.TaskID))
	}
	return nil
}
