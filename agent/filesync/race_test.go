//go:build linux

package filesync

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/agent/transport"
)

// childEnv marks the test binary re-run without privileges.
const childEnv = "SMSFLOW_FILESYNC_UNPRIVILEGED"

// privileges runs body as the current user and, when that is root, again
// in a child process of this test binary running as nobody: a receiver
// that is not root meets EACCES where root does not, and took another
// path there.
func privileges(t *testing.T, body func(t *testing.T)) {
	t.Run("as-is", func(t *testing.T) {
		if os.Getenv(childEnv) != "" {
			t.Skip("the child runs the non-root variant only")
		}
		body(t)
	})
	t.Run("non-root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			if os.Getenv(childEnv) == "" {
				t.Skip("not root: the as-is variant is the non-root one")
			}
			body(t)
			return
		}
		runUnprivileged(t)
	})
}

// runUnprivileged runs the current test in a copy of the test binary as
// nobody (65534), in directories that user can write.
func runUnprivileged(t *testing.T) {
	dir, err := os.MkdirTemp("", "filesync-unpriv-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o1777))
	bin := filepath.Join(dir, "filesync.test")
	in, err := os.Open(os.Args[0])
	require.NoError(t, err)
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	in.Close()
	require.NoError(t, err)
	require.NoError(t, out.Close())

	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + p + "$"
	}
	cmd := exec.Command(bin, "-test.run", strings.Join(parts, "/"), "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv+"=1", "TMPDIR="+dir, "GOCOVERDIR=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	got, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(got), "permission denied") && len(got) < 200 {
		t.Skipf("cannot run as nobody here: %v %s", err, got)
	}
	require.NoError(t, err, "the unprivileged run failed:\n%s", got)
	require.Contains(t, string(got), "--- PASS: "+t.Name(), "the child ran the test:\n%s", got)
	t.Logf("as nobody:\n%s", got)
}

// Finding 1: a pass fixing modes (targets 0000, listed 0666) while a
// racing pass swaps each name for a symlink to a file outside the root at
// the worst moment: after the receiver looked the name up, before it
// changes the mode (raceHook puts the swap there; a free-running swapper
// rarely hits that microsecond on two busy cores). The outside file's mode
// never changes: the old EACCES fallback, Fchmodat(dirfd, name, mode, 0),
// followed the symlink (0600 became 0666; as root any host file).
func TestRacingSymlinkSwapNeverChmodsOutside(t *testing.T) {
	privileges(t, func(t *testing.T) {
		base := t.TempDir()
		src, dst, scratch := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "scratch")
		for _, d := range []string{src, dst, scratch} {
			require.NoError(t, os.Mkdir(d, 0o755))
		}
		secret := filepath.Join(base, "outside-secret")
		writeFile(t, secret, []byte("secret"), 0o600)
		const n = 8
		const mtime = int64(1_600_000_000_123_456_789)
		content := []byte("0123456789")
		name := func(i int) string { return fmt.Sprintf("f%d", i) }
		for i := range n {
			writeFile(t, filepath.Join(src, name(i)), content, 0o666)
			setMtime(t, filepath.Join(src, name(i)), mtime)
			writeFile(t, filepath.Join(dst, name(i)), content, 0)
			setMtime(t, filepath.Join(dst, name(i)), mtime)
			require.NoError(t, os.Symlink(secret, filepath.Join(scratch, name(i))))
		}
		var swaps []string
		raceHook = func(dirfd int, name string) {
			// The other pass: the name and a symlink out trade places.
			if unix.Renameat2(dirfd, name, unix.AT_FDCWD, filepath.Join(scratch, name), unix.RENAME_EXCHANGE) == nil {
				swaps = append(swaps, name)
			}
		}
		t.Cleanup(func() { raceHook = nil })
		srv := receiverAt(t, dst)
		c := srv.dial(t, transport.KindFile)
		_, _ = Send(context.Background(), c, SendOptions{Root: src})
		c.Close()
		rerr := srv.result(t)
		t.Logf("swapped %d names; the pass: %v", len(swaps), rerr)
		require.NotEmpty(t, swaps, "the receiver fixed no mode")
		fi, err := os.Lstat(secret)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the file outside the root was chmodded")
	})
}

// Finding 2: verifying while a directory of the target is swapped, again
// and again, with a symlink to a directory outside the root never lists
// the outside names (filepath.WalkDir followed the symlink it met after
// reading the directory's type).
func TestVerifyRacingSymlinkSwapListsNothingOutside(t *testing.T) {
	privileges(t, func(t *testing.T) {
		base := t.TempDir()
		src, dst, outside := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "outside")
		for i := range 8 {
			writeFile(t, filepath.Join(src, "d", fmt.Sprintf("a%d", i)), []byte("same"), 0o644)
			writeFile(t, filepath.Join(dst, "d", fmt.Sprintf("a%d", i)), []byte("same"), 0o644)
		}
		for i := range 8 {
			writeFile(t, filepath.Join(outside, fmt.Sprintf("HOST-NAME-%d", i)), []byte("host"), 0o600)
		}
		link := filepath.Join(base, "link")
		require.NoError(t, os.Symlink(outside, link))
		srv := receiverAt(t, dst)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// dst/d and the symlink trade places, atomically.
				_ = unix.Renameat2(unix.AT_FDCWD, filepath.Join(dst, "d"), unix.AT_FDCWD, link, unix.RENAME_EXCHANGE)
			}
		})
		runs := 0
		var leaked []string
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); runs++ {
			res := srv.verify(t, src, SendOptions{})
			for _, p := range res.DifferentFiles {
				if strings.Contains(p, "HOST-NAME") {
					leaked = append(leaked, p)
				}
			}
		}
		close(stop)
		wg.Wait()
		t.Logf("%d verifications against the swapper", runs)
		assert.Empty(t, leaked, "verify listed names from outside the root")
	})
}

// Verify never opens a FIFO or a device node where the source has a file:
// the type is read first (inotify would see an open).
func TestVerifyOpensNoSpecialFile(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "fifo"), []byte("x"), 0o644)
	writeFile(t, filepath.Join(src, "dev"), []byte("x"), 0o644)
	require.NoError(t, unix.Mkfifo(filepath.Join(dst, "fifo"), 0o644))
	watched := []string{filepath.Join(dst, "fifo")}
	if isRoot() {
		// /dev/null's numbers: harmless even if it were opened.
		require.NoError(t, unix.Mknod(filepath.Join(dst, "dev"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
		watched = append(watched, filepath.Join(dst, "dev"))
	}
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	require.NoError(t, err)
	defer unix.Close(ifd)
	for _, p := range watched {
		_, err := unix.InotifyAddWatch(ifd, p, unix.IN_OPEN)
		require.NoError(t, err)
	}
	srv := receiverAt(t, dst)
	res := srv.verify(t, src, SendOptions{})
	assert.EqualValues(t, len(watched), res.Different)
	buf := make([]byte, 4096)
	n, err := unix.Read(ifd, buf)
	assert.Equal(t, unix.EAGAIN, err, "a special file was opened (%d bytes of inotify events)", n)
}

// Finding 3: a FIFO swapped in for a file being patched (after its old
// copy was hashed, before the delta arrives) fails the pass at once; the
// receiver hung in openat, without O_NONBLOCK, for good.
func TestFIFOSwappedForPatchedFile(t *testing.T) {
	base := t.TempDir()
	dst := filepath.Join(base, "dst")
	size := int64(2 * deltaBlockSize)
	writeFile(t, filepath.Join(dst, "f"), make([]byte, size), 0o644)
	srv := receiverAt(t, dst)
	c := srv.dial(t, transport.KindFile)
	defer c.Close()
	for _, f := range []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("f", size)), endFrame(2)} {
		require.NoError(t, c.Send(f.typ, f.p))
	}
	require.NoError(t, c.Flush())
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	sawDelta := false
	for {
		typ, _, err := c.Recv()
		require.NoError(t, err)
		sawDelta = sawDelta || typ == tDelta
		if typ == tReqEnd {
			break
		}
	}
	require.True(t, sawDelta, "the old copy was hashed for a delta")
	fifo := filepath.Join(base, "fifo")
	require.NoError(t, unix.Mkfifo(fifo, 0o644))
	require.NoError(t, os.Rename(fifo, filepath.Join(dst, "f")))

	f := fileFrame(1, uint64(size), modeDelta)
	require.NoError(t, c.Send(f.typ, f.p))
	require.NoError(t, c.Flush())
	_, _, err := c.Recv()
	var re *transport.RemoteError
	require.ErrorAs(t, err, &re, "the receiver hangs on the FIFO")
	assert.Contains(t, re.Msg, "changed on the target")
	rerr := srv.result(t)
	require.Error(t, rerr)
	assert.Empty(t, tempNames(t, dst), "the temporary file is removed")
}

func receiverWith(tb testing.TB, dst string, o ReceiveOptions) *server {
	return serve(tb, func(ctx context.Context, c *transport.Conn) error {
		return ReceiveWith(ctx, c, dst, o)
	})
}

// Finding 3: a flood of hard-link entries with long names is stopped at the
// bound on what a pass holds in memory (it took the receiver to 2.5 GiB).
func TestHardLinkFloodBounded(t *testing.T) {
	dst := t.TempDir()
	srv := receiverWith(t, dst, ReceiveOptions{MaxHeld: 1 << 20})
	src := fileEntry("src", 1)
	src.Flags = flagLinkSource
	long := strings.Repeat("x", 250)
	frames := []rawFrame{beginFrame(), entriesFrame(rootEntry, src)}
	for k := 0; k < 10; k++ {
		var es []entry
		for i := range 500 {
			es = append(es, entry{Kind: kHardlink, Path: fmt.Sprintf("%s%05d", long, k*500+i), Link: 1})
		}
		frames = append(frames, entriesFrame(es...))
	}
	answer := talk(t, srv, frames, false)
	var re *transport.RemoteError
	require.ErrorAs(t, answer, &re)
	assert.Contains(t, re.Msg, "holds more than")
	require.Error(t, srv.result(t))
}

// Finding 3: the tree is capped at the target's size; the sender hears
// "no space left on device" (the agent reports SMS.0519), whether the
// manifest lists too much or a file is sent larger than listed.
func TestTargetSizeCap(t *testing.T) {
	hello := []byte("hello\n")
	big := make([]byte, 80)
	for _, tc := range []struct {
		name   string
		frames []rawFrame
	}{
		{"listed", []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("a", 60), fileEntry("b", 60))}},
		{"sent larger than listed", []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("a", 6), fileEntry("b", 50)), endFrame(3),
			fileFrame(1, 80, 0), dataFrame(0, big), fileEndFrame(80, big)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			srv := receiverWith(t, dst, ReceiveOptions{MaxBytes: 100})
			answer := talk(t, srv, tc.frames, false)
			var re *transport.RemoteError
			require.ErrorAs(t, answer, &re)
			assert.Contains(t, re.Msg, "no space left on device")
			assert.ErrorIs(t, srv.result(t), unix.ENOSPC)
		})
	}
	// Under the cap, the pass goes through.
	dst := t.TempDir()
	srv := receiverWith(t, dst, ReceiveOptions{MaxBytes: 100})
	require.NoError(t, talk(t, srv, []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("f", 6)), endFrame(2),
		fileFrame(1, 6, 0), dataFrame(0, hello), fileEndFrame(6, hello), done}, false))
	require.NoError(t, srv.result(t))
}

// Two connections of one task racing: the second replaces the first, whose
// sender is told the receiver is stopping (the agent resumes), so two passes
// never write the same tree at once.
func TestSecondConnectionReplacesTheFirst(t *testing.T) {
	dst := t.TempDir()
	srv := receiverAt(t, dst)
	first := srv.dial(t, transport.KindFile)
	defer first.Close()
	f := beginFrame()
	require.NoError(t, first.Send(f.typ, f.p))
	require.NoError(t, first.Flush())
	second := srv.dial(t, transport.KindFile)
	defer second.Close()
	require.NoError(t, first.SetDeadline(time.Now().Add(10*time.Second)))
	_, _, err := first.Recv()
	first.Close()
	ferr := srv.result(t)
	require.Error(t, ferr, "the first pass ended")
	// The sender hears the receiver stop, or (rarely) just loses the link:
	// the agent runs the pass again either way.
	assert.True(t, transport.IsStopping(err) || isConnErr(err), "the replaced sender's error is not one it retries: %v (the receiver: %v)", err, ferr)

	// The second pass is the one that runs, to the end.
	hello := []byte("hello\n")
	for _, f := range []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("f", 6)), endFrame(2),
		fileFrame(1, 6, 0), dataFrame(0, hello), fileEndFrame(6, hello), done} {
		require.NoError(t, second.Send(f.typ, f.p))
	}
	require.NoError(t, second.Flush())
	require.NoError(t, srv.result(t))
	b, err := os.ReadFile(filepath.Join(dst, "f"))
	require.NoError(t, err)
	assert.Equal(t, hello, b)
}

// TestTargetSizeCapOnTheTree: the caps hold for the tree on the target,
// not for one pass. A pass that lists d2/ while d1/ (from an earlier pass,
// removed only when the root is closed) still fills the target fails with
// ENOSPC; so does one whose entries, with those already there, pass
// MaxEntries, and a file that would leave less than MinFree free. The
// byte count used to start at 0 each pass, and entries had no cap.
func TestTargetSizeCapOnTheTree(t *testing.T) {
	data := make([]byte, 80)
	d2 := entry{Kind: kDir, Path: "d2", Mode: 0o755}
	for _, tc := range []struct {
		name   string
		o      ReceiveOptions
		frames []rawFrame
	}{
		// d2/b's data comes before the manifest's end, while d1/ is there.
		{"bytes", ReceiveOptions{MaxBytes: 100}, []rawFrame{beginFrame(), entriesFrame(rootEntry, d2, fileEntry("d2/b", 80)),
			fileFrame(2, 80, 0), dataFrame(0, data), fileEndFrame(80, data), endFrame(3), done}},
		{"entries", ReceiveOptions{MaxEntries: 4}, []rawFrame{beginFrame(), entriesFrame(rootEntry, d2, fileEntry("d2/b", 80)), endFrame(3)}},
		{"free space", ReceiveOptions{MinFree: 1 << 62}, []rawFrame{beginFrame(), entriesFrame(rootEntry, fileEntry("b", 80)), endFrame(2),
			fileFrame(1, 80, 0), dataFrame(0, data), fileEndFrame(80, data), done}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(dst, "d1"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dst, "d1", "a"), data, 0o644))
			srv := receiverWith(t, dst, tc.o)
			answer := talk(t, srv, tc.frames, false)
			var re *transport.RemoteError
			require.ErrorAs(t, answer, &re)
			assert.Contains(t, re.Msg, "no space left on device")
			assert.ErrorIs(t, srv.result(t), unix.ENOSPC)
		})
	}
	// A pass that replaces d1/ with a d2/ that fits beside it goes through,
	// and d1/ is gone at the end.
	dst := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dst, "d1"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dst, "d1", "a"), data, 0o644))
	srv := receiverWith(t, dst, ReceiveOptions{MaxBytes: 200, MaxEntries: 5})
	require.NoError(t, talk(t, srv, []rawFrame{beginFrame(), entriesFrame(rootEntry, d2, fileEntry("d2/b", 80)), endFrame(3),
		fileFrame(2, 80, 0), dataFrame(0, data), fileEndFrame(80, data), done}, false))
	require.NoError(t, srv.result(t))
	_, err := os.Stat(filepath.Join(dst, "d1"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
