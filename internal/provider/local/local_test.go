package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms"
)

func newProvider(t *testing.T) *Provider {
	t.Helper()
	p, err := New(filepath.Join(t.TempDir(), "targets"))
	require.NoError(t, err)
	return p
}

// allocated is how many bytes of the file are really on disk.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

func TestCreateIsIdempotentAndFormatIsSparse(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	spec := provider.Spec{DomainID: "d1", TaskID: "task-1", Name: "web", Type: "MIGRATE_BLOCK",
		Disks: []provider.Disk{{Name: "vda", Size: 40 << 30, UsedSize: 1 << 20}, {Name: "vdb", Size: 8 << 30}}}
	tg, err := p.Create(ctx, spec)
	require.NoError(t, err)
	assert.True(t, tg.Created)
	assert.Equal(t, "local-task-1", tg.VMID)
	again, err := p.Create(ctx, spec)
	require.NoError(t, err)
	assert.Equal(t, tg, again, "a retried create finds the same target")

	require.NoError(t, p.Prepare(ctx, tg))
	require.NoError(t, p.Format(ctx, tg, spec))
	for i, d := range spec.Disks {
		st, err := os.Stat(tg.Disks[i])
		require.NoError(t, err)
		assert.Equal(t, d.Size, st.Size())
		assert.Less(t, allocated(t, tg.Disks[i]), int64(1<<20), "a fresh image takes no space")
	}
	require.NoError(t, p.Start(ctx, tg))
	b, err := os.ReadFile(filepath.Join(tg.Location, "target.json"))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"started": true`)
}

func TestFormatRefuses(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		disk provider.Disk
		want error
	}{
		{"more used bytes than the file system has", provider.Disk{Name: "vda", Size: 1 << 62, UsedSize: 1 << 62}, provider.ErrNoSpace},
		{"negative size", provider.Disk{Name: "vda", Size: -1}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newProvider(t)
			spec := provider.Spec{DomainID: "d1", TaskID: "t", Type: "MIGRATE_BLOCK", Disks: []provider.Disk{c.disk}}
			tg, err := p.Create(ctx, spec)
			require.NoError(t, err)
			err = p.Format(ctx, tg, spec)
			require.Error(t, err)
			if c.want != nil {
				assert.ErrorIs(t, err, c.want)
			}
			_, serr := os.Stat(tg.Disks[0])
			assert.True(t, os.IsNotExist(serr), "nothing is half laid out")
		})
	}
}

// TestFormatSumsDoNotWrap: used sizes whose sum passes 2^63 are more than
// any file system holds, at both levels (the sum wrapped to a negative
// figure that passed the free-space check; file-level targets had none).
func TestFormatSumsDoNotWrap(t *testing.T) {
	ctx := context.Background()
	wrapping := []provider.Disk{{Name: "vda", Size: 1 << 20, UsedSize: math.MaxInt64}, {Name: "vdb", Size: 1 << 20, UsedSize: 1}}
	for _, typ := range []sms.TaskType{sms.MigrateBlock, sms.MigrateFile} {
		t.Run(string(typ), func(t *testing.T) {
			p := newProvider(t)
			spec := provider.Spec{DomainID: "d1", TaskID: "t", Type: typ, Disks: wrapping}
			tg, err := p.Create(ctx, spec)
			require.NoError(t, err)
			assert.ErrorIs(t, p.Format(ctx, tg, spec), provider.ErrNoSpace)
			_, err = os.Stat(RootDir(tg.Location))
			assert.ErrorIs(t, err, os.ErrNotExist, "no root folder laid out")
			_, err = os.Stat(tg.Disks[0])
			assert.ErrorIs(t, err, os.ErrNotExist, "no disk image laid out")

			huge := provider.Spec{DomainID: "d1", TaskID: "t", Type: typ,
				Disks: []provider.Disk{{Name: "vda", Size: math.MaxInt64, UsedSize: 1}, {Name: "vdb", Size: 2}}}
			writeManifest(t, tg.Location, huge)
			assert.Equal(t, int64(math.MaxInt64), p.treeCap(tg.Location), "the tree cap saturates")
		})
	}
}

func TestExistingTargetIsBoundAndKept(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	_, err := p.Create(ctx, provider.Spec{DomainID: "d1", TaskID: "t", ExistVM: "prepared-vm"})
	assert.ErrorIs(t, err, provider.ErrNotFound)

	// A folder without an owner belongs to nobody: it cannot be bound.
	require.NoError(t, os.Mkdir(filepath.Join(p.Root, "prepared-vm"), 0o700))
	_, err = p.Create(ctx, provider.Spec{DomainID: "d1", TaskID: "t", ExistVM: "prepared-vm"})
	assert.ErrorIs(t, err, provider.ErrNotFound)

	require.NoError(t, p.Assign("prepared-vm", "d1"))
	tg, err := p.Create(ctx, provider.Spec{DomainID: "d1", TaskID: "t", ExistVM: "prepared-vm", Disks: []provider.Disk{{Size: 1 << 20}}})
	require.NoError(t, err)
	assert.False(t, tg.Created, "the operator's server is not ours to delete")
	assert.Equal(t, "prepared-vm", tg.VMID)
	assert.Error(t, p.Delete(ctx, tg), "a bound server is never deleted")
	_, err = os.Stat(tg.Location)
	require.NoError(t, err)

	_, err = p.Create(ctx, provider.Spec{DomainID: "d1", TaskID: "t", ExistVM: "../etc"})
	assert.Error(t, err, "a path is not a target name")
}

// TestExistingTargetOwnership: a task binds only a target of its own domain
// that no other task holds; another domain's reads as missing; a deleted
// task releases what it bound and removes what it created.
func TestExistingTargetOwnership(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	theirs, err := p.Create(ctx, provider.Spec{DomainID: "d1", TaskID: "task-a", Type: "MIGRATE_BLOCK", Disks: []provider.Disk{{Size: 1 << 20}}})
	require.NoError(t, err)
	manifest, err := os.ReadFile(filepath.Join(theirs.Location, "target.json"))
	require.NoError(t, err)

	// Another domain: the created target of a task, an assigned free one,
	// and a name that does not exist answer alike.
	require.NoError(t, p.Assign("free-d1", "d1"))
	for _, vm := range []string{"task-a", "free-d1", "missing"} {
		assert.ErrorIs(t, p.CheckBind(ctx, "d2", vm, ""), provider.ErrNotFound, vm)
		_, err := p.Create(ctx, provider.Spec{DomainID: "d2", TaskID: "task-b", ExistVM: vm, Disks: []provider.Disk{{Size: 1 << 10}}})
		assert.ErrorIs(t, err, provider.ErrNotFound, vm)
	}
	after, err := os.ReadFile(filepath.Join(theirs.Location, "target.json"))
	require.NoError(t, err)
	assert.Equal(t, manifest, after, "the refused bind wrote nothing into the other domain's target")
	// The same domain: a target another task holds is in use.
	assert.ErrorIs(t, p.CheckBind(ctx, "d1", "task-a", ""), provider.ErrInUse)
	_, err = p.Create(ctx, provider.Spec{DomainID: "d1", TaskID: "task-c", ExistVM: "task-a"})
	assert.ErrorIs(t, err, provider.ErrInUse)

	// Names that escape are refused before anything is joined to the root.
	for _, vm := range []string{".", "..", "../targets", "/etc", "task-a/root", `a\b`, "a\x00b", ".hidden", "", strings.Repeat("x", 129)} {
		assert.ErrorIs(t, p.CheckBind(ctx, "d1", vm, ""), provider.ErrNotFound, vm)
		if vm != "" { // "" asks for a new target
			_, err := p.Create(ctx, provider.Spec{DomainID: "d1", TaskID: "task-c", ExistVM: vm})
			assert.ErrorIs(t, err, provider.ErrNotFound, vm)
		}
	}
	_, err = os.Stat(filepath.Join(p.Root, "target.json"))
	assert.True(t, os.IsNotExist(err), "the root never becomes a target")

	// A receiver serves only the task holding the target.
	for _, task := range []provider.ReceiverTask{{TaskID: "task-b", DomainID: "d2"}, {TaskID: "task-c", DomainID: "d1"}} {
		_, err := p.Receiver(ctx, theirs, task)
		assert.Error(t, err, task.TaskID)
	}

	// Bound by task-c, then released when task-c is deleted: free again for
	// the domain, and kept.
	require.NoError(t, p.CheckBind(ctx, "d1", "free-d1", ""))
	bound, err := p.Create(ctx, provider.Spec{DomainID: "d1", TaskID: "task-c", ExistVM: "free-d1"})
	require.NoError(t, err)
	assert.ErrorIs(t, p.CheckBind(ctx, "d1", "free-d1", "task-d"), provider.ErrInUse)
	require.NoError(t, p.CheckBind(ctx, "d1", "free-d1", "task-c"), "the holder itself")
	require.NoError(t, p.Snapshot(ctx, bound, "sync-1"))
	require.DirExists(t, filepath.Join(SnapshotsDir(bound.Location), "sync-1"))
	require.NoError(t, p.Release(ctx, bound, "task-c"))
	assert.NoDirExists(t, SnapshotsDir(bound.Location), "the task's snapshots go with it")
	require.NoError(t, p.CheckBind(ctx, "d1", "free-d1", "task-d"))
	assert.ErrorIs(t, p.CheckBind(ctx, "d2", "free-d1", ""), provider.ErrNotFound, "still d1's")

	// A created target goes with its task: nothing is left to claim.
	require.NoError(t, p.Delete(ctx, theirs))
	for _, d := range []string{"d1", "d2"} {
		assert.ErrorIs(t, p.CheckBind(ctx, d, "task-a", ""), provider.ErrNotFound, d)
	}
	assert.Error(t, p.Assign("free-d1", "d2"), "an owned folder is not handed to another domain")
}

func TestCloneCopiesDataSparse(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	// 40 GiB holding 64 KiB: the clone reads only the data extents.
	spec := provider.Spec{DomainID: "d1", TaskID: "src", Type: "MIGRATE_BLOCK", Disks: []provider.Disk{{Size: 40 << 30}}}
	tg, err := p.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, p.Format(ctx, tg, spec))
	f, err := os.OpenFile(tg.Disks[0], os.O_RDWR, 0)
	require.NoError(t, err)
	payload := bytes.Repeat([]byte("smsflow!"), 4096)
	for _, off := range []int64{0, 32 << 20, 39 << 30} {
		_, err = f.WriteAt(payload, off)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())

	c, err := p.Clone(ctx, tg, "test1")
	require.NoError(t, err)
	assert.True(t, c.Created)
	out, err := os.Open(c.Disks[0])
	require.NoError(t, err)
	defer out.Close()
	st, err := out.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(40<<30), st.Size())
	for _, off := range []int64{0, 32 << 20, 39 << 30} {
		got := make([]byte, len(payload))
		_, err := out.ReadAt(got, off)
		require.NoError(t, err)
		assert.Equal(t, payload, got, "data at %d", off)
	}
	assert.Less(t, allocated(t, c.Disks[0]), int64(4<<20), "holes stay holes")
	require.NoError(t, p.Start(ctx, c), "a clone is a bootable target of its own")
	again, err := p.Clone(ctx, tg, "test1")
	require.NoError(t, err)
	assert.Equal(t, c, again, "a retried clone finds the finished one")
	_, err = os.Stat(c.Location + ".partial")
	assert.True(t, os.IsNotExist(err), "no partial folder is left")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = p.Clone(canceled, tg, "test2")
	assert.True(t, errors.Is(err, context.Canceled))
}

// TestCloneFolderOfAnotherDomain: a folder already at a clone's name is
// returned as the finished clone only if it belongs to the target's domain;
// another domain's (or nobody's) is refused and left as it is. It used to
// be handed over without a look at its owner.
func TestCloneFolderOfAnotherDomain(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	spec := provider.Spec{DomainID: "d1", TaskID: "src", Type: "MIGRATE_BLOCK", Disks: []provider.Disk{{Size: 1 << 20}}}
	tg, err := p.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, p.Format(ctx, tg, spec))
	for _, tc := range []struct {
		name, owner string
		ok          bool
	}{
		{"theirs", `{"domain_id":"d2"}`, false},
		{"nobody", ``, false},
		{"ours", `{"domain_id":"d1"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(p.Root, filepath.Base(tg.Location)+"-"+tc.name)
			require.NoError(t, os.MkdirAll(dst, 0o700))
			if tc.owner != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dst, ownerFile), []byte(tc.owner), 0o600))
			}
			_, err := p.Clone(ctx, tg, tc.name)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			assert.Error(t, err)
			o, _, rerr := readOwner(dst)
			require.NoError(t, rerr)
			assert.NotEqual(t, "d1", o.DomainID, "the folder is left as it was")
		})
	}
}

func TestDeleteStaysInsideRoot(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	outside := t.TempDir()
	for _, loc := range []string{outside, p.Root, filepath.Join(p.Root, "..")} {
		assert.Error(t, p.Delete(ctx, provider.Target{Location: loc}), loc)
	}
	_, err := os.Stat(outside)
	require.NoError(t, err)

	tg, err := p.Create(ctx, provider.Spec{DomainID: "d1", TaskID: "gone"})
	require.NoError(t, err)
	require.NoError(t, p.Delete(ctx, tg))
	_, err = os.Stat(tg.Location)
	assert.True(t, os.IsNotExist(err))
	require.NoError(t, p.Delete(ctx, provider.Target{}), "no target, nothing to do")
}

func TestStartFailsWithoutDisks(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	spec := provider.Spec{DomainID: "d1", TaskID: "t", Type: "MIGRATE_BLOCK", Disks: []provider.Disk{{Size: 1 << 20}}}
	tg, err := p.Create(ctx, spec)
	require.NoError(t, err)
	assert.Error(t, p.Start(ctx, tg), "an image never laid out cannot boot")
	require.NoError(t, p.Format(ctx, tg, spec))
	require.NoError(t, p.Start(ctx, tg))
}

// A relative targets dir still gives absolute locations: operators and
// tools read them from other working directories.
func TestNewMakesRootAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	p, err := New("data/targets")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(p.Root) || filepath.Base(p.Root) != "targets" {
		t.Fatalf("root %q is not the absolute targets dir", p.Root)
	}
	if _, err := os.Stat(p.Root); err != nil {
		t.Fatalf("root not created: %v", err)
	}
}

func TestFreeBytes(t *testing.T) {
	p, err := New(t.TempDir())
	require.NoError(t, err)
	free, err := p.FreeBytes(context.Background())
	require.NoError(t, err)
	assert.Positive(t, free)
	p.Root = filepath.Join(p.Root, "missing")
	_, err = p.FreeBytes(context.Background())
	assert.Error(t, err)
}

// writeManifest replaces a target's recorded spec.
func writeManifest(t *testing.T, loc string, spec provider.Spec) {
	t.Helper()
	b, err := json.Marshal(manifest{Spec: spec})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(loc, "target.json"), b, 0o600))
}
