package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms"
)

// TestSnapshotRestoreBlock: a snapshot taken before a sync pass brings the
// disk images back byte for byte after the pass wrote over them (sparse
// holes included), and clear removes it.
func TestSnapshotRestoreBlock(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	spec := provider.Spec{DomainID: "d1", TaskID: "task-1", Type: sms.MigrateBlock,
		Disks: []provider.Disk{{Name: "vda", Size: 8 << 20}, {Name: "vdb", Size: 4 << 20}}}
	tg, err := p.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, p.Format(ctx, tg, spec))
	writeAt(t, tg.Disks[0], 1<<20, []byte("synced before"))
	writeAt(t, tg.Disks[1], 0, []byte("second disk"))
	want0, want1 := readAll(t, tg.Disks[0]), readAll(t, tg.Disks[1])

	require.NoError(t, p.Snapshot(ctx, tg, "s1"))
	require.NoError(t, p.Snapshot(ctx, tg, "s1"), "a retried snapshot is a no-op")
	// The failed pass half-writes both disks.
	writeAt(t, tg.Disks[0], 1<<20, []byte("HALF-SYNCED!!"))
	writeAt(t, tg.Disks[0], 6<<20, []byte("new data in a hole"))
	writeAt(t, tg.Disks[1], 0, []byte("overwritten"))
	require.NotEqual(t, want0, readAll(t, tg.Disks[0]))

	require.NoError(t, p.Restore(ctx, tg, "s1"))
	assert.Equal(t, want0, readAll(t, tg.Disks[0]), "disk 0 is byte-identical to the snapshot")
	assert.Equal(t, want1, readAll(t, tg.Disks[1]), "disk 1 is byte-identical to the snapshot")

	// A later snapshot replaces the earlier one.
	require.NoError(t, p.Snapshot(ctx, tg, "s2"))
	assert.NoDirExists(t, filepath.Join(SnapshotsDir(tg.Location), "s1"))
	assert.ErrorIs(t, p.Restore(ctx, tg, "s1"), provider.ErrNoSnapshot)

	require.NoError(t, p.DeleteSnapshots(ctx, tg))
	assert.NoDirExists(t, SnapshotsDir(tg.Location))
	assert.ErrorIs(t, p.Restore(ctx, tg, "s2"), provider.ErrNoSnapshot, "a cleared snapshot cannot be restored")
	assert.Equal(t, want0, readAll(t, tg.Disks[0]), "clear leaves the target's disks alone")
}

// TestSnapshotRestoreTree: a file-level target's tree comes back as it was:
// changed and added files undone, removed ones back, links kept.
func TestSnapshotRestoreTree(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	spec := provider.Spec{DomainID: "d1", TaskID: "task-f", Type: sms.MigrateFile, Disks: []provider.Disk{{Name: "vda", Size: 1 << 20}}}
	tg, err := p.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, p.Format(ctx, tg, spec))
	root := RootDir(tg.Location)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc", "hosts"), []byte("127.0.0.1 web\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "keep.sh"), []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, os.Symlink("etc/hosts", filepath.Join(root, "hosts")))

	require.NoError(t, p.Snapshot(ctx, tg, "s1"))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc", "hosts"), []byte("half"), 0o644))
	require.NoError(t, os.Remove(filepath.Join(root, "keep.sh")))
	require.NoError(t, os.WriteFile(filepath.Join(root, "partial.tmp"), []byte("x"), 0o600))

	require.NoError(t, p.Restore(ctx, tg, "s1"))
	b, err := os.ReadFile(filepath.Join(root, "etc", "hosts"))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1 web\n", string(b))
	st, err := os.Stat(filepath.Join(root, "keep.sh"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm(), "modes come back")
	assert.NoFileExists(t, filepath.Join(root, "partial.tmp"), "files the failed pass added are gone")
	link, err := os.Readlink(filepath.Join(root, "hosts"))
	require.NoError(t, err)
	assert.Equal(t, "etc/hosts", link)
}

// TestSnapshotPathsStayInTarget: snapshot ids and locations that would
// leave the task's target folder are refused; nothing is written outside.
func TestSnapshotPathsStayInTarget(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	spec := provider.Spec{DomainID: "d1", TaskID: "task-1", Type: sms.MigrateBlock, Disks: []provider.Disk{{Name: "vda", Size: 1 << 20}}}
	tg, err := p.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, p.Format(ctx, tg, spec))
	for _, id := range []string{"", ".", "..", "../task-2", "a/b", ".hidden", "s1.partial"} {
		assert.Error(t, p.Snapshot(ctx, tg, id), "id %q", id)
		assert.Error(t, p.Restore(ctx, tg, id), "id %q", id)
	}
	outside := tg
	outside.Location = filepath.Dir(p.Root)
	assert.Error(t, p.Snapshot(ctx, outside, "s1"), "a location outside the root")
	assert.Error(t, p.DeleteSnapshots(ctx, outside), "a location outside the root")
	entries, err := os.ReadDir(p.Root)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "only the target folder exists under the root")
	_, err = os.Stat(filepath.Join(filepath.Dir(p.Root), "snapshots"))
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

// TestCloneFileCanceled: the streamed copy stops on a canceled context.
func TestCloneFileCanceled(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeAt(t, src, 0, []byte("data"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := copySparse(ctx, src, filepath.Join(dir, "dst"))
	assert.ErrorIs(t, err, context.Canceled)
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	require.NoError(t, err)
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
