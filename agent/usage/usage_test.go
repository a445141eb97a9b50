package usage

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsers(t *testing.T) {
	t.Run("proc stat", func(t *testing.T) {
		data := "cpu  634073 10 151628 1286599 6193 0 3622 674 50 0\ncpu0 307496 0 70414 659619 1386 0 1254 335 0 0\n" +
			"cpu1 326577 10 81214 626980 4807 0 2368 339 0 0\nintr 1 2 3\ncpufreq x\nctxt 42\n"
		busy, total, ncpu, ok := parseProcStat(data)
		assert.True(t, ok)
		assert.Equal(t, 2, ncpu)
		assert.Equal(t, uint64(634073+10+151628+1286599+6193+0+3622+674), total)
		assert.Equal(t, total-1286599-6193, busy)
		_, _, _, ok = parseProcStat("cpu 1 2\n")
		assert.False(t, ok)
		_, _, _, ok = parseProcStat("cpu 1 2 x 4 5\n")
		assert.False(t, ok)
		_, _, _, ok = parseProcStat("")
		assert.False(t, ok)
	})
	t.Run("self stat", func(t *testing.T) {
		data := "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 567 0 0 20 0 9 0 100 1000000 2500 18446744073709551615\n"
		ticks, ok := parseSelfStat(data)
		assert.True(t, ok)
		assert.Equal(t, uint64(1234+567), ticks)
		_, ok = parseSelfStat("4242 (short) S 1 2 3")
		assert.False(t, ok)
		_, ok = parseSelfStat("no parenthesis")
		assert.False(t, ok)
		_, ok = parseSelfStat("1 (x) S 1 2 3 4 5 6 7 8 9 10 x 5 0")
		assert.False(t, ok)
	})
	t.Run("status and meminfo", func(t *testing.T) {
		status := "Name:\tsms-agent\nVmPeak:\t  900000 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n"
		rss, ok := parseStatusKB(status, "VmRSS")
		assert.True(t, ok)
		assert.Equal(t, uint64(51200), rss)
		_, ok = parseStatusKB(status, "VmSwap")
		assert.False(t, ok)

		used, total, ok := parseMemUsed("MemTotal:        3880292 kB\nMemFree:  100 kB\nMemAvailable:    3318440 kB\n")
		assert.True(t, ok)
		assert.Equal(t, uint64(3880292-3318440), used)
		assert.Equal(t, uint64(3880292), total)
		used, total, ok = parseMemUsed("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n") // kernel < 3.14
		assert.True(t, ok)
		assert.Equal(t, uint64(600), used)
		assert.Equal(t, uint64(1000), total)
		_, _, ok = parseMemUsed("MemFree: 1 kB\n")
		assert.False(t, ok)
		_, _, ok = parseMemUsed("MemTotal: 1000 kB\n")
		assert.False(t, ok)
	})
	t.Run("diskstats", func(t *testing.T) {
		data := " 253 0 vda 1000 12 80000 2500 300 40 9000 700 0 3100 3200 0 0 0 0\n" +
			" 253 1 vda1 200 0 4000 9000 100 0 1000 0 0 100 100\n" +
			" 7 0 loop0 5 0 10 0 0 0 0 0 0 0 0\n" +
			" 252 0 dm-0 9 0 777 0 9 0 777 0 0 0 0\n" +
			" 259 0 nvme0n1 1 0 100 0 1 0 50 0 0 0 0\n" +
			" 259 1 nvme0n1p1 1 0 99 0 1 0 49 0 0 0 0\n" +
			" 8 0 sda x 0 bad 0 0 0 0 0 0 0 0\n short line\n"
		n, ok := parseDiskstats(data, func(n string) bool { return n == "vda" })
		assert.True(t, ok)
		assert.Equal(t, uint64(80000+9000), n)
		s := &Sampler{root: t.TempDir()} // no /sys/block: partitions are told by name
		n, ok = parseDiskstats(data, s.diskFilter(data))
		assert.True(t, ok)
		assert.Equal(t, uint64(80000+9000+100+50), n)
		_, ok = parseDiskstats(data, func(string) bool { return false })
		assert.False(t, ok)
	})
	t.Run("self io", func(t *testing.T) {
		n, ok := parseProcIO("rchar: 6976\nwchar: 10\nsyscr: 10\nsyscw: 0\nread_bytes: 4096\nwrite_bytes: 20971520\ncancelled_write_bytes: 0\n")
		assert.True(t, ok)
		assert.Equal(t, uint64(4096+20971520), n)
		_, ok = parseProcIO("rchar: 6976\n")
		assert.False(t, ok)
	})
}

// procTree is a fake root whose counters a test sets between samples.
type procTree struct {
	t    *testing.T
	root string
}

func (p procTree) set(files map[string]string) {
	for name, c := range files {
		full := filepath.Join(p.root, name)
		require.NoError(p.t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(p.t, os.WriteFile(full, []byte(c), 0o644))
	}
}

func TestSampleDeltas(t *testing.T) {
	p := procTree{t, t.TempDir()}
	p.set(map[string]string{
		"proc/stat":          "cpu  1000 0 500 8000 500 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\ncpu2 0\ncpu3 0\n",
		"proc/self/stat":     "99 (sms-agent) S 1 1 1 0 -1 0 0 0 0 0 100 50 0 0 20 0 9 0 1 1 1\n",
		"proc/self/status":   "VmRSS:\t  10240 kB\n",
		"proc/meminfo":       "MemTotal: 8388608 kB\nMemAvailable: 6291456 kB\n",
		"proc/diskstats":     " 253 0 vda 0 0 1000 0 0 0 3000 0 0 0 0\n 253 1 vda1 0 0 999999 0 0 0 0 0 0 0 0\n",
		"proc/self/io":       "read_bytes: 0\nwrite_bytes: 1048576\n",
		"sys/block/vda/size": "1\n", "sys/block/loop0/size": "0\n",
	})
	at := time.Unix(1000, 0)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return at }
	s := newSampler(p.root, now)

	// Two seconds later: the host was busy 3000 of 10000 ticks (30%); the agent
	// used 200 ticks (2 s of CPU over 2 s × 4 CPUs: 25%); the disks moved
	// 20480 sectors (10 MiB: 5 MB/s); the agent 4 MiB (2 MB/s).
	p.set(map[string]string{
		"proc/stat":        "cpu  3000 0 1500 14000 1500 0 0 0 0 0\ncpu0 0\ncpu1 0\ncpu2 0\ncpu3 0\n",
		"proc/self/stat":   "99 (sms-agent) S 1 1 1 0 -1 0 0 0 0 0 250 100 0 0 20 0 9 0 1 1 1\n",
		"proc/self/status": "VmRSS:\t  61440 kB\n",
		"proc/diskstats":   " 253 0 vda 0 0 11240 0 0 0 13240 0 0 0 0\n 253 1 vda1 0 0 9999999 0 0 0 0 0 0 0 0\n",
		"proc/self/io":     "read_bytes: 2097152\nwrite_bytes: 3145728\n",
	})
	mu.Lock()
	at = at.Add(2 * time.Second)
	mu.Unlock()
	u, err := s.Sample()
	require.NoError(t, err)
	assert.Equal(t, Usage{TotalCPUUsage: 30, AgentCPUUsage: 25, TotalMemUsage: 2048, AgentMemUsage: 60, TotalMemPercent: 25,
		TotalDiskIO: 5, AgentDiskIO: 2}, u)

	// Counters that went back (a reset) and no time passing give zeros,
	// never negative or infinite values.
	p.set(map[string]string{"proc/self/io": "read_bytes: 0\nwrite_bytes: 0\n"})
	u, err = s.Sample()
	require.NoError(t, err)
	assert.Equal(t, Usage{TotalMemUsage: 2048, AgentMemUsage: 60, TotalMemPercent: 25}, u)

	// Values beyond the spec's ranges are clamped.
	p.set(map[string]string{"proc/self/stat": "99 (sms-agent) S 1 1 1 0 -1 0 0 0 0 0 999999 100 0 0 20 0 9 0 1 1 1\n",
		"proc/self/io": "read_bytes: 0\nwrite_bytes: 1099511627776000\n"})
	mu.Lock()
	at = at.Add(time.Second)
	mu.Unlock()
	u, err = s.Sample()
	require.NoError(t, err)
	assert.Equal(t, float64(100), u.AgentCPUUsage)
	assert.Equal(t, float64(10000), u.AgentDiskIO)

	_, err = newSampler(t.TempDir(), time.Now).Sample()
	assert.Error(t, err)
}

// The tests below measure this test process.

func liveSampler(t *testing.T) *Sampler {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("reads Linux's /proc")
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip(err)
	}
	return NewSampler("/")
}

func TestAgentCPU(t *testing.T) {
	s := liveSampler(t)
	_, _, ncpu, ok := parseProcStat(mustRead(t, "/proc/stat"))
	require.True(t, ok)
	workers := min(runtime.GOMAXPROCS(0), ncpu)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var sink atomic.Uint64
	_, err := s.Sample()
	require.NoError(t, err)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := uint64(1)
			for !stop.Load() {
				for i := 0; i < 1000; i++ {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
			sink.Add(x)
		}()
	}
	// Spin until the process has used 300 ms of CPU, however long a
	// loaded machine takes to give it that (a fixed 300 ms of wall time got
	// 3% of two busy CPUs in CI), then expect the sampler to see about the
	// share the kernel's own account (getrusage) gives.
	cpu0, wall0 := selfCPU(t), time.Now()
	for selfCPU(t)-cpu0 < 300*time.Millisecond && time.Since(wall0) < 10*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	used, wall := selfCPU(t)-cpu0, time.Since(wall0)
	u, err := s.Sample()
	require.NoError(t, err)
	share := 100 * used.Seconds() / (wall.Seconds() * float64(ncpu))
	// /proc counts in 10 ms ticks and the sample spans a little more than
	// the spin: half the kernel's share is the floor.
	assert.Greater(t, u.AgentCPUUsage, share/2, "%d busy goroutines on %d CPUs used %v of CPU in %v", workers, ncpu, used, wall)
	assert.Greater(t, u.TotalCPUUsage, 0.0)
	assert.LessOrEqual(t, u.AgentCPUUsage, 100.0)
	assert.LessOrEqual(t, u.TotalCPUUsage, 100.0)
}

// selfCPU is the CPU time (user and system) this process has used.
func selfCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestAgentMemory(t *testing.T) {
	s := liveSampler(t)
	// Memory freed by earlier tests (or earlier -count runs) would be reused
	// without growing the RSS: give it back to the OS first.
	debug.FreeOSMemory()
	before, err := s.Sample()
	require.NoError(t, err)
	buf := make([]byte, 50<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = byte(i)
	}
	after, err := s.Sample()
	require.NoError(t, err)
	runtime.KeepAlive(buf)
	assert.GreaterOrEqual(t, after.AgentMemUsage-before.AgentMemUsage, 40.0, "RSS %v MB -> %v MB",
		before.AgentMemUsage, after.AgentMemUsage)

	var total, avail uint64
	meminfo := mustRead(t, "/proc/meminfo")
	total, _ = parseStatusKB(meminfo, "MemTotal")
	avail, _ = parseStatusKB(meminfo, "MemAvailable")
	// The host's use moves as other processes run: within 512 MB.
	assert.InDelta(t, float64(total-avail)/1024, after.TotalMemUsage, 512)
	assert.Greater(t, after.TotalMemUsage, after.AgentMemUsage/2)
}

func TestAgentDiskIO(t *testing.T) {
	s := liveSampler(t)
	if _, err := os.ReadFile("/proc/self/io"); err != nil {
		t.Skipf("no I/O accounting: %v", err)
	}
	dir := t.TempDir()
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) == nil && st.Type == 0x01021994 { // TMPFS_MAGIC: no storage below
		wd, err := os.Getwd()
		require.NoError(t, err)
		if dir, err = os.MkdirTemp(wd, "usage-io-"); err != nil {
			t.Skipf("temp dir on tmpfs, and %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	_, err := s.Sample()
	require.NoError(t, err)
	f, err := os.Create(filepath.Join(dir, "io.bin"))
	require.NoError(t, err)
	chunk := []byte(strings.Repeat("smsflow!", 1<<17)) // 1 MiB
	for range 20 {
		_, err = f.Write(chunk)
		require.NoError(t, err)
	}
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
	u, err := s.Sample()
	require.NoError(t, err)
	assert.Greater(t, u.AgentDiskIO, 0.0)
	t.Logf("agent %.2f MB/s, host %.2f MB/s", u.AgentDiskIO, u.TotalDiskIO)
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skip(err)
	}
	return string(b)
}
