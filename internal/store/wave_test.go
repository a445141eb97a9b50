package store_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/wave"
)

// seedSources inserts n sources of t in project mp and returns their ids.
func seedSources(t *testing.T, s *store.Store, ten store.Tenant, mp string, n int) []string {
	t.Helper()
	srcs := make([]store.Source, n)
	ids := make([]string, n)
	for i := range srcs {
		ids[i] = uuid.NewString()
		srcs[i] = store.Source{ID: ids[i], DomainID: ten.DomainID, ProjectID: ten.ProjectID, MigProjectID: mp,
			Name: fmt.Sprintf("srv-%03d", i), IP: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), OSType: "LINUX",
			State: "UNAVAILABLE", RegSeq: int64(i + 1)}
	}
	require.NoError(t, s.BulkInsertSources(ctx, srcs))
	return ids
}

// waveSetup makes what every wave test starts from: a tenant with a
// migration project and n sources in it.
func waveSetup(t *testing.T, s *store.Store, n int) (store.Tenant, *store.MigProject, []string) {
	t.Helper()
	a := tenant()
	mp := newMigProject("p")
	require.NoError(t, s.CreateMigProject(ctx, a, mp))
	return a, mp, seedSources(t, s, a, mp.ID, n)
}

func newWave(name, mp string) *store.Wave {
	w := &store.Wave{ID: uuid.NewString()}
	w.SetSpec(wave.Spec{Name: name, ProjectID: mp, MaxConcurrent: 5, TimeZone: "Europe/Berlin",
		CutoverMode: wave.CutoverAuto, Budget: wave.Budget{DefaultMbps: 500,
			Windows: []wave.TimeWindow{{Start: "08:00", End: "18:00", Weekdays: []wave.Weekday{"MON"}, Mbps: 100}}},
		CutoverWindows: []wave.TimeWindow{{Start: "22:00", End: "02:00"}},
		TaskDefaults:   wave.TaskDefaults{Type: sms.MigrateBlock, VMTemplateID: "tpl"}})
	return w
}

// createWave stores wave name of tenant a in project mp with a member for
// each of sources.
func createWave(t *testing.T, s *store.Store, a store.Tenant, name, mp string, sources ...string) *store.Wave {
	t.Helper()
	w := newWave(name, mp)
	require.NoError(t, s.CreateWave(ctx, a, w, members(sources...)))
	return w
}

func members(ids ...string) []store.WaveMember {
	out := make([]store.WaveMember, len(ids))
	for i, id := range ids {
		out[i] = store.WaveMember{ID: uuid.NewString(), SourceID: id, Priority: 1, DiskSizesGiB: []int64{40}}
	}
	return out
}

func TestWaveCRUD(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		a, mp, src := waveSetup(t, s, 4)
		b := tenant()

		w := createWave(t, s, a, "w1", mp.ID, src[0], src[1])
		got, err := s.Wave(ctx, a, w.ID)
		require.NoError(t, err)
		assert.Equal(t, wave.WaveDraft, got.State)
		assert.Equal(t, 2, got.MemberCount)
		assert.Equal(t, a.ProjectID, got.ProjectID)
		assert.Equal(t, w.Spec(nil), got.Spec(nil), "the spec round-trips through the JSON columns")

		ms, err := s.WaveMembers(ctx, a, w.ID)
		require.NoError(t, err)
		require.Len(t, ms, 2)
		assert.Equal(t, []int{0, 1}, []int{ms[0].Position, ms[1].Position})
		assert.Equal(t, "srv-000", ms[0].SourceName, "the source's name is kept")
		assert.Equal(t, []int64{40}, ms[0].DiskSizesGiB)
		assert.Equal(t, wave.MemberPending, ms[0].State)

		// Names are unique in a migration project of a tenant.
		assert.ErrorIs(t, s.CreateWave(ctx, a, newWave("w1", mp.ID), nil), store.ErrDuplicate)
		// Another tenant: cannot see it, nor use a's project or sources.
		_, err = s.Wave(ctx, b, w.ID)
		assert.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.WaveMembers(ctx, b, w.ID)
		assert.ErrorIs(t, err, store.ErrNotFound)
		assert.ErrorIs(t, s.CreateWave(ctx, b, newWave("x", mp.ID), nil), store.ErrNotFound)
		mpB := newMigProject("p")
		require.NoError(t, s.CreateMigProject(ctx, b, mpB))
		var miss *store.MissingError
		require.ErrorAs(t, s.CreateWave(ctx, b, newWave("w1", mpB.ID), members(src[2])), &miss)
		assert.Equal(t, []string{src[2]}, miss.IDs)
		require.NoError(t, s.CreateWave(ctx, b, newWave("w1", mpB.ID), nil), "the same name in another tenant")
		assert.ErrorIs(t, s.UpdateWave(ctx, b, w.ID, func(*gorm.DB, *store.Wave) error { return nil }), store.ErrNotFound)
		assert.ErrorIs(t, s.DeleteWave(ctx, b, w.ID), store.ErrNotFound)

		// Members: add, a source twice refused, remove.
		require.NoError(t, s.AddWaveMembers(ctx, a, w.ID, members(src[2])))
		assert.ErrorIs(t, s.AddWaveMembers(ctx, a, w.ID, members(src[2])), store.ErrDuplicate)
		ms, err = s.WaveMembers(ctx, a, w.ID)
		require.NoError(t, err)
		require.Len(t, ms, 3)
		assert.Equal(t, 2, ms[2].Position)
		require.ErrorAs(t, s.RemoveWaveMembers(ctx, a, w.ID, []string{ms[0].ID, "nope"}), &miss)
		assert.Equal(t, []string{"nope"}, miss.IDs)
		require.NoError(t, s.RemoveWaveMembers(ctx, a, w.ID, []string{ms[0].ID}))
		got, _ = s.Wave(ctx, a, w.ID)
		assert.Equal(t, 2, got.MemberCount)

		// Update: rename, a taken name refused.
		w2 := createWave(t, s, a, "w2", mp.ID)
		assert.ErrorIs(t, s.UpdateWave(ctx, a, w2.ID, func(_ *gorm.DB, x *store.Wave) error { x.Name = "w1"; return nil }), store.ErrDuplicate)
		require.NoError(t, s.UpdateWave(ctx, a, w2.ID, func(_ *gorm.DB, x *store.Wave) error { x.Description = "d"; return nil }))
		got, _ = s.Wave(ctx, a, w2.ID)
		assert.Equal(t, "d", got.Description)

		// List: filters, paging, count.
		list, total, err := s.ListWaves(ctx, a, store.WaveFilter{}, store.Page{Limit: 1, Offset: 1})
		require.NoError(t, err)
		assert.EqualValues(t, 2, total)
		require.Len(t, list, 1)
		assert.Equal(t, "w2", list[0].Name)
		list, total, err = s.ListWaves(ctx, a, store.WaveFilter{Name: "w1", State: wave.WaveDraft, MigProjectID: mp.ID}, store.Page{Limit: 10})
		require.NoError(t, err)
		assert.EqualValues(t, 1, total)
		assert.Equal(t, w.ID, list[0].ID)
		_, total, err = s.ListWaves(ctx, a, store.WaveFilter{State: wave.WaveDone}, store.Page{Limit: 10})
		require.NoError(t, err)
		assert.Zero(t, total)

		require.NoError(t, s.DeleteWave(ctx, a, w2.ID))
		_, err = s.Wave(ctx, a, w2.ID)
		assert.ErrorIs(t, err, store.ErrNotFound)
	})
}

// TestWaveStatesAndMembership: the life cycle is enforced, a source is in
// one active wave at most, a running wave is neither deleted nor edited
// and its sources cannot be deleted, counters follow member states.
func TestWaveStatesAndMembership(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		a, mp, src := waveSetup(t, s, 3)

		w1, w2 := newWave("w1", mp.ID), newWave("w2", mp.ID)
		require.NoError(t, s.CreateWave(ctx, a, w1, members(src[0], src[1])))
		// Two drafts may share a source; the second to become active is refused.
		require.NoError(t, s.CreateWave(ctx, a, w2, members(src[1])))
		require.NoError(t, s.SetWaveState(ctx, a, w1.ID, wave.WaveScheduled, "scheduled"))
		var inWave *store.SourceInWaveError
		require.ErrorAs(t, s.SetWaveState(ctx, a, w2.ID, wave.WaveScheduled, ""), &inWave)
		assert.Equal(t, store.SourceInWaveError{SourceID: src[1], WaveID: w1.ID}, *inWave)
		require.ErrorAs(t, s.CreateWave(ctx, a, newWave("w3", mp.ID), members(src[0])), &inWave)
		require.ErrorAs(t, s.AddWaveMembers(ctx, a, w2.ID, members(src[0])), &inWave)
		wid, err := s.ActiveWaveOfSource(ctx, a, src[0])
		require.NoError(t, err)
		assert.Equal(t, w1.ID, wid)
		wid, err = s.ActiveWaveOfSource(ctx, a, src[2])
		require.NoError(t, err)
		assert.Empty(t, wid)
		in, err := s.ActiveWavesOfSources(ctx, a, src, "")
		require.NoError(t, err)
		assert.Equal(t, map[string]string{src[0]: w1.ID, src[1]: w1.ID}, in)

		// A move the life cycle forbids.
		var stErr *store.WaveStateError
		require.ErrorAs(t, s.SetWaveState(ctx, a, w1.ID, wave.WaveDone, ""), &stErr)
		assert.Equal(t, wave.WaveScheduled, stErr.State)

		require.NoError(t, s.SetWaveState(ctx, a, w1.ID, wave.WaveReplicating, "started"))
		got, _ := s.Wave(ctx, a, w1.ID)
		require.NotNil(t, got.StartedAt)
		assert.Equal(t, "started", got.StateReason)
		require.ErrorAs(t, s.DeleteWave(ctx, a, w1.ID), &stErr, "a running wave is not deleted")
		require.ErrorAs(t, s.AddWaveMembers(ctx, a, w1.ID, members(src[2])), &stErr, "nor edited")
		ms, _ := s.WaveMembers(ctx, a, w1.ID)
		require.ErrorAs(t, s.RemoveWaveMembers(ctx, a, w1.ID, []string{ms[0].ID}), &stErr)

		// Deleting a source of a running wave is refused; of a draft, it
		// leaves the draft.
		err = s.DeleteSources(ctx, a, []string{src[0]}, func(string) bool { return false })
		require.ErrorAs(t, err, &inWave)
		assert.ErrorIs(t, err, store.ErrConflict)
		_, err = s.Source(ctx, a, src[0])
		require.NoError(t, err, "nothing deleted")

		// Member states: moves checked, failures remembered, counters kept.
		tid := "task-1"
		require.NoError(t, s.UpdateWaveMember(ctx, a, w1.ID, ms[0].ID, func(m *store.WaveMember) error {
			m.State, m.TaskID, m.BytesTotal = wave.MemberCopying, &tid, 100
			return nil
		}))
		err = s.UpdateWaveMember(ctx, a, w1.ID, ms[0].ID, func(m *store.WaveMember) error { m.State = wave.MemberDone; return nil })
		var se *smserr.Error
		require.ErrorAs(t, err, &se)
		assert.Equal(t, wave.ErrBadTransition.Code, se.Code)
		require.NoError(t, s.UpdateWaveMember(ctx, a, w1.ID, ms[0].ID, func(m *store.WaveMember) error {
			m.State, m.ErrorCode = wave.MemberFailed, "SMS.9999"
			for i := range 30 {
				m.Churn = append(m.Churn, wave.SyncPass{End: time.Unix(int64(i*3600), 0).UTC(), BytesChanged: 1})
			}
			return nil
		}))
		got, _ = s.Wave(ctx, a, w1.ID)
		assert.Equal(t, 1, got.FailedCount)
		ms, _ = s.WaveMembers(ctx, a, w1.ID)
		assert.Equal(t, wave.MemberCopying, ms[0].FailedFrom)
		assert.Nil(t, ms[0].Churn, "the list leaves the samples out")
		require.NotNil(t, ms[0].ChurnBytesPerHour, "and carries their measure")
		assert.InDelta(t, 1.0, *ms[0].ChurnBytesPerHour, 1e-9, "one byte an hour")
		c, ok := ms[0].MeasuredChurn()
		require.True(t, ok)
		assert.Equal(t, time.Hour, c.Interval)
		var full store.WaveMember
		require.NoError(t, s.DB().Where("id = ?", ms[0].ID).Take(&full).Error)
		assert.Len(t, full.Churn, store.MaxChurnSamples, "churn samples are bounded")
		assert.Equal(t, time.Unix(29*3600, 0).UTC(), full.Churn[store.MaxChurnSamples-1].End.UTC(), "the newest are kept")
		brief, err := s.WaveMembersBrief(ctx, a, w1.ID)
		require.NoError(t, err)
		require.Len(t, brief, len(ms))
		assert.Equal(t, ms[0].ChurnBytesPerHour, brief[0].ChurnBytesPerHour)
		assert.Equal(t, ms[0].TaskID, brief[0].TaskID)
		for i := range ms {
			b, f := brief[i], ms[i]
			assert.Equal(t, []any{f.ID, f.SourceID, f.SourceName, f.DiskSizesGiB, f.Priority, f.State, f.FailedFrom, f.ErrorCode, f.BytesTotal},
				[]any{b.ID, b.SourceID, b.SourceName, b.DiskSizesGiB, b.Priority, b.State, b.FailedFrom, b.ErrorCode, b.BytesTotal})
		}
		require.NoError(t, s.UpdateWaveMember(ctx, a, w1.ID, ms[0].ID, func(m *store.WaveMember) error { m.State = wave.MemberCopying; return nil }))
		for _, st := range []wave.MemberState{wave.MemberSyncing, wave.MemberCuttingOver, wave.MemberDone} {
			require.NoError(t, s.UpdateWaveMember(ctx, a, w1.ID, ms[0].ID, func(m *store.WaveMember) error { m.State = st; return nil }))
		}
		got, _ = s.Wave(ctx, a, w1.ID)
		assert.Equal(t, 0, got.FailedCount)
		assert.Equal(t, 1, got.DoneCount)

		for _, st := range []wave.WaveState{wave.WaveCanceled} {
			require.NoError(t, s.SetWaveState(ctx, a, w1.ID, st, "operator"))
		}
		got, _ = s.Wave(ctx, a, w1.ID)
		require.NotNil(t, got.FinishedAt)
		// Canceled: the sources are free again, the wave may be deleted, and
		// deleting a member source of a finished wave is allowed.
		require.NoError(t, s.SetWaveState(ctx, a, w2.ID, wave.WaveScheduled, ""))
		require.NoError(t, s.DeleteSources(ctx, a, []string{src[0]}, func(string) bool { return false }))
		got, _ = s.Wave(ctx, a, w1.ID)
		assert.Equal(t, 1, got.MemberCount, "the deleted source left the wave")
		require.NoError(t, s.DeleteWave(ctx, a, w1.ID))
	})
}

// TestWaveTasks: tasks created for a wave are read with one query by wave
// id, and deleting the wave leaves them as tasks of their own.
func TestWaveTasks(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		a, mp, src := waveSetup(t, s, 2)
		b := tenant()
		w := createWave(t, s, a, "w", mp.ID, src...)
		for i, id := range src {
			task := &store.Task{ID: fmt.Sprintf("t%d-%s", i, w.ID[:8]), SourceID: id, Name: "t", State: sms.TaskReady,
				Totalsize: 1000, Replicatesize: int64(100 * (i + 1)), WaveID: &w.ID}
			require.NoError(t, s.CreateTask(ctx, a, task))
		}
		got, err := s.WaveTasks(ctx, a, w.ID)
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.EqualValues(t, 200, got["t1-"+w.ID[:8]].Replicatesize)
		other, err := s.WaveTasks(ctx, b, w.ID)
		require.NoError(t, err)
		assert.Empty(t, other)
		// The show's narrow read says the same of the progress.
		brief, err := s.WaveTaskProgress(ctx, a, w.ID)
		require.NoError(t, err)
		for id, full := range got {
			full.ConsistencyResults = nil
			assert.Equal(t, full, brief[id])
		}
		assert.Len(t, brief, 2)
		other, err = s.WaveTaskProgress(ctx, b, w.ID)
		require.NoError(t, err)
		assert.Empty(t, other)

		require.NoError(t, s.DeleteWave(ctx, a, w.ID))
		task, err := s.Task(ctx, a, "t0-"+w.ID[:8])
		require.NoError(t, err)
		assert.Nil(t, task.WaveID)
	})
}

// TestWaveConcurrentMembership: two waves taking one source at the same
// moment: exactly one becomes active with it.
func TestWaveConcurrentMembership(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		a, mp, src := waveSetup(t, s, 1)
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := newWave(fmt.Sprintf("w%d", i), mp.ID)
				w.State = wave.WaveScheduled
				errs[i] = s.CreateWave(ctx, a, w, members(src[0]))
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				var inWave *store.SourceInWaveError
				assert.ErrorAs(t, err, &inWave)
			}
		}
		assert.Equal(t, 1, ok)
	})
}

// TestWaveRecord: the workflow's writes are recorded as it says them (a
// member skipping a state, the wave moving as its run moved), in one
// transaction, with the counters and stamps kept.
func TestWaveRecord(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		a, mp, src := waveSetup(t, s, 2)
		b := tenant()
		w := createWave(t, s, a, "w", mp.ID, src...)
		ms, err := s.WaveMembers(ctx, a, w.ID)
		require.NoError(t, err)
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		require.NoError(t, s.RecordWaveState(ctx, a, w.ID, wave.WaveReplicating, "", at, true, false))
		// PENDING straight to SYNCING (an event the API would refuse) and a
		// failure, in one go.
		require.NoError(t, s.RecordWaveMembers(ctx, a, w.ID, []store.MemberChange{
			{MemberID: ms[0].ID, Apply: func(m *store.WaveMember) error { m.State = wave.MemberSyncing; m.SyncedAt = &at; return nil }},
			{MemberID: ms[1].ID, Apply: func(m *store.WaveMember) error { m.State, m.ErrorCode = wave.MemberFailed, "SMS.1"; return nil }},
		}))
		// All or none: an unknown member rolls the batch back.
		err = s.RecordWaveMembers(ctx, a, w.ID, []store.MemberChange{
			{MemberID: ms[0].ID, Apply: func(m *store.WaveMember) error { m.State = wave.MemberDone; return nil }},
			{MemberID: "nope", Apply: func(m *store.WaveMember) error { return nil }},
		})
		assert.ErrorIs(t, err, store.ErrNotFound)
		assert.ErrorIs(t, s.RecordWaveMembers(ctx, b, w.ID, []store.MemberChange{
			{MemberID: ms[0].ID, Apply: func(m *store.WaveMember) error { return nil }}}), store.ErrNotFound, "another tenant")
		got, err := s.WaveMembers(ctx, a, w.ID)
		require.NoError(t, err)
		assert.Equal(t, wave.MemberSyncing, got[0].State, "the failed batch changed nothing")
		assert.Equal(t, wave.MemberFailed, got[1].State)
		assert.Equal(t, wave.MemberPending, got[1].FailedFrom)
		gw, err := s.Wave(ctx, a, w.ID)
		require.NoError(t, err)
		assert.Equal(t, wave.WaveReplicating, gw.State)
		require.NotNil(t, gw.StartedAt)
		assert.True(t, at.Equal(*gw.StartedAt))
		assert.Equal(t, 1, gw.FailedCount)
		require.NoError(t, s.RecordWaveState(ctx, a, w.ID, wave.WaveCanceled, "operator", at.Add(time.Hour), false, true))
		gw, _ = s.Wave(ctx, a, w.ID)
		assert.True(t, at.Add(time.Hour).Equal(*gw.FinishedAt))
		assert.True(t, at.Equal(*gw.StartedAt), "started once")
		assert.ErrorIs(t, s.RecordWaveState(ctx, b, w.ID, wave.WaveDone, "", at, false, true), store.ErrNotFound)
	})
}
