package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/smsflow/smsflow/workflows"
)

// benchWaveMembers is the wave's size: SMSFLOW_BENCH_WAVE_MEMBERS, 1,000
// unless set (a smaller wave finishes sooner on a busy machine).
func benchWaveMembers(b *testing.B) int {
	v := os.Getenv("SMSFLOW_BENCH_WAVE_MEMBERS")
	if v == "" {
		return 1000
	}
	n, err := strconv.Atoi(v)
	require.NoError(b, err, "SMSFLOW_BENCH_WAVE_MEMBERS")
	require.Greater(b, n, 1, "SMSFLOW_BENCH_WAVE_MEMBERS")
	return n
}

// waveBench is what the scripted agents of the benchmark's wave saw.
type waveBench struct {
	mu            sync.Mutex
	n, window     int
	started       map[string]bool // members that received START (a member may get it twice)
	copying       map[string]bool
	firstWindow   time.Time     // when the window was first full
	full          chan struct{} // closed then
	all           chan struct{} // closed when every member has started
	finishedAfter []time.Time
	// pending are, per copying agent, the finishes of other members since
	// its last SPEED_LIMIT: each is answered by its next SPEED_LIMIT.
	pending  map[string][]time.Time
	reassign []time.Duration
	// nextFinish spaces the finishes of the wave's tail (see agent).
	nextFinish time.Time
}

// tailSpacing is the time between two finishes in the wave's tail: each
// raises the others' limits, and a raise should land before the next
// finish (at 1.5 s copies, a loaded server folded the tail's finishes into
// one batch that raised nobody still copying, and nothing was measured).
const tailSpacing = 3 * time.Second

// agent copies in about 1.5 s (progress 10, 50, 90, 100), syncs at once and
// records when the window fills and when limits arrive. The first members
// hold their copies at 90 % until the window is full: the members' runs
// reach their agents one by one, so short copies would otherwise end
// before the last of the first window starts. The last window's members
// hold theirs until every member has started, then finish one at a time,
// tailSpacing apart: the wave's tail, where each finish raises the others'
// limits and is measured (otherwise most of the last window would have
// finished before the last member starts).
func (w *waveBench) agent(ctx context.Context) func(a *scriptedAgent, name, taskID string) (string, string) {
	return func(a *scriptedAgent, name, taskID string) (string, string) {
		now := time.Now()
		switch name {
		case "SPEED_LIMIT":
			w.mu.Lock()
			for _, f := range w.pending[a.sourceID] {
				w.reassign = append(w.reassign, now.Sub(f))
			}
			delete(w.pending, a.sourceID)
			w.mu.Unlock()
		case "START":
			w.mu.Lock()
			w.started[a.sourceID] = true
			w.copying[a.sourceID] = true
			if len(w.copying) >= w.window && w.firstWindow.IsZero() {
				w.firstWindow = now
				close(w.full)
			}
			// At most window-1 members hold while others are still to
			// start, so the window always has room for them.
			last := len(w.started) > w.n-w.window
			if len(w.started) == w.n && w.all != nil {
				close(w.all)
				w.all = nil
			}
			all := w.all
			w.mu.Unlock()
			go func() {
				for _, p := range []int32{10, 50, 90} {
					a.progress(ctx, taskID, "MIGRATE_LINUX_BLOCK", p)
					time.Sleep(500 * time.Millisecond)
				}
				select {
				case <-w.full:
				case <-ctx.Done():
					return
				}
				if last && all != nil {
					select {
					case <-all:
					case <-ctx.Done():
						return
					}
				}
				w.mu.Lock()
				if len(w.started) == w.n { // the tail: one finish at a time
					at := time.Now()
					if at.Before(w.nextFinish) {
						at = w.nextFinish
					}
					w.nextFinish = at.Add(tailSpacing)
					w.mu.Unlock()
					select {
					case <-time.After(time.Until(at)):
					case <-ctx.Done():
						return
					}
					w.mu.Lock()
				}
				delete(w.copying, a.sourceID)
				// Only finishes once every member has started are pure
				// reassignments: before that a pending member takes
				// the freed share and the others' limits stay as
				// they were, so no command is due.
				if len(w.started) == w.n {
					f := time.Now()
					for src := range w.copying {
						w.pending[src] = append(w.pending[src], f)
					}
				}
				w.mu.Unlock()
				a.progress(ctx, taskID, "MIGRATE_LINUX_BLOCK", 100)
			}()
		case "SYNC":
			go a.progress(ctx, taskID, "SYNC_LINUX_BLOCK", 100)
		}
		return "success", "done"
	}
}

// BenchmarkWaveThousand runs a wave of 1,000 scripted agents
// (SMSFLOW_BENCH_WAVE_MEMBERS) through `serve` and its embedded Temporal,
// max_concurrent 20 and a 1,000 Mbit/s budget, until DONE. Reported: the
// time from `start` until 20 members copy; the wave's history events per
// member, over every run of wave/<id> (it continues as new); serve's peak
// RSS; and the reassignment latency, from a finishing member's last
// progress to each other copying agent receiving its raised SPEED_LIMIT
// (measured in the wave's tail, where every finish raises the others).
//
// One wave is one iteration; -benchtime 5s still runs it once (an
// iteration is longer), so `go test -p 1 ./web/ ./e2e/ -bench
// 'WaveShow|WaveThousand' -benchtime 5s` measures it beside
// BenchmarkWaveShow in one run.
//
//	go test ./e2e/ -run '^$' -bench WaveThousand -benchtime 1x -timeout 60m
func BenchmarkWaveThousand(b *testing.B) {
	n := benchWaveMembers(b)
	const window = 20
	timeout := 45 * time.Minute
	for range b.N {
		// The harness's 2 s between sync passes: the wave paces its
		// members' passes by its size (workflows.WavePassSpacing), so
		// the members in sync do not flood the server (before that, a
		// wave of 200 stalled at 135 copied).
		s := newServer(b, "--log-level", "warn")
		s.client = &http.Client{Timeout: 60 * time.Second,
			Transport: &http.Transport{MaxIdleConns: 2000, MaxIdleConnsPerHost: 2000}}
		ctx, cancel := context.WithCancel(context.Background())
		w := &waveBench{n: n, window: window, copying: map[string]bool{}, started: map[string]bool{}, full: make(chan struct{}), all: make(chan struct{}), pending: map[string][]time.Time{}}
		members := make([]map[string]any, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				a := newAgentUsed(b, s, fmt.Sprintf("wave-%04d", i), 1<<20)
				a.onCommand = w.agent(ctx)
				// As sms-agent waits (30 s, fitted under half the
				// harness's 30 s agent timeout): a thousand agents
				// polling every 2 s would measure their polls.
				a.pollWait = 14
				go a.run(ctx) // one long-polling goroutine per source
				members[i] = map[string]any{"source_id": a.sourceID}
			}()
		}
		wg.Wait()
		var mps struct {
			MigProjects []struct {
				ID        string `json:"id"`
				IsDefault bool   `json:"isdefault"`
			} `json:"migprojects"`
		}
		s.call("GET", "/v3/migprojects", nil, &mps)
		require.NotEmpty(b, mps.MigProjects)
		mp := mps.MigProjects[0].ID
		for _, p := range mps.MigProjects {
			if p.IsDefault {
				mp = p.ID
			}
		}
		var created struct {
			ID string `json:"id"`
		}
		s.call("POST", "/v3/waves", map[string]any{
			"name": "wave-bench", "project_id": mp, "task_defaults": map[string]any{"type": "MIGRATE_BLOCK"},
			"members": members, "max_concurrent": window, "bandwidth_budget": map[string]any{"default_mbps": 1000},
			"time_zone": "Europe/Berlin", "cutover_mode": "auto", "max_failures": 0,
		}, &created)
		require.NotEmpty(b, created.ID)

		b.ResetTimer()
		var start time.Time
		for deadline := time.Now().Add(2 * time.Minute); ; { // preflight passes once every agent has polled
			t0 := time.Now()
			code, body, err := s.do("POST", "/v3/waves/"+created.ID+"/action", map[string]string{"operation": "start"})
			if err == nil && code == http.StatusOK {
				start = t0
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("start: %d %s %v", code, body, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		serveCPU0, selfCPU0 := procCPU(s.cmd.Process.Pid), selfCPU()
		var show struct {
			State string `json:"state"`
		}
		for begun := time.Now(); ; time.Sleep(time.Second) {
			s.call("GET", "/v3/waves/"+created.ID, nil, &show)
			if show.State == "DONE" || show.State == "PAUSED" || show.State == "CANCELED" {
				break
			}
			if time.Since(begun) > timeout {
				b.Fatalf("the wave is %s after %s", show.State, timeout)
			}
		}
		wall := time.Since(start)
		serveCPU, selfCPU := procCPU(s.cmd.Process.Pid)-serveCPU0, selfCPU()-selfCPU0
		b.StopTimer()
		require.Equal(b, "DONE", show.State)
		peak := peakRSSKiB(s.cmd.Process.Pid)
		cancel()

		events, runs := waveHistory(b, dialTemporal(b, s.front, "default"), workflows.WaveWorkflowID(created.ID))
		w.mu.Lock()
		require.False(b, w.firstWindow.IsZero(), "the window never filled")
		require.NotEmpty(b, w.reassign, "no reassignment was measured")
		lat := slices.Clone(w.reassign)
		firstWindow := w.firstWindow.Sub(start)
		w.mu.Unlock()
		slices.Sort(lat)
		b.ReportMetric(float64(n), "members")
		b.ReportMetric(firstWindow.Seconds(), "start-to-window-s")
		b.ReportMetric(wall.Seconds(), "wave-wall-s")
		b.ReportMetric(float64(events)/float64(n), "events/member")
		b.ReportMetric(float64(runs), "wave-runs")
		b.ReportMetric(float64(peak)/1024, "serve-peak-rss-MiB")
		// The CPU the wave took from start to DONE, serve's and the
		// scripted agents' (this process): on a busy machine the wall
		// time waits for cores, and (serve + agents) / 2 cores is about
		// what an idle 2-core machine needs.
		b.ReportMetric(serveCPU.Seconds(), "serve-cpu-s")
		b.ReportMetric(selfCPU.Seconds(), "agents-cpu-s")
		b.ReportMetric(float64(len(lat)), "reassign-samples")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "reassign-p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "reassign-p99-ms")
		s.stop()
	}
}

// waveHistory counts the events of every run of a workflow, walking back
// from the latest run through the runs it continued.
func waveHistory(b *testing.B, c client.Client, id string) (events, runs int) {
	defer c.Close()
	for runID := ""; ; runs++ {
		it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		prev := ""
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(b, err)
			if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil {
				prev = a.GetContinuedExecutionRunId()
			}
			events++
		}
		if prev == "" {
			return events, runs + 1
		}
		runID = prev
	}
}

// procCPU is the user and system CPU a process has used, from
// /proc/<pid>/stat (clock ticks of 1/100 s, as Linux gives them to user
// space); 0 when unreadable.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is the first, utime the 12th, stime the 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	user, _ := strconv.ParseInt(f[11], 10, 64)
	sys, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(user+sys) * 10 * time.Millisecond
}

// selfCPU is the user and system CPU this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
