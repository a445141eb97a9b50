package store_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// newTask registers a source for the tenant and creates a task on it.
func newTask(t *testing.T, s *store.Store, ten store.Tenant) string {
	t.Helper()
	name := "web-" + uuid.NewString()[:8]
	src := &store.Source{Name: name, Hostname: name, IP: "10.0.0.1", OSType: "LINUX", OSVersion: "CENTOS7.9",
		AgentVersion: "test", State: "waiting", MigrationCycle: "cutoverready"}
	id, _, err := s.RegisterSource(ctx, ten, store.Registration{Source: src, NewID: uuid.NewString})
	require.NoError(t, err)
	task := &store.Task{ID: uuid.NewString(), SourceID: id, Name: "t", Type: "MIGRATE_BLOCK", OSType: "LINUX", State: "READY"}
	require.NoError(t, s.CreateTask(ctx, ten, task))
	return task.ID
}

func TestAgentLogs(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ten := tenant()
		task := newTask(t, s, ten)
		_, err := s.LatestAgentLog(ctx, ten, task)
		assert.ErrorIs(t, err, store.ErrNotFound, "no upload yet")

		// A log of a few MiB, compressible as logs are.
		big := bytes.Repeat([]byte("time=2026-11-27 level=INFO msg=\"pass done\" blocks=1024\n"), 60000)
		for i := range store.KeepAgentLogs + 2 {
			text := append([]byte(fmt.Sprintf("upload %d\n", i)), big...)
			l, err := s.SaveAgentLog(ctx, ten, task, "bucket", text)
			require.NoError(t, err)
			assert.Less(t, len(l.Gzip), len(text)/10, "kept compressed")
		}
		l, err := s.LatestAgentLog(ctx, ten, task)
		require.NoError(t, err)
		text, err := l.Text()
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(text, []byte(fmt.Sprintf("upload %d\n", store.KeepAgentLogs+1))), "the newest")
		assert.Equal(t, int64(len(text)), l.Size)
		assert.Equal(t, "bucket", l.Bucket)
		var n int64
		require.NoError(t, s.DB().Model(&store.AgentLog{}).Where("task_id = ?", task).Count(&n).Error)
		assert.EqualValues(t, store.KeepAgentLogs, n, "older uploads are dropped")

		// Another tenant neither sees nor writes this task's logs.
		other := tenant()
		_, err = s.LatestAgentLog(ctx, other, task)
		assert.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.SaveAgentLog(ctx, other, task, "b", []byte("x"))
		assert.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.SaveAgentLog(ctx, ten, "no-such-task", "b", []byte("x"))
		assert.ErrorIs(t, err, store.ErrNotFound)

		// Deleting the task deletes its logs.
		require.NoError(t, s.DeleteTask(context.Background(), ten, task))
		require.NoError(t, s.DB().Model(&store.AgentLog{}).Where("task_id = ?", task).Count(&n).Error)
		assert.Zero(t, n)
	})
}
