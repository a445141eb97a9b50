package activities

import (
	"context"
	"errors"
	"time"

	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/wave"
)

// WaveDB is what StoreWaves needs of the store (store.Store has it).
type WaveDB interface {
	Wave(ctx context.Context, t store.Tenant, id string) (*store.Wave, error)
	WaveMembers(ctx context.Context, t store.Tenant, waveID string) ([]store.WaveMember, error)
	RecordWaveState(ctx context.Context, t store.Tenant, id string, state wave.WaveState, reason string,
		at time.Time, started, finished bool) error
	RecordWaveMembers(ctx context.Context, t store.Tenant, waveID string, changes []store.MemberChange) error
}

// StoreWaves is the WaveStore of the smsflow database.
type StoreWaves struct {
	DB WaveDB
}

// WavePlan reads the wave and its members.
func (s StoreWaves) WavePlan(ctx context.Context, t store.Tenant, waveID string) (WavePlan, error) {
	w, err := s.DB.Wave(ctx, t, waveID)
	if err != nil {
		return WavePlan{}, err
	}
	ms, err := s.DB.WaveMembers(ctx, t, waveID)
	if err != nil {
		return WavePlan{}, err
	}
	p := WavePlan{Spec: w.Spec(nil), State: w.State}
	for _, m := range ms {
		pm := WavePlanMember{ID: m.ID, SourceID: m.SourceID, Name: m.SourceName, Priority: m.Priority, State: m.State}
		if m.TaskID != nil {
			pm.TaskID = *m.TaskID
		}
		p.Members = append(p.Members, pm)
	}
	return p, nil
}

// SetWaveState records the wave's state as its run has it (the run is the
// truth of a running wave: no life-cycle check), stamping the start and
// the end at the run's own clock.
func (s StoreWaves) SetWaveState(ctx context.Context, t store.Tenant, waveID string, ch WaveStateChange) error {
	return s.DB.RecordWaveState(ctx, t, waveID, ch.State, ch.Reason, ch.At, ch.Started, ch.Finished)
}

// UpdateWaveMembers records the changes in one transaction, all or none
// (a retry of the whole batch is safe: changes are idempotent). The run
// checked each move against the member's life cycle when it made it.
func (s StoreWaves) UpdateWaveMembers(ctx context.Context, t store.Tenant, waveID string, chs []WaveMemberChange) error {
	mcs := make([]store.MemberChange, len(chs))
	for i, ch := range chs {
		mcs[i] = store.MemberChange{MemberID: ch.MemberID, Apply: func(m *store.WaveMember) error {
			applyMemberChange(m, ch)
			return nil
		}}
	}
	return s.DB.RecordWaveMembers(ctx, t, waveID, mcs)
}

func applyMemberChange(m *store.WaveMember, ch WaveMemberChange) {
	if ch.State != "" {
		m.State = ch.State
	}
	if ch.ClearError {
		m.ErrorCode, m.ErrorMsg = "", ""
	}
	if ch.ErrorCode != "" || ch.ErrorMsg != "" {
		m.ErrorCode, m.ErrorMsg = ch.ErrorCode, ch.ErrorMsg
	}
	stamp := func(dst **time.Time, v time.Time) {
		if !v.IsZero() {
			v = v.UTC()
			*dst = &v
		}
	}
	stamp(&m.CopyStartedAt, ch.CopyStarted)
	if !ch.SyncedAt.IsZero() {
		stamp(&m.SyncedAt, ch.SyncedAt)
		if m.CopyEndedAt == nil {
			stamp(&m.CopyEndedAt, ch.SyncedAt)
		}
	}
	stamp(&m.CutoverStartedAt, ch.CutoverStarted)
	stamp(&m.TargetStartedAt, ch.TargetStarted)
	if ch.DowntimeSeconds != nil {
		d := *ch.DowntimeSeconds
		m.DowntimeSeconds = &d
	}
	if ch.ShareMbps != nil {
		m.ShareMbps = *ch.ShareMbps
	}
}

// WaveState is a wave's state.
func (s StoreWaves) WaveState(ctx context.Context, t store.Tenant, waveID string) (wave.WaveState, error) {
	w, err := s.DB.Wave(ctx, t, waveID)
	if err != nil {
		return "", err
	}
	return w.State, nil
}

// refused tells a store refusal (a move the life cycle does not allow, a
// conflict) from a failure worth retrying.
func refused(err error) bool {
	var se *smserr.Error
	return errors.Is(err, store.ErrConflict) || errors.As(err, &se)
}
