package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/smsflow/smsflow/internal/testkit/diskimage"
	"github.com/smsflow/smsflow/workflows"
)

// benchServer is a quiet server whose HTTP client keeps enough connections
// for hundreds of agents long-polling at once.
func benchServer(b *testing.B) *server {
	s := newServer(b, "--log-level", "warn")
	s.client = &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 2000, MaxIdleConnsPerHost: 2000}}
	return s
}

// countState is how many tasks are in the state (the list's count).
func (s *server) countState(state string) int {
	var out struct {
		Count int `json:"count"`
	}
	s.call("GET", "/v3/tasks?limit=1&state="+state, nil, &out)
	return out.Count
}

// BenchmarkMigrations starts 500 tasks at once, each with its scripted
// agent, and waits until all reach MIGRATE_SUCCESS through the real server;
// then, on the same embedded Temporal, 500 bare workflows running as many
// no-op activities as one migration ran. It reports both rates and their
// ratio: what smsflow's steps cost over Temporal's own floor.
//
//	go test ./e2e/ -run '^$' -bench Migrations -benchtime 1x -timeout 30m
func BenchmarkMigrations(b *testing.B) {
	const n = 500
	for range b.N {
		s := benchServer(b)
		ctx, cancel := context.WithCancel(context.Background())
		agents := make([]*scriptedAgent, n)
		for i := range agents {
			agents[i] = newAgent(b, s, fmt.Sprintf("bench-%03d", i))
			agents[i].onCommand = copyAll(ctx)
			go agents[i].run(ctx)
		}
		ids := make([]string, n)
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range agents {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ids[i] = createTaskTB(b, s, agents[i])
			}()
		}
		wg.Wait()
		for s.countState("MIGRATE_SUCCESS") < n {
			if time.Since(start) > 20*time.Minute {
				b.Fatalf("only %d of %d tasks finished", s.countState("MIGRATE_SUCCESS"), n)
			}
			time.Sleep(250 * time.Millisecond)
		}
		migWall := time.Since(start)
		b.StopTimer()
		cancel()

		tc := dialTemporal(b, s.front, "default")
		acts := countActivities(b, tc, workflows.MigrationWorkflowID(ids[0]))
		bareWall := runBare(b, tc, n, acts)

		migRate := float64(n) / migWall.Seconds()
		bareRate := float64(n) / bareWall.Seconds()
		b.ReportMetric(migWall.Seconds(), "migration-wall-s")
		b.ReportMetric(migRate, "migrations/s")
		b.ReportMetric(float64(acts), "activities/migration")
		b.ReportMetric(bareWall.Seconds(), "bare-wall-s")
		b.ReportMetric(bareRate, "bare-workflows/s")
		b.ReportMetric(migRate/bareRate, "ratio")
		s.stop()
	}
}

func createTaskTB(tb testing.TB, s *server, a *scriptedAgent) string {
	return s.localTask(a.sourceID[:8], "MIGRATE_BLOCK", a.sourceID, nil)
}

// countActivities is how many activities a run scheduled.
func countActivities(b *testing.B, c client.Client, id string) int {
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(b, err)
		if ev.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			n++
		}
	}
	return n
}

func bareActivity(context.Context) error { return nil }

// bareWorkflow runs n no-op activities one after the other, as a migration
// runs its steps.
func bareWorkflow(ctx workflow.Context, n int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for range n {
		if err := workflow.ExecuteActivity(ctx, bareActivity).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// runBare starts count bare workflows at once on a worker in this process
// and waits for all of them.
func runBare(b *testing.B, c client.Client, count, acts int) time.Duration {
	w := worker.New(c, "bench-bare", worker.Options{})
	w.RegisterWorkflow(bareWorkflow)
	w.RegisterActivity(bareActivity)
	require.NoError(b, w.Start())
	defer w.Stop()
	start := time.Now()
	runs := make([]client.WorkflowRun, count)
	for i := range runs {
		r, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
			ID: fmt.Sprintf("bare-%d-%d", start.UnixNano(), i), TaskQueue: "bench-bare"}, bareWorkflow, acts)
		require.NoError(b, err)
		runs[i] = r
	}
	for _, r := range runs {
		require.NoError(b, r.Get(context.Background(), nil))
	}
	return time.Since(start)
}

// BenchmarkActionLatency measures POST /v3/tasks/{id}/action (a Temporal
// Update, validated and completed by the workflow) on syncing tasks: p50
// and p99 over b.N calls, spread over 20 tasks.
//
//	go test ./e2e/ -run '^$' -bench ActionLatency -benchtime 500x
func BenchmarkActionLatency(b *testing.B) {
	s := benchServer(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const tasks = 20
	ids := make([]string, tasks)
	for i := range ids {
		a := newAgent(b, s, fmt.Sprintf("lat-%02d", i))
		a.onCommand = copyAll(ctx)
		go a.run(ctx)
		ids[i] = s.localTask(fmt.Sprintf("lat-%02d", i), "MIGRATE_BLOCK", a.sourceID, map[string]any{"syncing": true})
	}
	for _, id := range ids {
		s.waitState(id, "SYNCING", 2*time.Minute)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		code, body, err := s.do("POST", "/v3/tasks/"+ids[i%tasks]+"/action", map[string]string{"operation": "network_check"})
		lat = append(lat, time.Since(t0))
		if err != nil || code != http.StatusOK {
			b.Fatalf("action: %d %s %v", code, body, err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkRealAgent1GiB migrates a 1 GiB disk image through `smsflow
// serve` and a real `sms-agent` (READY → MIGRATE_SUCCESS, full copy plus the
// final sync and both verifications), sampling the agent's resident memory
// every 100 ms. Reported: end-to-end time, MB/s of disk, peak agent RSS.
//
//	go test ./e2e/ -run '^$' -bench RealAgent1GiB -benchtime 1x
func BenchmarkRealAgent1GiB(b *testing.B) {
	for range b.N {
		s := benchServer(b)
		img := filepath.Join(b.TempDir(), "vda.img")
		require.NoError(b, diskimage.Source(img, 1<<30, 21))
		a := startAgent(b, s, "--name", "bench-1g", "--disk-image", "/dev/vda="+img, "--only-images", "--log-level", "warn")
		src := s.waitSource(b, "bench-1g")
		peak := int64(0)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					peak = max(peak, rssKiB(a.cmd.Process.Pid))
				}
			}
		}()
		b.ResetTimer()
		start := time.Now()
		s.waitState(s.localTask("bench", "MIGRATE_BLOCK", src, nil), "MIGRATE_SUCCESS", 10*time.Minute)
		d := time.Since(start)
		b.StopTimer()
		close(stop)
		<-done
		b.ReportMetric(d.Seconds(), "migration-s")
		b.ReportMetric(float64(1<<30)/d.Seconds()/1e6, "disk-MB/s")
		b.ReportMetric(float64(peak)/1024, "agent-peak-RSS-MiB")
		s.stop()
	}
}

// rssKiB reads a process's resident set (VmRSS) in KiB.
func rssKiB(pid int) int64 { return procStatusKiB(pid, "VmRSS:") }

// peakRSSKiB reads the largest resident set a process has had (VmHWM).
func peakRSSKiB(pid int) int64 { return procStatusKiB(pid, "VmHWM:") }

func procStatusKiB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			var n int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, field)), "%d", &n)
			return n
		}
	}
	return 0
}
