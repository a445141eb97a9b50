package main

import (
	"context"
	"errors"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/web"
	"github.com/smsflow/smsflow/workflows"
)

// waveEngine is web's WaveEngine over the engine's wave methods: it turns
// a wave row into the WaveWorkflow input.
type waveEngine struct{ e *engine.Engine }

var _ web.WaveEngine = waveEngine{}

func waveInput(t store.Tenant, w *store.Wave) workflows.WaveInput {
	return workflows.WaveInput{WaveID: w.ID, DomainID: t.DomainID, ProjectID: w.ProjectID, TimeZone: w.TimeZone}
}

func (a waveEngine) ScheduleWave(ctx context.Context, t store.Tenant, w *store.Wave) error {
	if w.StartAt == nil {
		return errors.New("schedule wave " + w.ID + ": no start_at")
	}
	return a.e.ScheduleWave(ctx, w.ID, *w.StartAt, waveInput(t, w))
}

func (a waveEngine) UnscheduleWave(ctx context.Context, waveID string) error {
	return a.e.UnscheduleWave(ctx, waveID)
}

func (a waveEngine) PauseWaveSchedule(ctx context.Context, waveID string, paused bool) error {
	return a.e.PauseWaveSchedule(ctx, waveID, paused)
}

func (a waveEngine) StartWave(ctx context.Context, t store.Tenant, w *store.Wave) error {
	return a.e.StartWave(ctx, waveInput(t, w))
}

func (a waveEngine) WaveAction(ctx context.Context, waveID string, act wave.Action) error {
	err := a.e.WaveAction(ctx, waveID, workflows.WaveActionRequest{Action: act})
	if errors.Is(err, engine.ErrNoRun) {
		// The database says the wave runs, Temporal has no run of it: a
		// clear 409 rather than a 500.
		return wave.ErrBadTransition.New("without a run", string(act)).Wrap(err)
	}
	return err
}

func (a waveEngine) WaveRunURL(waveID string) string { return a.e.WaveRunURL(waveID) }
