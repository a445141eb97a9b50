package store_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// taskSource reads back a task and its source.
func taskSource(t *testing.T, s *store.Store, ten store.Tenant, taskID string) (*store.Task, *store.Source) {
	t.Helper()
	task, err := s.Task(ctx, ten, taskID)
	require.NoError(t, err)
	src, err := s.Source(ctx, ten, task.SourceID)
	require.NoError(t, err)
	return task, src
}

// TestTransitionTask: the task and its source move in one transaction; a
// zero change leaves the source alone; an error from fn writes nothing.
func TestTransitionTask(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ten := tenant()
		id := newTask(t, s, ten)
		ej := `{"error_code":"SMS.3802"}`
		require.NoError(t, s.TransitionTask(ctx, ten, id, func(task *store.Task) error {
			task.State = sms.TaskRunning
			return nil
		}, store.SourceCycleChange{State: sms.SourceReplicate, Cycle: sms.CycleReplicating, ErrorJSON: &ej, AtMs: 1234}))
		task, src := taskSource(t, s, ten, id)
		assert.Equal(t, sms.TaskRunning, task.State)
		assert.Equal(t, sms.SourceReplicate, src.State)
		assert.Equal(t, sms.CycleReplicating, src.MigrationCycle)
		assert.EqualValues(t, 1234, src.StateActionTime)
		assert.EqualValues(t, 1234, src.StageActionTime)
		assert.Equal(t, ej, src.ErrorJSON)

		// The same state again keeps its action time; a zero change keeps
		// the source as it is.
		require.NoError(t, s.TransitionTask(ctx, ten, id, func(task *store.Task) error { return nil },
			store.SourceCycleChange{State: sms.SourceReplicate, Cycle: sms.CycleSyncing, AtMs: 5678}))
		_, src = taskSource(t, s, ten, id)
		assert.EqualValues(t, 1234, src.StateActionTime)
		assert.EqualValues(t, 5678, src.StageActionTime)
		assert.Equal(t, ej, src.ErrorJSON, "a nil ErrorJSON keeps the error")
		require.NoError(t, s.TransitionTask(ctx, ten, id, func(task *store.Task) error {
			task.State = sms.TaskSyncing
			return nil
		}, store.SourceCycleChange{}))
		task, src = taskSource(t, s, ten, id)
		assert.Equal(t, sms.TaskSyncing, task.State)
		assert.Equal(t, sms.CycleSyncing, src.MigrationCycle)

		// fn's error rolls back: neither row changes.
		boom := errors.New("boom")
		err := s.TransitionTask(ctx, ten, id, func(task *store.Task) error {
			task.State = "ERROR"
			return boom
		}, store.SourceCycleChange{State: sms.SourceError, AtMs: 9})
		require.ErrorIs(t, err, boom)
		task, src = taskSource(t, s, ten, id)
		assert.Equal(t, sms.TaskSyncing, task.State)
		assert.Equal(t, sms.SourceReplicate, src.State)

		// Another tenant cannot transition the task.
		err = s.TransitionTask(ctx, tenant(), id, func(*store.Task) error { return nil }, store.SourceCycleChange{State: sms.SourceError})
		assert.ErrorIs(t, err, store.ErrNotFound)
	})
}

// TestSetConsistencyResults: the results and the source's flag follow each
// other, both ways.
func TestSetConsistencyResults(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ten := tenant()
		id := newTask(t, s, ten)
		res := []store.ConsistencyResult{{DirCheck: "/etc", NumTotalFiles: 10, NumDifferentFiles: 1}}
		require.NoError(t, s.SetConsistencyResults(ctx, ten, id, res))
		task, src := taskSource(t, s, ten, id)
		assert.Equal(t, res, task.ConsistencyResults)
		assert.True(t, src.IsConsistencyResultExist)

		require.NoError(t, s.SetConsistencyResults(ctx, ten, id, nil))
		task, src = taskSource(t, s, ten, id)
		assert.Empty(t, task.ConsistencyResults)
		assert.False(t, src.IsConsistencyResultExist)

		assert.ErrorIs(t, s.SetConsistencyResults(ctx, tenant(), id, res), store.ErrNotFound)
	})
}

// TestUpdateTaskProgress: the sizes fn leaves on the task reach its source.
func TestUpdateTaskProgress(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ten := tenant()
		id := newTask(t, s, ten)
		require.NoError(t, s.UpdateTaskProgress(ctx, ten, id, func(task *store.Task) error {
			task.Replicatesize, task.Totalsize = 300, 1000
			return nil
		}))
		task, src := taskSource(t, s, ten, id)
		assert.EqualValues(t, 300, task.Replicatesize)
		assert.EqualValues(t, 300, src.Replicatesize)
		assert.EqualValues(t, 1000, src.Totalsize)

		err := s.UpdateTaskProgress(ctx, ten, id, func(task *store.Task) error {
			task.Replicatesize = 900
			return errors.New("not running")
		})
		require.Error(t, err)
		_, src = taskSource(t, s, ten, id)
		assert.EqualValues(t, 300, src.Replicatesize, "rolled back")
	})
}

// TestMoveSource: a source moves only to a migration project of its own
// tenant; anything else is a *MigProjectMissingError (not ErrNotFound,
// which means "no such source") and changes nothing.
func TestMoveSource(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ten, other := tenant(), tenant()
		taskID := newTask(t, s, ten)
		_, src := taskSource(t, s, ten, taskID)
		home := src.MigProjectID
		mp := newMigProject("target")
		require.NoError(t, s.CreateMigProject(ctx, ten, mp))
		foreign := newMigProject("foreign")
		require.NoError(t, s.CreateMigProject(ctx, other, foreign))

		rename := func(name string) func(*store.Source) error {
			return func(src *store.Source) error { src.Name = name; return nil }
		}
		for _, bad := range []string{foreign.ID, "no-such-project", ""} {
			err := s.MoveSource(ctx, ten, src.ID, bad, rename("moved"))
			var missing *store.MigProjectMissingError
			require.ErrorAs(t, err, &missing, "project %q", bad)
			assert.Equal(t, bad, missing.ID)
			assert.NotErrorIs(t, err, store.ErrNotFound)
		}
		_, got := taskSource(t, s, ten, taskID)
		assert.Equal(t, home, got.MigProjectID)
		assert.Equal(t, src.Name, got.Name, "fn did not run")

		// Its own project: no check, fn runs.
		require.NoError(t, s.MoveSource(ctx, ten, src.ID, home, rename("same")))
		require.NoError(t, s.MoveSource(ctx, ten, src.ID, mp.ID, rename("moved")))
		_, got = taskSource(t, s, ten, taskID)
		assert.Equal(t, mp.ID, got.MigProjectID)
		assert.Equal(t, "moved", got.Name)

		// Another tenant's source is not found, whatever the project.
		err := s.MoveSource(ctx, other, src.ID, foreign.ID, rename("x"))
		assert.ErrorIs(t, err, store.ErrNotFound)
	})
}
