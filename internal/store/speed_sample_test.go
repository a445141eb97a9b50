package store_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// TestSpeedSamples: progress keeps a sample per SpeedSampleEvery at most,
// with the limit in force; the list thins evenly, stays in its tenant, and
// goes with the task.
func TestSpeedSamples(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ten := tenant()
		id := newTask(t, s, ten)
		report := func(atMs int64, mbps float64, limit int32) {
			require.NoError(t, s.UpdateTaskProgress(ctx, ten, id, func(task *store.Task) error {
				task.LastProgressAt, task.MigrateSpeed, task.CurrentLimit = atMs, mbps, limit
				task.Replicatesize += 1 << 20
				return nil
			}))
		}
		const t0 = int64(1_800_000_000_000)
		for i := range int64(30) {
			report(t0+i*5_000, float64(100+i), 200) // every 5 s: one in two kept
		}
		all, err := s.SpeedSamples(ctx, ten, id, 0)
		require.NoError(t, err)
		require.Len(t, all, 15)
		assert.Equal(t, t0, all[0].AtMs)
		assert.InDelta(t, 100.0, all[0].Mbps, 0.001)
		assert.EqualValues(t, 200, all[0].LimitMbps)
		assert.Equal(t, t0+28*5_000, all[14].AtMs)
		assert.InDelta(t, 128.0, all[14].Mbps, 0.001)

		thin, err := s.SpeedSamples(ctx, ten, id, 4)
		require.NoError(t, err)
		require.Len(t, thin, 4)
		assert.Equal(t, all[0].AtMs, thin[0].AtMs, "the first is kept")
		assert.Equal(t, all[14].AtMs, thin[3].AtMs, "the last is kept")

		other, err := s.SpeedSamples(ctx, store.Tenant{DomainID: "someone-else"}, id, 0)
		require.NoError(t, err)
		assert.Empty(t, other, "another domain sees no samples")

		require.NoError(t, s.DeleteTask(ctx, ten, id))
		gone, err := s.SpeedSamples(ctx, ten, id, 0)
		require.NoError(t, err)
		assert.Empty(t, gone)
	})
}
