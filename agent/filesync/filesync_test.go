//go:build linux

package filesync

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/agent/procfs"
	"github.com/smsflow/smsflow/agent/transport"
)

const (
	sparseSize = 20 << 20
	bigSize    = 8 << 20
	otherUID   = 1234
	otherGID   = 5678
)

// buildTree makes the test source tree and returns how many regular files
// (hard links counted once) it holds.
func buildTree(tb testing.TB, root string, r *rand.Rand) int {
	tb.Helper()
	files := 0
	put := func(rel string, data []byte, mode os.FileMode) {
		writeFile(tb, filepath.Join(root, rel), data, mode)
		files++
	}
	// 2,000 small files over nested directories, some empty.
	for i := range 2000 {
		dir := fmt.Sprintf("d%02d/sub%d", i%25, i%3)
		if i%7 == 0 {
			dir += "/deeper/still"
		}
		var data []byte
		switch {
		case i%50 == 0:
			data = nil
		case i%2 == 0:
			data = randBytes(r, 1+r.IntN(6000))
		default:
			data = textBytes(r, 1+r.IntN(6000))
		}
		put(fmt.Sprintf("%s/f%04d.dat", dir, i), data, 0o644)
	}
	// A sparse file: 20 MiB with a few data islands (some unaligned).
	sp := filepath.Join(root, "sparse.img")
	f, err := os.Create(sp)
	require.NoError(tb, err)
	require.NoError(tb, f.Truncate(sparseSize))
	for _, off := range []int64{0, 3<<20 + 1234, 9 << 20, 15<<20 + 4095, sparseSize - 5000} {
		_, err := f.WriteAt(randBytes(r, 5000), off)
		require.NoError(tb, err)
	}
	require.NoError(tb, f.Close())
	files++
	// A big incompressible file, for the delta test.
	put("big.bin", randBytes(r, bigSize), 0o640)

	// Odd names.
	for _, n := range []string{"with space.txt", "new\nline", "ünïcødé-文件.txt", "-leading-dash", "--", "tab\tname", "back\\slash", " "} {
		put(filepath.Join("odd", n), textBytes(r, 100), 0o644)
	}
	require.NoError(tb, os.MkdirAll(filepath.Join(root, "odd", "-dir with space"), 0o755))
	put(filepath.Join("odd", "-dir with space", "x"), []byte("x"), 0o644)
	// Modes.
	put("modes/private", []byte("secret"), 0o600)
	put("modes/exec", []byte("#!/bin/sh\n"), 0o755)
	put("modes/setuid", []byte("suid"), 0o4755)
	put("modes/setgid", []byte("sgid"), 0o2750)
	put("modes/none", []byte("none"), 0)
	require.NoError(tb, os.MkdirAll(filepath.Join(root, "modes/sticky"), 0o755))
	require.NoError(tb, os.Chmod(filepath.Join(root, "modes/sticky"), 0o1777))
	require.NoError(tb, os.MkdirAll(filepath.Join(root, "modes/setgid-dir"), 0o755))
	require.NoError(tb, os.Chmod(filepath.Join(root, "modes/setgid-dir"), 0o2755))
	require.NoError(tb, os.MkdirAll(filepath.Join(root, "empty/dir"), 0o700))
	// Symlinks: relative, absolute, dangling, to a directory.
	require.NoError(tb, os.MkdirAll(filepath.Join(root, "links"), 0o755))
	require.NoError(tb, os.Symlink("../d00/sub0/f0000.dat", filepath.Join(root, "links/rel")))
	require.NoError(tb, os.Symlink("/etc/hostname", filepath.Join(root, "links/abs")))
	require.NoError(tb, os.Symlink("does/not/exist", filepath.Join(root, "links/dangling")))
	require.NoError(tb, os.Symlink("../d01", filepath.Join(root, "links/dir")))
	// Hard links: a pair across directories and a triple.
	put("hard/a", textBytes(r, 3000), 0o644)
	require.NoError(tb, os.MkdirAll(filepath.Join(root, "hard/other"), 0o755))
	require.NoError(tb, os.Link(filepath.Join(root, "hard/a"), filepath.Join(root, "hard/other/b")))
	put("hard/t1", randBytes(r, 200<<10), 0o600)
	require.NoError(tb, os.Link(filepath.Join(root, "hard/t1"), filepath.Join(root, "hard/t2")))
	require.NoError(tb, os.Link(filepath.Join(root, "hard/t1"), filepath.Join(root, "hard/other/t3")))
	// A fifo.
	require.NoError(tb, unix.Mkfifo(filepath.Join(root, "special-fifo"), 0o640))
	// Owners other than root.
	if isRoot() {
		for _, p := range []string{"modes/private", "modes/sticky", "links/abs", "hard/a", "d03", "d03/sub0/f0003.dat", "special-fifo"} {
			require.NoError(tb, os.Lchown(filepath.Join(root, p), otherUID, otherGID))
		}
		require.NoError(tb, os.Chmod(filepath.Join(root, "modes/private"), 0o600))
	}
	touchTree(tb, root, r)
	return files
}

func TestFullPassThenSync(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src, dst := t.TempDir(), t.TempDir()
	nFiles := buildTree(t, src, r)
	srv := receiverAt(t, dst)

	var progress []Progress
	var mu sync.Mutex
	st := srv.pass(t, src, SendOptions{Progress: func(p Progress) { mu.Lock(); progress = append(progress, p); mu.Unlock() }})
	requireSameTree(t, src, dst)
	assert.EqualValues(t, nFiles, st.FilesSent, "every file sent once, hard links as links")
	assert.Zero(t, st.BytesSkipped)
	assert.Zero(t, st.FilesDeleted)
	var rawNonSparse int64
	seenIno := map[uint64]bool{}
	for p, n := range snapshot(t, src) {
		if n.IsFile() && p != "sparse.img" && !seenIno[n.Ino] {
			seenIno[n.Ino] = true
			rawNonSparse += n.Size
		}
	}
	assert.Less(t, st.BytesSent, rawNonSparse, "sparse holes are not sent, text is compressed")
	assert.Greater(t, st.BytesSent, int64(bigSize))
	assert.Less(t, allocated(t, filepath.Join(dst, "sparse.img")), int64(sparseSize/10), "the target file stays sparse")
	fi, err := os.Stat(filepath.Join(dst, "sparse.img"))
	require.NoError(t, err)
	assert.EqualValues(t, sparseSize, fi.Size())
	require.NotEmpty(t, progress)
	last := progress[len(progress)-1]
	assert.Equal(t, last.FilesTotal, last.FilesDone)
	assert.Equal(t, last.BytesTotal, last.BytesDone)
	assert.EqualValues(t, nFiles, last.FilesTotal)

	// Nothing changed: nothing is sent.
	st = srv.pass(t, src, SendOptions{})
	requireSameTree(t, src, dst)
	assert.Zero(t, st.FilesSent)
	assert.Zero(t, st.BytesSent)
	assert.Zero(t, st.FilesDeleted)
	assert.Greater(t, st.BytesSkipped, int64(bigSize))

	// Change about 1% of the tree.
	big := filepath.Join(src, "big.bin")
	bf, err := os.OpenFile(big, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = bf.WriteAt([]byte("changed in the middle"), bigSize/2+77)
	require.NoError(t, err)
	require.NoError(t, bf.Close())
	appendTo := filepath.Join(src, "d04/sub1/f0004.dat")
	af, err := os.OpenFile(appendTo, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = af.Write(randBytes(r, 3000))
	require.NoError(t, err)
	require.NoError(t, af.Close())
	var sentBound int64 = 2*deltaBlockSize + 16<<10 // the big file's changed block(s), and the appended file
	deleted := []string{"d05/sub2/f0005.dat", "d06/sub0/f0006.dat", "links/dangling", "hard/t2", "odd/new\nline"}
	for _, p := range deleted {
		require.NoError(t, os.Remove(filepath.Join(src, p)))
	}
	require.NoError(t, os.RemoveAll(filepath.Join(src, "d07/sub1/deeper")))
	for i := range 5 {
		data := randBytes(r, 2000)
		writeFile(t, filepath.Join(src, fmt.Sprintf("added/n%d", i)), data, 0o644)
		sentBound += int64(len(data))
	}
	// Rename a directory: its files are new to the target.
	require.NoError(t, os.Rename(filepath.Join(src, "d08"), filepath.Join(src, "d08-renamed")))
	require.NoError(t, filepath.Walk(filepath.Join(src, "d08-renamed"), func(p string, fi os.FileInfo, err error) error {
		if fi.Mode().IsRegular() {
			sentBound += fi.Size()
		}
		return err
	}))
	// Metadata only.
	require.NoError(t, os.Chmod(filepath.Join(src, "modes/exec"), 0o700))
	touchTree(t, filepath.Join(src, "added"), r)

	// What the target must lose, counted before the pass: every entry of
	// the removed and renamed trees, and the removed names.
	wantDeleted := len(deleted) + len(snapshotNames(t, dst, "d07/sub1/deeper")) + len(snapshotNames(t, dst, "d08"))
	require.Greater(t, wantDeleted, len(deleted)+2, "the trees to remove hold entries")

	st = srv.pass(t, src, SendOptions{})
	requireSameTree(t, src, dst)
	assert.LessOrEqual(t, st.BytesSent, sentBound)
	assert.Greater(t, st.BytesSkipped, int64(bigSize-2*deltaBlockSize), "the big file's unchanged blocks are not sent")
	assert.Equal(t, int64(wantDeleted), st.FilesDeleted, "every entry removed is counted")
	for _, p := range append(deleted, "d08", "d07/sub1/deeper") {
		_, err := os.Lstat(filepath.Join(dst, p))
		assert.True(t, os.IsNotExist(err), "%q is gone on the target", p)
	}
	assert.Empty(t, tempNames(t, dst))

	// Only the big file changes, in two places: only those blocks travel.
	bf, err = os.OpenFile(big, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = bf.WriteAt(randBytes(r, 100), 1<<20+10)
	require.NoError(t, err)
	_, err = bf.WriteAt(randBytes(r, 10), 6<<20)
	require.NoError(t, err)
	require.NoError(t, bf.Close())
	st = srv.pass(t, src, SendOptions{})
	requireSameTree(t, src, dst)
	assert.EqualValues(t, 1, st.FilesSent)
	assert.LessOrEqual(t, st.BytesSent, int64(2*deltaBlockSize), "two changed blocks")
	assert.Greater(t, st.BytesSent, int64(100))
	assert.GreaterOrEqual(t, st.BytesSkipped, int64(bigSize-2*deltaBlockSize))
}

// snapshotNames lists a path and everything under it (nothing once it is
// gone).
func snapshotNames(t *testing.T, root, rel string) []string {
	var out []string
	_ = filepath.Walk(filepath.Join(root, rel), func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestEmptyAndTinyTrees(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, root string)
	}{
		{"empty root", func(t *testing.T, root string) {}},
		{"one empty file", func(t *testing.T, root string) { writeFile(t, filepath.Join(root, "e"), nil, 0o644) }},
		{"file becomes dir", func(t *testing.T, root string) { writeFile(t, filepath.Join(root, "x/y"), []byte("y"), 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			tc.build(t, src)
			// The target has junk of every type where the source has other things.
			writeFile(t, filepath.Join(dst, "x"), []byte("a file where a dir goes"), 0o644)
			require.NoError(t, os.MkdirAll(filepath.Join(dst, "e/inner"), 0o755))
			require.NoError(t, os.Symlink("/etc", filepath.Join(dst, "junk-link")))
			srv := receiverAt(t, dst)
			srv.pass(t, src, SendOptions{})
			requireSameTree(t, src, dst)
		})
	}
}

func TestExcludes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "keep/a"), randBytes(r, 100), 0o644)
	writeFile(t, filepath.Join(src, "skip/b"), randBytes(r, 100), 0o644)
	writeFile(t, filepath.Join(src, "keep/skipfile"), randBytes(r, 100), 0o644)
	// The target's own copy of an excluded path is left alone.
	writeFile(t, filepath.Join(dst, "skip/target-only"), []byte("mine"), 0o644)
	srv := receiverAt(t, dst)
	srv.pass(t, src, SendOptions{Excludes: []string{"/skip", "keep/skipfile"}})
	_, err := os.Stat(filepath.Join(dst, "keep/a"))
	assert.NoError(t, err)
	_, err = os.Stat(filepath.Join(dst, "keep/skipfile"))
	assert.True(t, os.IsNotExist(err))
	_, err = os.Stat(filepath.Join(dst, "skip/b"))
	assert.True(t, os.IsNotExist(err))
	b, err := os.ReadFile(filepath.Join(dst, "skip/target-only"))
	require.NoError(t, err)
	assert.Equal(t, "mine", string(b))

	_, err = Send(context.Background(), nil, SendOptions{Root: src, Excludes: []string{"/"}})
	assert.Error(t, err, "excluding the root is refused")
}

func TestMountinfo(t *testing.T) {
	data := `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
28 27 0:25 / /mnt/with\040space ro - tmpfs none ro
29 27 8:1 / /boot rw shared:5 - ext4 /dev/sda1 rw
30 27 0:40 / /run/user/1000/gvfs rw - fuse.gvfsd-fuse gvfsd-fuse rw
31 27 7:0 / /snap/core/1 ro - squashfs /dev/loop0 ro
garbage line`
	assert.Equal(t, []string{"proc", "mnt/with space", "run/user/1000/gvfs", "snap/core/1"}, virtualMounts(procfs.ParseMountinfo(data)))
}

// TestInterruptedPass kills passes midway in several ways; the next pass
// completes the copy and leaves no temporary file.
func TestInterruptedPass(t *testing.T) {
	for _, how := range []string{"close conn", "cancel sender", "cancel receiver"} {
		t.Run(how, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			src, dst := t.TempDir(), t.TempDir()
			for i := range 12 {
				writeFile(t, filepath.Join(src, fmt.Sprintf("dir%d/file%02d", i%3, i)), randBytes(r, 2<<20), 0o644)
			}
			touchTree(t, src, r)
			// Leftover of an earlier interrupted pass.
			writeFile(t, filepath.Join(dst, "dir1", tmpPrefix+"deadbeef~7"), []byte("half"), 0o600)

			rctx, rcancel := context.WithCancel(context.Background())
			defer rcancel()
			srv := serve(t, func(ctx context.Context, c *transport.Conn) error {
				if how == "cancel receiver" {
					ctx = rctx
				}
				return Receive(ctx, c, dst)
			})
			c := srv.dial(t, transport.KindFile)
			sctx, scancel := context.WithCancel(context.Background())
			defer scancel()
			var fired atomic.Bool
			stopWatch := make(chan struct{})
			go func() {
				for {
					select {
					case <-stopWatch:
						return
					case <-time.After(time.Millisecond):
					}
					if c.BytesSent() > 9<<20 && fired.CompareAndSwap(false, true) {
						switch how {
						case "close conn":
							c.Close()
						case "cancel sender":
							scancel()
						case "cancel receiver":
							rcancel()
						}
						return
					}
				}
			}()
			t0 := time.Now()
			_, err := Send(sctx, c, SendOptions{Root: src})
			t.Logf("send returned after %v: %v", time.Since(t0), err)
			close(stopWatch)
			c.Close()
			require.Error(t, err)
			require.True(t, fired.Load())
			rerr := srv.result(t)
			t.Logf("receiver returned after %v: %v", time.Since(t0), rerr)
			require.Error(t, rerr)

			// Whatever is under a real name is complete.
			srcSnap := snapshot(t, src)
			for p, n := range snapshot(t, dst) {
				if n.IsFile() && filepath.Base(p) != tmpPrefix+"deadbeef~7" {
					assert.Equal(t, srcSnap[p].Sum, n.Sum, "%q is complete or absent", p)
				}
			}
			for _, p := range tempNames(t, dst) {
				assert.Equal(t, tmpPrefix+"deadbeef~7", filepath.Base(p), "the interrupted pass removed its own temporary files")
			}
			// A receiver killed outright leaves its temporary file behind.
			writeFile(t, filepath.Join(dst, "dir2", tmpPrefix+"0badf00d~1"), []byte("half"), 0o600)

			srv2 := receiverAt(t, dst)
			srv2.pass(t, src, SendOptions{})
			requireSameTree(t, src, dst)
			assert.Empty(t, tempNames(t, dst))
		})
	}
}

// TestTargetFull: a full disk on the target fails the pass on both sides
// with the reason.
func TestTargetFull(t *testing.T) {
	if !isRoot() {
		t.Skip("needs root to mount a small tmpfs")
	}
	dst := t.TempDir()
	if err := unix.Mount("tmpfs", dst, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	defer unix.Unmount(dst, unix.MNT_DETACH)
	r := rand.New(rand.NewPCG(7, 8))
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "small"), []byte("fits"), 0o644)
	writeFile(t, filepath.Join(src, "z-large"), randBytes(r, 3<<20), 0o644)
	srv := receiverAt(t, dst)
	c := srv.dial(t, transport.KindFile)
	_, err := Send(context.Background(), c, SendOptions{Root: src})
	c.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no space left on device")
	var re *transport.RemoteError
	assert.ErrorAs(t, err, &re)
	rerr := srv.result(t)
	require.Error(t, rerr)
	assert.ErrorIs(t, rerr, unix.ENOSPC)
	_, err = os.Stat(filepath.Join(dst, "z-large"))
	assert.True(t, os.IsNotExist(err), "no truncated file under the real name")
	assert.Empty(t, tempNames(t, dst))
}

// TestDeltaShapes changes one file of 2 MiB in various ways between two
// passes: the result is identical and only what changed travels.
func TestDeltaShapes(t *testing.T) {
	const size = 2 << 20
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, f *os.File, r *rand.Rand)
		maxSent int64
	}{
		{"touched only", func(t *testing.T, f *os.File, r *rand.Rand) {}, 0},
		{"append", func(t *testing.T, f *os.File, r *rand.Rand) {
			_, err := f.WriteAt(randBytes(r, 300<<10), size)
			require.NoError(t, err)
		}, 300<<10 + deltaBlockSize},
		{"truncate", func(t *testing.T, f *os.File, r *rand.Rand) {
			require.NoError(t, f.Truncate(1<<20+5))
		}, deltaBlockSize},
		{"punch a hole", func(t *testing.T, f *os.File, r *rand.Rand) {
			require.NoError(t, unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 512<<10, 512<<10))
		}, 0},
		{"grow sparse", func(t *testing.T, f *os.File, r *rand.Rand) {
			require.NoError(t, f.Truncate(64<<20))
			_, err := f.WriteAt([]byte("tail"), 64<<20-4)
			require.NoError(t, err)
		}, deltaBlockSize},
		{"insert at the start", func(t *testing.T, f *os.File, r *rand.Rand) {
			b := make([]byte, size)
			_, err := f.ReadAt(b, 0)
			require.NoError(t, err)
			_, err = f.WriteAt(append([]byte("0123456789"), b...), 0)
			require.NoError(t, err)
		}, size + 20}, // blocks are compared at fixed offsets: all of it
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, 12))
			src, dst := t.TempDir(), t.TempDir()
			p := filepath.Join(src, "file")
			writeFile(t, p, randBytes(r, size), 0o644)
			srv := receiverAt(t, dst)
			srv.pass(t, src, SendOptions{})
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			require.NoError(t, err)
			tc.change(t, f, r)
			require.NoError(t, f.Close())
			setMtime(t, p, time.Now().UnixNano())
			st := srv.pass(t, src, SendOptions{})
			requireSameTree(t, src, dst)
			assert.LessOrEqual(t, st.BytesSent, tc.maxSent)
			assert.EqualValues(t, 1, st.FilesSent)
			fi, err := os.Stat(p)
			require.NoError(t, err)
			assert.LessOrEqual(t, allocated(t, filepath.Join(dst, "file")), allocated(t, p)+deltaBlockSize,
				"holes of the source stay holes (%d bytes)", fi.Size())
		})
	}
}

// TestTypeChanges: entries change type between passes.
func TestTypeChanges(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "dir-to-file/inner/x"), []byte("x"), 0o644)
	writeFile(t, filepath.Join(src, "file-to-dir"), []byte("f"), 0o644)
	writeFile(t, filepath.Join(src, "file-to-link"), []byte("f"), 0o644)
	require.NoError(t, os.Symlink("somewhere", filepath.Join(src, "link-to-dir")))
	require.NoError(t, os.Symlink("a", filepath.Join(src, "link-retarget")))
	require.NoError(t, unix.Mkfifo(filepath.Join(src, "fifo-to-file"), 0o600))
	writeFile(t, filepath.Join(src, "hard1"), []byte("h"), 0o644)
	writeFile(t, filepath.Join(src, "hard2"), []byte("other"), 0o644)
	srv := receiverAt(t, dst)
	srv.pass(t, src, SendOptions{})
	requireSameTree(t, src, dst)

	require.NoError(t, os.RemoveAll(filepath.Join(src, "dir-to-file")))
	writeFile(t, filepath.Join(src, "dir-to-file"), []byte("now a file"), 0o644)
	require.NoError(t, os.Remove(filepath.Join(src, "file-to-dir")))
	writeFile(t, filepath.Join(src, "file-to-dir/y"), []byte("y"), 0o644)
	require.NoError(t, os.Remove(filepath.Join(src, "file-to-link")))
	require.NoError(t, os.Symlink("/", filepath.Join(src, "file-to-link")))
	require.NoError(t, os.Remove(filepath.Join(src, "link-to-dir")))
	writeFile(t, filepath.Join(src, "link-to-dir/z"), []byte("z"), 0o644)
	require.NoError(t, os.Remove(filepath.Join(src, "link-retarget")))
	require.NoError(t, os.Symlink("b", filepath.Join(src, "link-retarget")))
	require.NoError(t, os.Remove(filepath.Join(src, "fifo-to-file")))
	writeFile(t, filepath.Join(src, "fifo-to-file"), []byte("file"), 0o644)
	// Two separate files become one inode.
	require.NoError(t, os.Remove(filepath.Join(src, "hard2")))
	require.NoError(t, os.Link(filepath.Join(src, "hard1"), filepath.Join(src, "hard2")))
	srv.pass(t, src, SendOptions{})
	requireSameTree(t, src, dst)
	assert.Empty(t, tempNames(t, dst))
}

// TestHashBasisOfAHugeSparseFile: the old copy of a file over 1 TiB (so 2 MiB
// delta blocks) whose last, short block is a hole is hashed whole: hole
// blocks hash as zeros of their length, data blocks as read.
func TestHashBasisOfAHugeSparseFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "huge"))
	require.NoError(t, err)
	defer f.Close()
	const size = int64(1<<40) + 3<<19 // 1 TiB and 1.5 MiB
	require.NoError(t, f.Truncate(size))
	_, err = f.WriteAt([]byte("data"), 0)
	require.NoError(t, err)
	bs := blockSizeFor(size)
	require.Equal(t, int64(2<<20), bs)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	r := &receiver{ctx: ctx, reqCh: make(chan request, 16)}
	var hashes []uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for rq := range r.reqCh {
			for p := rq.p[32:]; len(p) >= 8; p = p[8:] {
				hashes = append(hashes, binary.BigEndian.Uint64(p))
			}
		}
	}()
	var buf []byte
	require.NoError(t, r.hashBasis(hashJob{index: 7, f: f, size: size}, &buf))
	close(r.reqCh)
	<-done

	require.Len(t, hashes, int((size+bs-1)/bs))
	first := make([]byte, bs)
	copy(first, "data")
	assert.Equal(t, xxhash.Sum64(first), hashes[0], "a data block is read")
	assert.Equal(t, xxhash.Sum64(make([]byte, bs)), hashes[1], "a hole is zeros")
	assert.Equal(t, xxhash.Sum64(make([]byte, 3<<19)), hashes[len(hashes)-1], "the short last hole is zeros of its length")
}
