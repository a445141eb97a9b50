// Package usage measures what the host and the agent process use of CPU,
// memory and disk I/O, for the progress reports of PUT
// /v3/tasks/{task_id}/progress (spec §4.2.8): total_cpu_usage,
// agent_cpu_usage (% from 0 to 100), total_mem_usage, agent_mem_usage
// (MB) and total_disk_io, agent_disk_io (MB/s).
//
// MB is 2^20 bytes here, as free -m and iostat -m count. Rates and CPU
// shares are averages since the previous Sample (the first one: since
// NewSampler); memory is the value at the time of the Sample. Everything is
// read from /proc and /sys under the sampler's root, so "the agent" is the
// process that reads <root>/proc/self.
package usage

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smsflow/smsflow/agent/procfs"
)

// Usage is one sample, in the units and ranges of the spec's progress
// fields (values are clamped to them).
type Usage struct {
	TotalCPUUsage float64 `json:"total_cpu_usage"` // % of all CPUs busy, 0..100
	AgentCPUUsage float64 `json:"agent_cpu_usage"` // % of all CPUs this process used, 0..100
	TotalMemUsage float64 `json:"total_mem_usage"` // MB in use on the host: MemTotal - MemAvailable
	AgentMemUsage float64 `json:"agent_mem_usage"` // MB resident (VmRSS) of this process
	TotalDiskIO   float64 `json:"total_disk_io"`   // MB/s read and written by the host's disks
	AgentDiskIO   float64 `json:"agent_disk_io"`   // MB/s this process read from and wrote to storage
	// TotalMemPercent is TotalMemUsage as a share of MemTotal, 0..100 (the
	// network check's mem_usage).
	TotalMemPercent float64 `json:"-"`
}

// Spec ranges of the progress fields.
const (
	maxPercent = 100
	maxMem     = 1048576
	maxIO      = 10000
	mb         = 1 << 20
	// clkTck is USER_HZ, the unit of /proc's CPU times: 100 on every
	// architecture Linux exposes to user space.
	clkTck = 100
)

// Sampler computes usage between successive samples. It is safe for
// concurrent use.
type Sampler struct {
	root string
	now  func() time.Time

	mu   sync.Mutex
	prev snapshot
}

// NewSampler starts measuring: the first Sample covers the time since.
// root is where /proc and /sys are read ("/" in production).
func NewSampler(root string) *Sampler {
	return newSampler(root, time.Now)
}

func newSampler(root string, now func() time.Time) *Sampler {
	if root == "" {
		root = "/"
	}
	s := &Sampler{root: root, now: now}
	s.prev, _ = s.read()
	return s
}

// snapshot is the counters at one time.
type snapshot struct {
	at          time.Time
	busy, total uint64 // host CPU ticks (all CPUs)
	ncpu        int
	cpuOK       bool
	procTicks   uint64 // this process's utime+stime
	procOK      bool
	sectors     uint64 // read+written by the host's disks
	diskOK      bool
	ioBytes     uint64 // read_bytes+write_bytes of this process
	ioOK        bool
	memUsedKB   uint64
	memTotalKB  uint64
	memOK       bool
	rssKB       uint64
	rssOK       bool
}

func (s *Sampler) file(p string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.root, p))
	return string(b), err
}

// read takes a snapshot; the error tells when nothing could be read.
func (s *Sampler) read() (snapshot, error) {
	n := snapshot{at: s.now()}
	var errs []error
	if d, err := s.file("/proc/stat"); err == nil {
		n.busy, n.total, n.ncpu, n.cpuOK = parseProcStat(d)
	} else {
		errs = append(errs, err)
	}
	if d, err := s.file("/proc/self/stat"); err == nil {
		n.procTicks, n.procOK = parseSelfStat(d)
	} else {
		errs = append(errs, err)
	}
	if d, err := s.file("/proc/meminfo"); err == nil {
		n.memUsedKB, n.memTotalKB, n.memOK = parseMemUsed(d)
	} else {
		errs = append(errs, err)
	}
	if d, err := s.file("/proc/self/status"); err == nil {
		n.rssKB, n.rssOK = parseStatusKB(d, "VmRSS")
	} else {
		errs = append(errs, err)
	}
	if d, err := s.file("/proc/diskstats"); err == nil {
		n.sectors, n.diskOK = parseDiskstats(d, s.diskFilter(d))
	} else {
		errs = append(errs, err)
	}
	if d, err := s.file("/proc/self/io"); err == nil {
		n.ioBytes, n.ioOK = parseProcIO(d)
	} else {
		errs = append(errs, err)
	}
	if !n.cpuOK && !n.procOK && !n.memOK && !n.rssOK && !n.diskOK && !n.ioOK {
		return n, errors.Join(append([]error{errors.New("usage: nothing could be read")}, errs...)...)
	}
	return n, nil
}

// Sample returns the usage since the previous Sample. Fields whose source
// cannot be read stay 0; the error is set only when nothing could be read.
func (s *Sampler) Sample() (Usage, error) {
	// The read is inside the lock: two overlapping samples would otherwise
	// store the older snapshot last and the next window would run backwards.
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.read()
	if err != nil {
		return Usage{}, err
	}
	prev := s.prev
	s.prev = cur
	return compute(prev, cur), nil
}

func delta(a, b uint64) float64 {
	if b < a { // a counter reset
		return 0
	}
	return float64(b - a)
}

func clamp(x, hi float64) float64 {
	switch {
	case x != x || x < 0: // NaN, negative
		return 0
	case x > hi:
		return hi
	}
	return x
}

// round2 keeps two decimals: the report needs no more.
func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

func compute(prev, cur snapshot) Usage {
	var u Usage
	dt := cur.at.Sub(prev.at).Seconds()
	if prev.cpuOK && cur.cpuOK && cur.total > prev.total {
		u.TotalCPUUsage = delta(prev.busy, cur.busy) / delta(prev.total, cur.total) * 100
	}
	if prev.procOK && cur.procOK && dt > 0 && cur.ncpu > 0 {
		u.AgentCPUUsage = delta(prev.procTicks, cur.procTicks) / clkTck / (dt * float64(cur.ncpu)) * 100
	}
	if cur.memOK {
		u.TotalMemUsage = float64(cur.memUsedKB) / 1024
		if cur.memTotalKB > 0 {
			u.TotalMemPercent = round2(clamp(float64(cur.memUsedKB)/float64(cur.memTotalKB)*100, maxPercent))
		}
	}
	if cur.rssOK {
		u.AgentMemUsage = float64(cur.rssKB) / 1024
	}
	if prev.diskOK && cur.diskOK && dt > 0 {
		u.TotalDiskIO = delta(prev.sectors, cur.sectors) * 512 / mb / dt
	}
	if prev.ioOK && cur.ioOK && dt > 0 {
		u.AgentDiskIO = delta(prev.ioBytes, cur.ioBytes) / mb / dt
	}
	u.TotalCPUUsage = round2(clamp(u.TotalCPUUsage, maxPercent))
	u.AgentCPUUsage = round2(clamp(u.AgentCPUUsage, maxPercent))
	u.TotalMemUsage = round2(clamp(u.TotalMemUsage, maxMem))
	u.AgentMemUsage = round2(clamp(u.AgentMemUsage, maxMem))
	u.TotalDiskIO = round2(clamp(u.TotalDiskIO, maxIO))
	u.AgentDiskIO = round2(clamp(u.AgentDiskIO, maxIO))
	return u
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat: busy and
// total ticks (guest time is already in user and nice), and counts the
// cpuN lines.
func parseProcStat(data string) (busy, total uint64, ncpu int, ok bool) {
	for _, ln := range strings.Split(data, "\n") {
		f := strings.Fields(ln)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			if _, err := strconv.Atoi(f[0][3:]); err == nil {
				ncpu++
			}
			continue
		}
		if len(f) < 5 {
			return 0, 0, 0, false
		}
		var v [8]uint64 // user nice system idle iowait irq softirq steal
		for i := 1; i < len(f) && i <= len(v); i++ {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return 0, 0, 0, false
			}
			v[i-1] = n
		}
		for _, x := range v {
			total += x
		}
		busy = total - v[3] - v[4]
		ok = true
	}
	return busy, total, ncpu, ok
}

// parseSelfStat reads utime+stime (fields 14 and 15) of /proc/<pid>/stat.
// The command name (field 2) may hold spaces and parentheses: fields are
// counted after its last ')'.
func parseSelfStat(data string) (uint64, bool) {
	i := strings.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(data[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, false
	}
	ut, e1 := strconv.ParseUint(f[11], 10, 64)
	st, e2 := strconv.ParseUint(f[12], 10, 64)
	if e1 != nil || e2 != nil {
		return 0, false
	}
	return ut + st, true
}

// parseStatusKB reads a "Key:   123 kB" line of /proc/meminfo or
// /proc/<pid>/status.
func parseStatusKB(data, key string) (uint64, bool) {
	n, _, ok := procfs.Value(data, key)
	return n, ok
}

// parseMemUsed is MemTotal - MemAvailable, and MemTotal, in kB; kernels
// before 3.14 have no MemAvailable: MemFree + Buffers + Cached stands in.
func parseMemUsed(data string) (used, total uint64, ok bool) {
	total, ok = parseStatusKB(data, "MemTotal")
	if !ok {
		return 0, 0, false
	}
	avail, ok := parseStatusKB(data, "MemAvailable")
	if !ok {
		free, ok1 := parseStatusKB(data, "MemFree")
		buf, _ := parseStatusKB(data, "Buffers")
		cached, _ := parseStatusKB(data, "Cached")
		if !ok1 {
			return 0, 0, false
		}
		avail = free + buf + cached
	}
	if avail > total {
		return 0, total, true
	}
	return total - avail, total, true
}

// parseDiskstats sums the sectors read and written (fields 6 and 10) of
// the devices isDisk accepts.
func parseDiskstats(data string, isDisk func(string) bool) (uint64, bool) {
	var sum uint64
	ok := false
	for _, ln := range strings.Split(data, "\n") {
		f := strings.Fields(ln)
		if len(f) < 10 || !isDisk(f[2]) {
			continue
		}
		r, e1 := strconv.ParseUint(f[5], 10, 64)
		w, e2 := strconv.ParseUint(f[9], 10, 64)
		if e1 != nil || e2 != nil {
			continue
		}
		sum += r + w
		ok = true
	}
	return sum, ok
}

// parseProcIO reads read_bytes + write_bytes of /proc/<pid>/io: the bytes
// the process caused to be fetched from or sent to storage.
func parseProcIO(data string) (uint64, bool) {
	r, ok1 := parseIOField(data, "read_bytes")
	w, ok2 := parseIOField(data, "write_bytes")
	return r + w, ok1 && ok2
}

func parseIOField(data, key string) (uint64, bool) {
	for _, ln := range strings.Split(data, "\n") {
		k, v, ok := strings.Cut(ln, ":")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// virtual are block devices that stack on disks (their I/O is counted on
// the disks) or are no disks.
func virtual(n string) bool {
	for _, p := range []string{"loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd", "nullb"} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// diskFilter accepts the whole disks of /sys/block, so that partitions and
// stacked devices are not counted twice. Without /sys/block, a name that
// extends another listed name by a partition number is a partition.
func (s *Sampler) diskFilter(diskstats string) func(string) bool {
	if ents, err := os.ReadDir(filepath.Join(s.root, "/sys/block")); err == nil && len(ents) > 0 {
		disks := map[string]bool{}
		for _, e := range ents {
			if !virtual(e.Name()) {
				disks[e.Name()] = true
			}
		}
		return func(n string) bool { return disks[n] }
	}
	names := map[string]bool{}
	for _, ln := range strings.Split(diskstats, "\n") {
		if f := strings.Fields(ln); len(f) > 2 {
			names[f[2]] = true
		}
	}
	return func(n string) bool {
		if virtual(n) {
			return false
		}
		for m := range names {
			if m != n && strings.HasPrefix(n, m) && isPartSuffix(n[len(m):]) {
				return false
			}
		}
		return true
	}
}

func isPartSuffix(s string) bool {
	s = strings.TrimPrefix(s, "p")
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
