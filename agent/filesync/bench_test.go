//go:build linux

package filesync

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/netport"
)

// benchTree writes 10,000 files (~200 MiB: many small, some medium, a few
// large; half random, half text) in 100 directories.
func benchTree(b *testing.B, root string) (files int, bytes int64) {
	r := rand.New(rand.NewPCG(42, 42))
	for i := range 10000 {
		var n int
		switch {
		case i < 6000:
			n = 512 + r.IntN(8<<10-512)
		case i < 9000:
			n = 8<<10 + r.IntN(32<<10)
		case i < 9980:
			n = 40<<10 + r.IntN(80<<10)
		default:
			n = 1<<20 + r.IntN(2<<20)
		}
		var data []byte
		if i%2 == 0 {
			data = randBytes(r, n)
		} else {
			data = textBytes(r, n)
		}
		p := filepath.Join(root, fmt.Sprintf("top%d/dir%02d/file%05d", i%10, i%100, i))
		writeFile(b, p, data, 0o644)
		bytes += int64(n)
	}
	return 10000, bytes
}

func syncfs(b *testing.B, dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(b, err)
	defer unix.Close(fd)
	require.NoError(b, unix.Syncfs(fd))
}

// BenchmarkFileCopy10k copies a 10,000-file tree over loopback: with this
// package (TLS transport, receiver syncs the file system at the end), then,
// if rsync is installed, with `rsync -a` to an rsync daemon on loopback
// (plain TCP, followed by a syncfs for parity). The rsync half reports
// ours/rsync, the ratio of the two throughputs (above 1: we are faster).
//
// FILESYNC_BENCH_DIR puts the trees elsewhere than the default temporary
// directory (e.g. /dev/shm, to take the disk out of the measure).
func BenchmarkFileCopy10k(b *testing.B) {
	work := b.TempDir()
	if d := os.Getenv("FILESYNC_BENCH_DIR"); d != "" {
		var err error
		work, err = os.MkdirTemp(d, "filesync-bench")
		require.NoError(b, err)
		b.Cleanup(func() { os.RemoveAll(work) })
	}
	src := filepath.Join(work, "src")
	files, total := benchTree(b, src)
	b.Logf("tree: %d files, %.1f MiB", files, float64(total)/(1<<20))
	var oursMBps float64

	b.Run("filesync", func(b *testing.B) {
		dstRoot := filepath.Join(work, "dst-filesync")
		require.NoError(b, os.MkdirAll(dstRoot, 0o755))
		var dst string
		srv := serve(b, func(ctx context.Context, c *transport.Conn) error { return Receive(ctx, c, dst) })
		b.SetBytes(total)
		b.ResetTimer()
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			dst = filepath.Join(dstRoot, fmt.Sprint(i))
			require.NoError(b, os.Mkdir(dst, 0o755))
			syncfs(b, dstRoot)
			b.StartTimer()
			t0 := time.Now()
			srv.pass(b, src, SendOptions{})
			elapsed += time.Since(t0)
			b.StopTimer()
			require.NoError(b, os.RemoveAll(dst))
			b.StartTimer()
		}
		sec := elapsed.Seconds() / float64(b.N)
		oursMBps = float64(total) / 1e6 / sec
		b.ReportMetric(float64(files)/sec, "files/s")
	})

	b.Run("rsync", func(b *testing.B) {
		rsync, err := exec.LookPath("rsync")
		if err != nil {
			b.Skip("rsync not installed (apt-get install -y rsync): comparison skipped")
		}
		dstRoot := filepath.Join(work, "dst-rsync")
		require.NoError(b, os.MkdirAll(dstRoot, 0o755))
		port := freePort(b)
		conf := filepath.Join(work, "rsyncd.conf")
		require.NoError(b, os.WriteFile(conf, []byte(fmt.Sprintf(
			"pid file = %s/rsyncd.pid\nuse chroot = no\n[bench]\n  path = %s\n  read only = no\n  uid = 0\n  gid = 0\n",
			work, dstRoot)), 0o644))
		daemon := exec.Command(rsync, "--daemon", "--no-detach", "--address", "127.0.0.1",
			"--port", fmt.Sprint(port), "--config", conf, "--log-file", filepath.Join(work, "rsyncd.log"))
		require.NoError(b, daemon.Start())
		b.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
		waitPort(b, port)
		b.SetBytes(total)
		b.ResetTimer()
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			syncfs(b, dstRoot)
			b.StartTimer()
			t0 := time.Now()
			out, err := exec.Command(rsync, "-a", src+"/", fmt.Sprintf("rsync://127.0.0.1:%d/bench/%d/", port, i)).CombinedOutput()
			require.NoError(b, err, "%s", out)
			syncfs(b, dstRoot)
			elapsed += time.Since(t0)
			b.StopTimer()
			require.NoError(b, os.RemoveAll(filepath.Join(dstRoot, fmt.Sprint(i))))
			b.StartTimer()
		}
		sec := elapsed.Seconds() / float64(b.N)
		b.ReportMetric(float64(files)/sec, "files/s")
		if oursMBps > 0 {
			b.ReportMetric(oursMBps/(float64(total)/1e6/sec), "ours/rsync")
		}
	})
}

func freePort(b *testing.B) int {
	p, err := netport.Free("127.0.0.1")
	require.NoError(b, err)
	return p
}

func waitPort(b *testing.B, port int) {
	for range 100 {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatal("rsync daemon did not start")
}
