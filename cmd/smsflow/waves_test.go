package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/testdb"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/store"
)

// TestWaveStoreAdapter: the wave activities read the plan the API stored
// and write what the workflow reports into the rows the API shows.
func TestWaveStoreAdapter(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ten := store.Tenant{DomainID: uuid.NewString(), ProjectID: uuid.NewString()}
		mp := &store.MigProject{ID: uuid.NewString(), Name: "p"}
		require.NoError(t, s.CreateMigProject(ctx, ten, mp))
		srcs := make([]store.Source, 2)
		for i := range srcs {
			srcs[i] = store.Source{ID: uuid.NewString(), DomainID: ten.DomainID, MigProjectID: mp.ID, Name: fmt.Sprintf("s%d", i), RegSeq: int64(i)}
		}
		require.NoError(t, s.BulkInsertSources(ctx, srcs))
		w := &store.Wave{ID: uuid.NewString()}
		w.SetSpec(wave.Spec{Name: "w", ProjectID: mp.ID, MaxConcurrent: 3, TimeZone: "UTC", CutoverMode: wave.CutoverApprove})
		two := int32(2)
		ms := []store.WaveMember{{ID: "m0", SourceID: srcs[0].ID, Priority: two}, {ID: "m1", SourceID: srcs[1].ID, Priority: 1}}
		require.NoError(t, s.CreateWave(ctx, ten, w, ms))
		tid := "task-0"
		require.NoError(t, s.UpdateWaveMember(ctx, ten, w.ID, "m0", func(m *store.WaveMember) error { m.TaskID = &tid; return nil }))

		ws := waveStore{s}
		wt := store.Tenant{DomainID: ten.DomainID} // the activities scope by domain
		p, err := ws.WavePlan(ctx, wt, w.ID)
		require.NoError(t, err)
		assert.Equal(t, 3, p.Spec.MaxConcurrent)
		assert.Equal(t, wave.CutoverApprove, p.Spec.CutoverMode)
		assert.Equal(t, wave.WaveDraft, p.State)
		require.Len(t, p.Members, 2)
		assert.Equal(t, activities.WavePlanMember{ID: "m0", SourceID: srcs[0].ID, Name: "s0", TaskID: "task-0", Priority: 2,
			State: wave.MemberPending}, p.Members[0])
		assert.Equal(t, "", p.Members[1].TaskID)
		_, err = ws.WavePlan(ctx, store.Tenant{DomainID: "other"}, w.ID)
		assert.ErrorIs(t, err, store.ErrNotFound)

		at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
		require.NoError(t, ws.SetWaveState(ctx, wt, w.ID, activities.WaveStateChange{State: wave.WaveReplicating, At: at, Started: true}))
		down := int64(42)
		share := int32(125)
		require.NoError(t, ws.UpdateWaveMembers(ctx, wt, w.ID, []activities.WaveMemberChange{
			{MemberID: "m0", State: wave.MemberCopying, CopyStarted: at, ShareMbps: &share},
			{MemberID: "m1", State: wave.MemberFailed, ErrorCode: "SMS.7720", ErrorMsg: "agent gone"},
		}))
		require.NoError(t, ws.UpdateWaveMembers(ctx, wt, w.ID, []activities.WaveMemberChange{
			{MemberID: "m0", State: wave.MemberDone, SyncedAt: at.Add(time.Hour), CutoverStarted: at.Add(2 * time.Hour),
				TargetStarted: at.Add(2*time.Hour + 42*time.Second), DowntimeSeconds: &down},
			{MemberID: "m1", State: wave.MemberPending, ClearError: true},
		}))
		got, err := s.WaveMembers(ctx, ten, w.ID)
		require.NoError(t, err)
		m0, m1 := got[0], got[1]
		assert.Equal(t, wave.MemberDone, m0.State)
		assert.True(t, at.Equal(*m0.CopyStartedAt))
		assert.True(t, at.Add(time.Hour).Equal(*m0.CopyEndedAt), "the full copy ended when it synced")
		assert.True(t, at.Add(2*time.Hour).Equal(*m0.CutoverStartedAt))
		assert.Equal(t, 42.0, *m0.DowntimeSeconds)
		assert.EqualValues(t, 125, m0.ShareMbps, "left as it was when not sent")
		assert.Equal(t, wave.MemberPending, m1.State)
		assert.Empty(t, m1.ErrorCode)
		assert.Equal(t, wave.MemberPending, m1.FailedFrom)
		gw, err := s.Wave(ctx, ten, w.ID)
		require.NoError(t, err)
		assert.Equal(t, wave.WaveReplicating, gw.State)
		assert.Equal(t, 1, gw.DoneCount)
		assert.Equal(t, 0, gw.FailedCount)

		err = ws.UpdateWaveMembers(ctx, wt, w.ID, []activities.WaveMemberChange{{MemberID: "gone", State: wave.MemberDone}})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not found")
	})
}
