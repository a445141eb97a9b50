package activities_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/provider/local"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// TestSnapshotActivities: the snapshot taken before a finished task's pass
// is recorded as its target_snapshot_id and restores the disk byte for
// byte; DeleteSnapshots removes it. Another domain's task (SMS.7703) and a
// target that is not the task's (SMS.8103) are refused before any file is
// touched.
func TestSnapshotActivities(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		other := newFixture(t, s) // a second tenant, with its own task
		a := (*activities.Activities)(nil)
		var out activities.StepOutput
		require.NoError(t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "CREATE_CLOUD_SERVER"}, &out))
		require.NoError(t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "FORMAT_DISK", Target: out.Target}, nil))
		disk := out.Target.Disks[0]
		write := func(text string) {
			fh, err := os.OpenFile(disk, os.O_RDWR, 0)
			require.NoError(t, err)
			_, err = fh.WriteAt([]byte(text), 4096)
			require.NoError(t, err)
			require.NoError(t, fh.Close())
		}
		// The image is large and sparse: its head, where the writes go,
		// and its size are compared.
		head := func() ([]byte, int64) {
			fh, err := os.Open(disk)
			require.NoError(t, err)
			defer fh.Close()
			b := make([]byte, 1<<20)
			_, err = fh.ReadAt(b, 0)
			require.NoError(t, err)
			st, err := fh.Stat()
			require.NoError(t, err)
			return b, st.Size()
		}
		write("before the pass")
		want, wantSize := head()

		in := activities.SnapshotInput{Ref: f.ref, Target: *out.Target, ID: "sync-1"}
		var taken bool
		require.NoError(t, f.run(a.SnapshotTarget, in, &taken))
		assert.True(t, taken)
		assert.Equal(t, "sync-1", f.task().TargetServer.SnapshotIDs, "recorded as target_snapshot_id")

		// Another tenant's ref naming this target: refused, nothing written.
		foreign := in
		foreign.Ref = other.ref
		foreign.ID = "sync-2"
		err := f.run(a.SnapshotTarget, foreign, nil)
		code, _ := smsCode(err)
		assert.Equal(t, "SMS.8103", code, "the other task has no such target")
		foreign.Ref.TaskID = f.ref.TaskID // this task's id under the other domain
		code, _ = smsCode(f.run(a.RestoreTarget, foreign, nil))
		assert.Equal(t, "SMS.7703", code)
		code, _ = smsCode(f.run(a.DeleteSnapshots, foreign, nil))
		assert.Equal(t, "SMS.7703", code)
		assert.NoDirExists(t, filepath.Join(local.SnapshotsDir(out.Target.Location), "sync-2"))
		assert.DirExists(t, filepath.Join(local.SnapshotsDir(out.Target.Location), "sync-1"))

		write("HALF-SYNCED!!!!")
		require.NoError(t, f.run(a.RestoreTarget, in, nil))
		got, size := head()
		assert.Equal(t, want, got, "the disk is byte-identical to the snapshot")
		assert.Equal(t, wantSize, size)

		require.NoError(t, f.run(a.DeleteSnapshots, in, nil))
		assert.NoDirExists(t, local.SnapshotsDir(out.Target.Location))
		code, retry := smsCode(f.run(a.RestoreTarget, in, nil))
		assert.Equal(t, "SMS.1410", code, "a deleted snapshot")
		assert.False(t, retry)
	})
}
