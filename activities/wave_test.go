package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/wave"
)

// The wave activities over the real store (SQLite and MySQL): the plan is
// the wave's spec and members with their tasks, member changes land (state
// moves, timestamps, downtime, share) all in one transaction or none, the
// wave's state and its start and end at the run's clock, and another
// tenant's wave is missing.
func TestWaveActivities(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		ctx := context.Background()
		mp := &store.MigProject{ID: uuid.NewString(), Name: "mp", Region: "r", Type: "MIGRATE_BLOCK", EnterpriseProject: "default"}
		require.NoError(t, s.CreateMigProject(ctx, f.tenant, mp))
		w := &store.Wave{ID: uuid.NewString()}
		w.SetSpec(wave.Spec{Name: "w", ProjectID: mp.ID, MaxConcurrent: 2, TimeZone: "Europe/Berlin",
			CutoverMode: wave.CutoverApprove, TestFirst: true, Budget: wave.Budget{DefaultMbps: 300}})
		two := int32(2)
		m := store.WaveMember{ID: uuid.NewString(), SourceID: f.ref.SourceID, Priority: two, TaskID: &f.ref.TaskID}
		require.NoError(t, s.CreateWave(ctx, f.tenant, w, []store.WaveMember{m}))
		f.acts.Waves = activities.StoreWaves{DB: s}
		f.acts.MemberOptions = activities.MemberOptions{TimeZone: "Europe/Berlin", SyncInterval: time.Minute}
		a := (*activities.Activities)(nil)
		ref := activities.WaveRef{WaveID: w.ID, DomainID: f.tenant.DomainID, ProjectID: f.tenant.ProjectID}

		var plan activities.WavePlan
		require.NoError(t, f.run(a.LoadWave, ref, &plan))
		assert.Equal(t, 2, plan.Spec.MaxConcurrent)
		assert.True(t, plan.Spec.TestFirst)
		assert.Equal(t, int32(300), plan.Spec.Budget.DefaultMbps)
		require.Len(t, plan.Members, 1)
		assert.Equal(t, f.ref.TaskID, plan.Members[0].TaskID)
		assert.Equal(t, int32(2), plan.Members[0].Priority)
		assert.Equal(t, wave.MemberPending, plan.Members[0].State)

		env := f.suite.NewTestActivityEnvironment()
		env.RegisterActivity(f.acts)
		v, err := env.ExecuteActivity(a.WaveMemberInput, ref, f.ref.TaskID)
		require.NoError(t, err)
		var spec activities.TaskSpec
		require.NoError(t, v.Get(&spec))
		assert.Equal(t, f.ref.TaskID, spec.TaskID)
		assert.Equal(t, f.ref.SourceID, spec.SourceID)
		assert.Equal(t, "Europe/Berlin", spec.TimeZone)
		// A zone that cannot be named is a failure (SMS.8509), not "Local" or
		// UTC in the member's run.
		f.acts.MemberOptions.TimeZone = "Mars/Olympus"
		_, err = env.ExecuteActivity(a.WaveMemberInput, ref, f.ref.TaskID)
		code, retry := smsCode(err)
		assert.Equal(t, string(wave.ErrTimeZone.Code), code)
		assert.False(t, retry)
		f.acts.MemberOptions.TimeZone = "Europe/Berlin"

		now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		_, err = env.ExecuteActivity(a.SetWaveState, ref, activities.WaveStateChange{State: wave.WaveReplicating, At: now, Started: true})
		require.NoError(t, err)
		share, down := int32(150), 42.375
		_, err = env.ExecuteActivity(a.UpdateWaveMembers, ref, []activities.WaveMemberChange{
			{MemberID: m.ID, State: wave.MemberCopying, CopyStarted: now, ShareMbps: &share},
			{MemberID: m.ID, State: wave.MemberSyncing, SyncedAt: now.Add(time.Hour)},
			{MemberID: m.ID, State: wave.MemberCuttingOver, CutoverStarted: now.Add(2 * time.Hour)},
			{MemberID: m.ID, State: wave.MemberDone, TargetStarted: now.Add(2*time.Hour + 42375*time.Millisecond), DowntimeSeconds: &down},
		})
		require.NoError(t, err)
		got, err := s.WaveMembers(ctx, f.tenant, w.ID)
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, wave.MemberDone, got[0].State)
		assert.Equal(t, int32(150), got[0].ShareMbps)
		require.NotNil(t, got[0].DowntimeSeconds)
		assert.Equal(t, 42.375, *got[0].DowntimeSeconds)
		require.NotNil(t, got[0].CopyEndedAt)
		assert.True(t, got[0].CopyEndedAt.Equal(now.Add(time.Hour)))
		wv, err := s.Wave(ctx, f.tenant, w.ID)
		require.NoError(t, err)
		assert.Equal(t, wave.WaveReplicating, wv.State)
		require.NotNil(t, wv.StartedAt)
		assert.True(t, wv.StartedAt.Equal(now), "started at the run's clock: %s", wv.StartedAt)

		// All or none: a batch naming a member the wave lost changes
		// nothing, and is not retried.
		_, err = env.ExecuteActivity(a.UpdateWaveMembers, ref, []activities.WaveMemberChange{
			{MemberID: m.ID, ErrorCode: "SMS.1801", ErrorMsg: "x"}, {MemberID: uuid.NewString(), State: wave.MemberDone}})
		code, retry = smsCode(err)
		assert.Equal(t, string(wave.ErrNotFound.Code), code)
		assert.False(t, retry)
		got, err = s.WaveMembers(ctx, f.tenant, w.ID)
		require.NoError(t, err)
		assert.Empty(t, got[0].ErrorCode, "the batch was rolled back")

		_, err = env.ExecuteActivity(a.SetWaveState, ref, activities.WaveStateChange{State: wave.WaveDone, At: now.Add(3 * time.Hour), Finished: true})
		require.NoError(t, err)
		wv, err = s.Wave(ctx, f.tenant, w.ID)
		require.NoError(t, err)
		assert.Equal(t, wave.WaveDone, wv.State)
		require.NotNil(t, wv.FinishedAt)
		assert.True(t, wv.FinishedAt.Equal(now.Add(3*time.Hour)))
		assert.Equal(t, 1, wv.DoneCount)

		v, err = env.ExecuteActivity(a.DependencyState, ref, w.ID)
		require.NoError(t, err)
		var st wave.WaveState
		require.NoError(t, v.Get(&st))
		assert.Equal(t, wave.WaveDone, st)
		v, err = env.ExecuteActivity(a.DependencyState, ref, uuid.NewString())
		require.NoError(t, err)
		require.NoError(t, v.Get(&st))
		assert.Equal(t, wave.WaveCanceled, st, "a deleted dependency will never be DONE")

		other := activities.WaveRef{WaveID: w.ID, DomainID: uuid.NewString()}
		_, err = env.ExecuteActivity(a.LoadWave, other)
		code, retry = smsCode(err)
		assert.Equal(t, string(wave.ErrNotFound.Code), code, "another tenant's wave")
		assert.False(t, retry)
	})
}
