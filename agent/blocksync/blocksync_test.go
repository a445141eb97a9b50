package blocksync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/agent/internal/testcert"
	"github.com/smsflow/smsflow/agent/throttle"
	"github.com/smsflow/smsflow/agent/transport"
)

const mib = 1 << 20

// link is a receiver on loopback writing into targets; dial gives the
// agent's side.
type link struct {
	t       testing.TB
	creds   transport.Creds
	addr    string
	targets []string
	errs    chan error
}

func newLink(t testing.TB, targets []string) *link {
	cert, key := testcert.New("task")
	l := &link{t: t, creds: transport.Creds{CertPEM: cert, KeyPEM: key, Passphrase: "pp"}, targets: targets, errs: make(chan error, 16)}
	ln, err := transport.Listen("127.0.0.1:0", l.creds)
	require.NoError(t, err)
	l.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		_ = ln.Serve(ctx, func(c *transport.Conn) {
			defer c.Close()
			// As the receivers do: the pass ends when a newer data
			// connection of the task replaces this one.
			switch c.Kind() {
			case transport.KindBlock:
				l.errs <- Receive(c.Context(), c, l.targets)
			case transport.KindVerify:
				l.errs <- ServeVerify(c.Context(), c, l.targets)
			}
		}, nil)
	}()
	return l
}

func (l *link) dial(kind transport.Kind) *transport.Conn {
	c, err := transport.Dial(context.Background(), l.addr, l.creds, kind)
	require.NoError(l.t, err)
	l.t.Cleanup(func() { c.Close() })
	return c
}

// pass runs one pass and returns its stats and the receiver's verdict.
func (l *link) pass(o Options) (Stats, error, error) {
	c := l.dial(transport.KindBlock)
	st, err := Send(context.Background(), c, o)
	c.Close()
	return st, err, <-l.errs
}

// makeSource writes an image with random, zero and compressible regions.
func makeSource(t testing.TB, path string, size int64, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	data := make([]byte, size)
	for off := int64(0); off < size; off += mib {
		end := min(off+mib, size)
		switch (off / mib) % 4 {
		case 0, 1: // random
			for i := off; i < end; i++ {
				data[i] = byte(r.Uint32())
			}
		case 2: // zeros
		case 3: // text
			copy(data[off:end], bytes.Repeat([]byte("smsflow migrates servers. "), int(end-off)/26+1))
		}
	}
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return data
}

func makeTarget(t testing.TB, path string, size int64) {
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(size))
	require.NoError(t, f.Close())
}

func requireSame(t *testing.T, want []byte, target string, targetSize int64) {
	t.Helper()
	got, err := os.ReadFile(target)
	require.NoError(t, err)
	require.Equal(t, targetSize, int64(len(got)), "the target keeps its size")
	require.True(t, bytes.Equal(want, got[:len(want)]), "target differs from source")
	require.True(t, isZero(got[len(want):]), "past the source's end the target is zeros")
}

func TestFullCopySyncAndVerify(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	const size = 32 * mib
	data := makeSource(t, src, size, 1)
	makeTarget(t, dst, 40*mib)
	l := newLink(t, []string{dst})
	disks := []Disk{{Name: "/dev/vda", Path: src, Size: size}}
	state := filepath.Join(dir, "state")

	var reports []Progress
	st, err, rerr := l.pass(Options{Disks: disks, StateDir: state, CheckpointEvery: 4 * mib,
		Progress: func(p Progress) { reports = append(reports, p) }})
	require.NoError(t, err)
	require.NoError(t, rerr)
	requireSame(t, data, dst, 40*mib)
	assert.Equal(t, int64(size/DefaultBlockSize), st.Blocks)
	assert.Equal(t, st.Blocks/4, st.Zero, "a quarter of the image is zeros")
	assert.Greater(t, st.CompressRate(), 110.0, "the text compresses")
	require.NotEmpty(t, reports)
	assert.Equal(t, int64(size), reports[len(reports)-1].BytesDone)
	fi, err := os.Stat(dst)
	require.NoError(t, err)
	assert.Less(t, fi.Sys().(*syscall.Stat_t).Blocks*512, int64(30*mib), "zero regions stay holes on the target")

	// Change 1% of the blocks (one of them to zeros) and sync.
	r := rand.New(rand.NewPCG(7, 7))
	f, err := os.OpenFile(src, os.O_RDWR, 0)
	require.NoError(t, err)
	changed := map[int64]bool{}
	for len(changed) < int(st.Blocks)/100+1 {
		b := r.Int64N(st.Blocks)
		if changed[b] || (b/4)%4 == 2 { // not in a zero region
			continue
		}
		changed[b] = true
		patch := make([]byte, 4096)
		if len(changed) > 1 {
			for i := range patch {
				patch[i] = byte(r.Uint32())
			}
			copy(data[b*DefaultBlockSize+100:], patch)
		} else {
			patch = make([]byte, DefaultBlockSize)
			copy(data[b*DefaultBlockSize:], patch)
			_, err = f.WriteAt(patch, b*DefaultBlockSize)
			require.NoError(t, err)
			continue
		}
		_, err = f.WriteAt(patch, b*DefaultBlockSize+100)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	st, err, rerr = l.pass(Options{Disks: disks, StateDir: state, Sync: true})
	require.NoError(t, err)
	require.NoError(t, rerr)
	requireSame(t, data, dst, 40*mib)
	assert.Equal(t, int64(len(changed)-1), st.Sent, "only the changed blocks travel")
	assert.Equal(t, int64(1), st.Zero, "the block that became zeros is zeroed")
	assert.Less(t, st.WireBytes, int64(size)*2/100, "incremental sync: under 2%% of the disk on the wire")

	// A full copy asked again after completion is a sync, not a recopy.
	st, err, rerr = l.pass(Options{Disks: disks, StateDir: state})
	require.NoError(t, err)
	require.NoError(t, rerr)
	assert.Zero(t, st.Sent)

	// Verification: identical, then one corrupted target block.
	vc := l.dial(transport.KindVerify)
	res, err := Verify(context.Background(), vc, disks, 0)
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.Equal(t, int64(size/DefaultBlockSize), res[0].Blocks)
	assert.Zero(t, res[0].Different)
	tf, err := os.OpenFile(dst, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = tf.WriteAt([]byte{0xFF}, 5*DefaultBlockSize+17)
	require.NoError(t, err)
	require.NoError(t, tf.Close())
	res, err = Verify(context.Background(), vc, disks, 0)
	require.NoError(t, err)
	assert.Equal(t, int64(1), res[0].Different)
	assert.Equal(t, []int64{5 * DefaultBlockSize}, res[0].Offsets)
	vc.Close()
	require.NoError(t, <-l.errs)
}

// TestSeveralDisks: disks whose sizes are multiples of the checkpoint
// spacing (most real disks, with the default 64 MiB) copy and sync one after
// the other: a checkpoint on a disk's last block must not leave an extra
// acknowledgement behind for the next disk to trip on.
func TestSeveralDisks(t *testing.T) {
	dir := t.TempDir()
	sizes := []int64{8 * mib, 4 * mib, 6 * mib}
	var disks []Disk
	var targets []string
	var want [][]byte
	for i, size := range sizes {
		src, dst := filepath.Join(dir, fmt.Sprintf("src%d.img", i)), filepath.Join(dir, fmt.Sprintf("dst%d.img", i))
		want = append(want, makeSource(t, src, size, uint64(10+i)))
		makeTarget(t, dst, size)
		disks = append(disks, Disk{Name: fmt.Sprintf("/dev/vd%c", 'a'+i), Path: src, Size: size})
		targets = append(targets, dst)
	}
	l := newLink(t, targets)
	state := filepath.Join(dir, "state")
	for _, sync := range []bool{false, true} {
		st, err, rerr := l.pass(Options{Disks: disks, StateDir: state, CheckpointEvery: 2 * mib, BlockSize: 64 << 10, Sync: sync})
		require.NoError(t, err, "sync=%v", sync)
		require.NoError(t, rerr, "sync=%v", sync)
		if sync {
			assert.Zero(t, st.Sent, "nothing changed since the copy")
		}
		for i := range disks {
			requireSame(t, want[i], targets[i], sizes[i])
		}
	}
}

func TestInterruptedCopyResumes(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	const size = 24 * mib
	data := makeSource(t, src, size, 2)
	makeTarget(t, dst, size)
	l := newLink(t, []string{dst})
	disks := []Disk{{Name: "/dev/vda", Path: src, Size: size}}
	state := filepath.Join(dir, "state")

	// A full pass with checkpoints; then a crash midway is simulated: only
	// the checkpoint at 8 MiB survives.
	_, err, rerr := l.pass(Options{Disks: disks, StateDir: state, CheckpointEvery: 2 * mib, Workers: 1, BlockSize: 64 << 10})
	require.NoError(t, err)
	require.NoError(t, rerr)
	st, lerr := loadState(state)
	require.NoError(t, lerr)
	st.Disks[0].Copied, st.Disks[0].Full = 8*mib, false
	require.NoError(t, st.save())
	// The target lost what came after the checkpoint.
	tf, err := os.OpenFile(dst, os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, tf.Truncate(8*mib))
	require.NoError(t, tf.Truncate(size))
	require.NoError(t, tf.Close())

	var stats Stats
	stats, err, rerr = l.pass(Options{Disks: disks, StateDir: state, BlockSize: 64 << 10})
	require.NoError(t, err)
	require.NoError(t, rerr)
	assert.Equal(t, int64((size-8*mib)/(64<<10)), stats.Blocks, "the copy resumed at its checkpoint")
	requireSame(t, data, dst, size)

	// A sync after resuming sends nothing: every hash is on record.
	stats, err, rerr = l.pass(Options{Disks: disks, StateDir: state, BlockSize: 64 << 10, Sync: true})
	require.NoError(t, err)
	require.NoError(t, rerr)
	assert.Zero(t, stats.Sent)
}

func TestCanceledPassKeepsCheckpoint(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	const size = 16 * mib
	data := makeSource(t, src, size, 3)
	makeTarget(t, dst, size)
	l := newLink(t, []string{dst})
	disks := []Disk{{Name: "/dev/vda", Path: src, Size: size}}
	state := filepath.Join(dir, "state")

	c := l.dial(transport.KindBlock)
	ctx, cancel := context.WithCancel(context.Background())
	// Paced so the pass outlives the first progress report (once a second),
	// which cancels it: unpaced, 16 MiB is copied before any report.
	c.SetLimiter(ctx, throttle.New(40))
	_, err := Send(ctx, c, Options{Disks: disks, StateDir: state, CheckpointEvery: mib, BlockSize: 64 << 10,
		Progress: func(p Progress) {
			if p.BytesDone >= 4*mib {
				cancel()
			}
		}})
	cancel()
	c.Close()
	<-l.errs
	require.Error(t, err, "the pass was canceled midway")
	st, lerr := loadState(state)
	require.NoError(t, lerr)
	require.Greater(t, st.Disks[0].Copied, int64(0), "checkpoints were recorded")
	require.Less(t, st.Disks[0].Copied, int64(size))
	stats, err, rerr := l.pass(Options{Disks: disks, StateDir: state, BlockSize: 64 << 10})
	require.NoError(t, err)
	require.NoError(t, rerr)
	assert.Less(t, stats.Blocks, int64(size/(64<<10)), "not from zero")
	requireSame(t, data, dst, size)
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	makeSource(t, src, 8*mib, 4)

	t.Run("target too small", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "dst.img")
		makeTarget(t, dst, 4*mib)
		l := newLink(t, []string{dst})
		_, err, rerr := l.pass(Options{Disks: []Disk{{Name: "/dev/vda", Path: src, Size: 8 * mib}}})
		assert.ErrorIs(t, rerr, ErrTargetTooSmall)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "smaller than the source")
		fi, _ := os.Stat(dst)
		assert.Equal(t, int64(4*mib), fi.Size(), "never grown past its size")
	})
	t.Run("source shrank", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "dst.img")
		makeTarget(t, dst, 16*mib)
		l := newLink(t, []string{dst})
		_, err, _ := l.pass(Options{Disks: []Disk{{Name: "/dev/vda", Path: src, Size: 12 * mib}}})
		assert.ErrorIs(t, err, ErrDiskChanged)
	})
	t.Run("source vanished", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "dst.img")
		makeTarget(t, dst, 16*mib)
		l := newLink(t, []string{dst})
		_, err, _ := l.pass(Options{Disks: []Disk{{Name: "/dev/vdb", Path: filepath.Join(dir, "gone"), Size: mib}}})
		assert.ErrorIs(t, err, ErrDiskChanged)
	})
	t.Run("more disks than the target", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "dst.img")
		makeTarget(t, dst, 16*mib)
		l := newLink(t, []string{dst})
		_, _, rerr := l.pass(Options{Disks: []Disk{{Path: src, Size: mib}, {Path: src, Size: mib}}})
		require.Error(t, rerr)
	})
}

// hostile drives a receiver with hand-made frames.
func TestHostileFrames(t *testing.T) {
	block := func(off uint64, n uint32, flags uint8, data []byte) []byte {
		b := make([]byte, blockHdrLen)
		blockHdr{Offset: off, RawLen: n, Flags: flags}.put(b)
		return append(b, data...)
	}
	begin := diskBegin{Index: 0, Size: mib, BlockSize: 4096}.encode()
	cases := []struct {
		name   string
		frames [][2]any
	}{
		{"block past the end", [][2]any{{tDiskBegin, begin}, {tBlock, block(mib-100, 4096, 0, make([]byte, 4096))}}},
		{"offset overflow", [][2]any{{tDiskBegin, begin}, {tBlock, block(^uint64(0)-10, 4096, 0, make([]byte, 4096))}}},
		{"length lies", [][2]any{{tDiskBegin, begin}, {tBlock, block(0, 4096, 0, make([]byte, 100))}}},
		{"corrupt s2", [][2]any{{tDiskBegin, begin}, {tBlock, block(0, 4096, flagS2, []byte{0xFF, 0xFF, 0xFF, 1, 2})}}},
		{"unknown flags", [][2]any{{tDiskBegin, begin}, {tBlock, block(0, 4096, 0x80, make([]byte, 4096))}}},
		{"zero past the end", [][2]any{{tDiskBegin, begin}, {tZero, zeroFrame(mib, 4096)}}},
		{"block before a disk", [][2]any{{tBlock, block(0, 4096, 0, make([]byte, 4096))}}},
		{"bad block size", [][2]any{{tDiskBegin, diskBegin{Size: mib, BlockSize: 1000}.encode()}}},
		{"unknown frame", [][2]any{{uint8(99), []byte{}}}},
		{"done inside a disk", [][2]any{{tDiskBegin, begin}, {tDone, []byte{}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst.img")
			makeTarget(t, dst, mib)
			l := newLink(t, []string{dst})
			c := l.dial(transport.KindBlock)
			for _, f := range tc.frames {
				require.NoError(t, c.Send(f[0].(uint8), f[1].([]byte)))
			}
			require.NoError(t, c.Flush())
			rerr := <-l.errs
			require.Error(t, rerr)
			_, _, err := c.Recv()
			var re *transport.RemoteError
			assert.True(t, errors.As(err, &re), "the agent hears why: %v", err)
			fi, err := os.Stat(dst)
			require.NoError(t, err)
			assert.Equal(t, int64(mib), fi.Size(), "nothing written past the disk")
			got, _ := os.ReadFile(dst)
			assert.True(t, isZero(got), "nothing written at all")
		})
	}
}

func FuzzDecoders(f *testing.F) {
	f.Add(diskBegin{Index: 1, Size: mib, BlockSize: 4096, From: 4096}.encode())
	b := make([]byte, blockHdrLen+4)
	blockHdr{Offset: 4096, RawLen: 4, Flags: 0}.put(b)
	f.Add(b)
	f.Add(zeroFrame(0, 4096))
	f.Add(ackFrame(0, 4096))
	f.Fuzz(func(t *testing.T, p []byte) {
		if d, err := decodeDiskBegin(p); err == nil {
			if d.BlockSize == 0 || d.BlockSize > MaxBlockSize || d.From > d.Size {
				t.Fatalf("accepted %+v", d)
			}
		}
		if h, data, err := decodeBlock(p); err == nil {
			if h.RawLen == 0 || h.RawLen > MaxBlockSize || len(data) != len(p)-blockHdrLen {
				t.Fatalf("accepted %+v", h)
			}
		}
		if _, n, err := decodeZero(p); err == nil && (n == 0 || n > MaxBlockSize) {
			t.Fatalf("accepted zero run %d", n)
		}
		_, _, _ = decodeAck(p)
	})
}

// FuzzReceiverBlock feeds arbitrary block payloads to a receiver on a
// 64 KiB disk: it may refuse, it must never write past the disk.
func FuzzReceiverBlock(f *testing.F) {
	b := make([]byte, blockHdrLen+8)
	blockHdr{Offset: 0, RawLen: 8}.put(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, p []byte) {
		dst := filepath.Join(t.TempDir(), "d.img")
		makeTarget(t, dst, 64<<10)
		fh, err := os.OpenFile(dst, os.O_RDWR, 0)
		require.NoError(t, err)
		defer fh.Close()
		r := &receiver{f: fh, size: 64 << 10, bs: 4096}
		_ = r.block(p)
		_ = r.zero(p)
		fi, err := fh.Stat()
		require.NoError(t, err)
		if fi.Size() != 64<<10 {
			t.Fatalf("disk grew to %d", fi.Size())
		}
	})
}

// A second data connection of the task replaces the first: the first's
// sender is told the receiver is stopping (the agent dials again), and the
// second runs only once the first has stopped.
func TestSecondConnectionReplacesTheFirst(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "t.img")
	require.NoError(t, os.WriteFile(target, make([]byte, 1<<20), 0o600))
	l := newLink(t, []string{target})
	first := l.dial(transport.KindBlock)
	second := l.dial(transport.KindVerify)
	require.NoError(t, first.SetDeadline(time.Now().Add(10*time.Second)))
	_, _, err := first.Recv()
	assert.True(t, transport.IsStopping(err), "the replaced sender hears the receiver stop: %v", err)
	select {
	case err := <-l.errs:
		require.Error(t, err, "the first pass ended")
	case <-time.After(10 * time.Second):
		t.Fatal("the first pass did not end")
	}
	second.Close()
}

// TestResendAfterRollback: the target is put back to an earlier state (a
// rollback restored its snapshot) after a pass recorded new hashes. A plain
// sync trusts those hashes and leaves the old blocks in place; with Resend
// every block is compared as unknown and the target matches the source.
func TestResendAfterRollback(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	const size = 8 * mib
	makeSource(t, src, size, 3)
	makeTarget(t, dst, size)
	l := newLink(t, []string{dst})
	disks := []Disk{{Name: "/dev/vda", Path: src, Size: size}}
	state := filepath.Join(dir, "state")
	_, err, rerr := l.pass(Options{Disks: disks, StateDir: state})
	require.NoError(t, err)
	require.NoError(t, rerr)
	snapshot, err := os.ReadFile(dst)
	require.NoError(t, err)

	// The source changes; a pass sends it and records its hashes.
	data := makeSource(t, src, size, 4)
	_, err, rerr = l.pass(Options{Disks: disks, StateDir: state, Sync: true})
	require.NoError(t, err)
	require.NoError(t, rerr)
	requireSame(t, data, dst, size)

	// Rolled back: the target holds the earlier data again.
	require.NoError(t, os.WriteFile(dst, snapshot, 0o600))
	st, err, rerr := l.pass(Options{Disks: disks, StateDir: state, Sync: true})
	require.NoError(t, err)
	require.NoError(t, rerr)
	assert.Zero(t, st.Sent, "the recorded hashes hide the rollback")
	got, err := os.ReadFile(dst)
	require.NoError(t, err)
	assert.False(t, bytes.Equal(data, got), "a plain sync leaves the restored blocks")

	st, err, rerr = l.pass(Options{Disks: disks, StateDir: state, Sync: true, Resend: true})
	require.NoError(t, err)
	require.NoError(t, rerr)
	assert.Positive(t, st.Sent)
	requireSame(t, data, dst, size)
	// The hashes are recorded again: the next plain sync sends nothing.
	st, err, rerr = l.pass(Options{Disks: disks, StateDir: state, Sync: true})
	require.NoError(t, err)
	require.NoError(t, rerr)
	assert.Zero(t, st.Sent)
}

// TestSyncRefusesAResizedDisk: the source disk's size changed between the
// full copy and a sync pass (shrunk or grown while no pass ran). The pass
// fails with ErrDiskChanged (SMS.0515) before it sends anything: synced at
// its new size, a shrunk disk would leave the target's old tail in place and
// verify clean over the shorter disk.
func TestSyncRefusesAResizedDisk(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
	}{{"shrunk", 4 * mib}, {"grown", 12 * mib}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
			makeSource(t, src, 8*mib, 5)
			makeTarget(t, dst, 16*mib)
			l := newLink(t, []string{dst})
			state := filepath.Join(dir, "state")
			_, err, rerr := l.pass(Options{Disks: []Disk{{Name: "/dev/vda", Path: src, Size: 8 * mib}}, StateDir: state})
			require.NoError(t, err)
			require.NoError(t, rerr)
			before, err := os.ReadFile(dst)
			require.NoError(t, err)

			require.NoError(t, os.Truncate(src, tc.size))
			for _, resend := range []bool{false, true} {
				st, err, rerr := l.pass(Options{Disks: []Disk{{Name: "/dev/vda", Path: src, Size: tc.size}}, StateDir: state,
					Sync: true, Resend: resend})
				require.ErrorIs(t, err, ErrDiskChanged, "resend %v", resend)
				require.Error(t, rerr, "the receiver hears the pass fail")
				assert.Zero(t, st.Sent)
				after, err := os.ReadFile(dst)
				require.NoError(t, err)
				assert.True(t, bytes.Equal(before, after), "the target is untouched")
			}
		})
	}
}
