package blocksync

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/agent/throttle"
	"github.com/smsflow/smsflow/agent/transport"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFullCopy1GiB copies a 1 GiB image (half random, a quarter
// zeros, a quarter text) agent → receiver over loopback TLS, beside `cp` of
// the same file on the same disk, and then syncs after 1 % of the blocks
// changed. Reported: both throughputs, their ratio, CPU seconds per GiB,
// and the sync's bytes on the wire as a share of the disk.
//
//	go test ./agent/blocksync/ -run '^$' -bench FullCopy1GiB -benchtime 1x
func BenchmarkFullCopy1GiB(b *testing.B) {
	const size = 1 << 30
	dir := b.TempDir()
	src, dst, cpDst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img"), filepath.Join(dir, "cp.img")
	makeSource(b, src, size, 9)
	for range b.N {
		makeTarget(b, dst, size)
		// Warm the page cache for both, as a second pass would be.
		_ = exec.Command("cat", src).Run()

		start := time.Now()
		out, err := exec.Command("cp", "--sparse=never", src, cpDst).CombinedOutput()
		require.NoError(b, err, string(out))
		f, err := os.Open(cpDst)
		require.NoError(b, err)
		require.NoError(b, f.Sync())
		f.Close()
		cpDur := time.Since(start)
		os.Remove(cpDst)

		l := newLink(b, []string{dst})
		disks := []Disk{{Name: "/dev/vda", Path: src, Size: size}}
		state := filepath.Join(dir, "state")
		os.RemoveAll(state)
		cpu0 := cpuTime()
		start = time.Now()
		c := l.dial(transport.KindBlock)
		_, err = Send(context.Background(), c, Options{Disks: disks, StateDir: state})
		require.NoError(b, err)
		require.NoError(b, <-l.errs)
		ourDur := time.Since(start)
		cpu := cpuTime() - cpu0
		c.Close()

		// 1 % of the blocks change; a sync pass.
		r := rand.New(rand.NewPCG(3, 3))
		fh, err := os.OpenFile(src, os.O_RDWR, 0)
		require.NoError(b, err)
		blocks := int64(size / DefaultBlockSize)
		patch := make([]byte, 4096)
		for range blocks / 100 {
			for i := range patch {
				patch[i] = byte(r.Uint32())
			}
			_, err = fh.WriteAt(patch, r.Int64N(blocks)*DefaultBlockSize)
			require.NoError(b, err)
		}
		fh.Close()
		c = l.dial(transport.KindBlock)
		st, err := Send(context.Background(), c, Options{Disks: disks, StateDir: state, Sync: true})
		require.NoError(b, err)
		require.NoError(b, <-l.errs)
		c.Close()

		b.ReportMetric(float64(size)/cpDur.Seconds()/1e6, "cp-MB/s")
		b.ReportMetric(float64(size)/ourDur.Seconds()/1e6, "copy-MB/s")
		b.ReportMetric(cpDur.Seconds()/ourDur.Seconds(), "ratio-to-cp")
		b.ReportMetric(cpu.Seconds(), "cpu-s/GiB")
		b.ReportMetric(float64(st.WireBytes)/size*100, "sync-wire-%")
	}
}

// BenchmarkThrottle sends as fast as allowed for 20 s at 40 Mbit/s and
// 20 s at 200 Mbit/s and reports the rates reached (bytes on the wire ÷
// time); then it measures how long a change of limit takes to show (the
// 100 ms rate crossing 90 % of the new limit).
//
//	go test ./agent/blocksync/ -run '^$' -bench Throttle -benchtime 1x
func BenchmarkThrottle(b *testing.B) {
	dir := b.TempDir()
	dst := filepath.Join(dir, "dst.img")
	makeTarget(b, dst, 1<<40)
	l := newLink(b, []string{dst})
	for range b.N {
		for _, mbps := range []int32{40, 200} {
			rate := measureRate(b, l, mbps, 20*time.Second)
			b.ReportMetric(rate, "mbps-at-"+itoa(int(mbps)))
			b.ReportMetric((rate-float64(mbps))/float64(mbps)*100, "error-%-at-"+itoa(int(mbps)))
		}
		b.ReportMetric(changeLatency(b, l).Seconds()*1000, "window-change-ms")
	}
}

// flood sends random 256 KiB blocks until ctx ends.
func flood(ctx context.Context, c *transport.Conn) {
	buf := make([]byte, DefaultBlockSize)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	_ = c.Send(tDiskBegin, diskBegin{Index: 0, Size: 1 << 40, BlockSize: DefaultBlockSize}.encode())
	frame := make([]byte, blockHdrLen+len(buf))
	copy(frame[blockHdrLen:], buf)
	for off := uint64(0); ctx.Err() == nil; off += DefaultBlockSize {
		blockHdr{Offset: off % (1 << 39), RawLen: DefaultBlockSize}.put(frame)
		if c.Send(tBlock, frame) != nil {
			return
		}
	}
}

func measureRate(b *testing.B, l *link, mbps int32, d time.Duration) float64 {
	c := l.dial(transport.KindBlock)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c.SetLimiter(ctx, throttle.New(mbps))
	start := time.Now()
	flood(ctx, c)
	sent := c.BytesSent()
	return float64(sent) * 8 / 1e6 / time.Since(start).Seconds()
}

func changeLatency(b *testing.B, l *link) time.Duration {
	c := l.dial(transport.KindBlock)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	bucket := throttle.New(40)
	c.SetLimiter(ctx, bucket)
	go flood(ctx, c)
	time.Sleep(3 * time.Second)
	changed := time.Now()
	bucket.Set(200)
	last, lastAt := c.BytesSent(), time.Now()
	for ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		now, at := c.BytesSent(), time.Now()
		rate := float64(now-last) * 8 / 1e6 / at.Sub(lastAt).Seconds()
		if rate >= 180 {
			return at.Sub(changed)
		}
		last, lastAt = now, at
	}
	return 15 * time.Second
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}
