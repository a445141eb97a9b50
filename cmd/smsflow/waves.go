package main

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/engine"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/store"
	"github.com/smsflow/smsflow/web"
	"github.com/smsflow/smsflow/workflows"
)

// waveEngine adapts the engine's wave methods to what the API calls.
type waveEngine struct{ e *engine.Engine }

var _ web.WaveEngine = waveEngine{}

func waveInput(t store.Tenant, w *store.Wave) workflows.WaveInput {
	return workflows.WaveInput{WaveID: w.ID, DomainID: t.DomainID, ProjectID: t.ProjectID, TimeZone: w.TimeZone}
}

func (x waveEngine) ScheduleWave(ctx context.Context, t store.Tenant, w *store.Wave) error {
	if w.StartAt == nil {
		return errors.New("schedule a wave without start_at")
	}
	return x.e.ScheduleWave(ctx, w.ID, *w.StartAt, waveInput(t, w))
}

func (x waveEngine) UnscheduleWave(ctx context.Context, id string) error {
	return x.e.UnscheduleWave(ctx, id)
}

func (x waveEngine) PauseWaveSchedule(ctx context.Context, id string, paused bool) error {
	return x.e.PauseWaveSchedule(ctx, id, paused)
}

func (x waveEngine) StartWave(ctx context.Context, t store.Tenant, w *store.Wave) error {
	return x.e.StartWave(ctx, waveInput(t, w))
}

func (x waveEngine) WaveAction(ctx context.Context, id string, a wave.Action) error {
	err := x.e.WaveAction(ctx, id, workflows.WaveActionRequest{Action: a})
	if errors.Is(err, engine.ErrNoRun) {
		// The store says the wave runs but Temporal has no run of it.
		return wave.ErrBadTransition.New("without a run", string(a)).Wrap(err)
	}
	return err
}

func (x waveEngine) WaveRunURL(id string) string { return x.e.WaveRunURL(id) }

// waveStore serves the wave activities from the store.
type waveStore struct{ s *store.Store }

var _ activities.WaveStore = waveStore{}

func (x waveStore) WavePlan(ctx context.Context, t store.Tenant, id string) (activities.WavePlan, error) {
	w, err := x.s.Wave(ctx, t, id)
	if err != nil {
		return activities.WavePlan{}, err
	}
	ms, err := x.s.WaveMembers(ctx, t, id)
	if err != nil {
		return activities.WavePlan{}, err
	}
	p := activities.WavePlan{Spec: w.Spec(nil), State: w.State, Members: make([]activities.WavePlanMember, len(ms))}
	for i, m := range ms {
		tid := ""
		if m.TaskID != nil {
			tid = *m.TaskID
		}
		p.Members[i] = activities.WavePlanMember{ID: m.ID, SourceID: m.SourceID, Name: m.SourceName, TaskID: tid,
			Priority: m.Priority, State: m.State}
	}
	return p, nil
}

func (x waveStore) SetWaveState(ctx context.Context, t store.Tenant, id string, ch activities.WaveStateChange) error {
	return x.s.RecordWaveState(ctx, t, id, ch.State, ch.Reason, ch.At, ch.Started, ch.Finished)
}

func (x waveStore) UpdateWaveMembers(ctx context.Context, t store.Tenant, id string, chs []activities.WaveMemberChange) error {
	out := make([]store.MemberChange, len(chs))
	for i, ch := range chs {
		out[i] = store.MemberChange{MemberID: ch.MemberID, Apply: func(m *store.WaveMember) error {
			applyMemberChange(m, ch)
			return nil
		}}
	}
	err := x.s.RecordWaveMembers(ctx, t, id, out)
	if errors.Is(err, store.ErrNotFound) {
		// A member removed while the wave was paused: retrying cannot help.
		return temporal.NewNonRetryableApplicationError(err.Error(), string(wave.ErrNotFound.Code), err)
	}
	return err
}

// applyMemberChange writes the fields a change sets (zero ones are left).
func applyMemberChange(m *store.WaveMember, ch activities.WaveMemberChange) {
	if ch.State != "" {
		m.State = ch.State
	}
	if ch.ClearError {
		m.ErrorCode, m.ErrorMsg = "", ""
	}
	if ch.ErrorCode != "" || ch.ErrorMsg != "" {
		m.ErrorCode, m.ErrorMsg = ch.ErrorCode, ch.ErrorMsg
	}
	set := func(dst **time.Time, v time.Time) {
		if !v.IsZero() {
			u := v.UTC()
			*dst = &u
		}
	}
	set(&m.CopyStartedAt, ch.CopyStarted)
	if !ch.SyncedAt.IsZero() {
		set(&m.SyncedAt, ch.SyncedAt)
		if m.CopyEndedAt == nil {
			set(&m.CopyEndedAt, ch.SyncedAt)
		}
	}
	set(&m.CutoverStartedAt, ch.CutoverStarted)
	set(&m.TargetStartedAt, ch.TargetStarted)
	if ch.DowntimeSeconds != nil {
		d := float64(*ch.DowntimeSeconds)
		m.DowntimeSeconds = &d
	}
	if ch.ShareMbps != nil {
		m.ShareMbps = *ch.ShareMbps
	}
}
