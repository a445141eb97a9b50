package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/smsflow/smsflow/internal/testkit/diskimage"
	"github.com/smsflow/smsflow/workflows"
)

// defaultMigProject is the id of the domain's default migration project.
func (s *server) defaultMigProject(t testing.TB) string {
	t.Helper()
	var mps struct {
		MigProjects []struct {
			ID        string `json:"id"`
			IsDefault bool   `json:"isdefault"`
		} `json:"migprojects"`
	}
	s.call("GET", "/v3/migprojects", nil, &mps)
	require.NotEmpty(t, mps.MigProjects)
	for _, p := range mps.MigProjects {
		if p.IsDefault {
			return p.ID
		}
	}
	return mps.MigProjects[0].ID
}

// waveShow is the part of GET /v3/waves/{id} the tests read.
type waveShow struct {
	State   string `json:"state"`
	Members []struct {
		SourceID string   `json:"source_id"`
		State    string   `json:"state"`
		Downtime *float64 `json:"downtime_seconds"`
	} `json:"members"`
}

// waitWave polls the wave until done says so, and returns what it saw last.
func (s *server) waitWave(t testing.TB, id string, within time.Duration, done func(w waveShow) bool) waveShow {
	t.Helper()
	var w waveShow
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		w = waveShow{}
		s.call("GET", "/v3/waves/"+id, nil, &w)
		if done(w) {
			return w
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("wave %s: still %s (%+v) after %s\n%s", id, w.State, w.Members, within, lastLines(s.log.String(), 40))
	return w
}

// startWave creates a wave from body and starts it once its agents have
// polled (the preflight passes then). It returns the wave's id.
func (s *server) startWave(t testing.TB, body map[string]any) string {
	t.Helper()
	var created struct {
		ID string `json:"id"`
	}
	s.call("POST", "/v3/waves", body, &created)
	require.NotEmpty(t, created.ID)
	var last string
	require.Eventually(t, func() bool {
		code, b, err := s.do("POST", "/v3/waves/"+created.ID+"/action", map[string]string{"operation": "start"})
		last = fmt.Sprint(code, " ", string(b), err)
		return err == nil && code == http.StatusOK
	}, 60*time.Second, 500*time.Millisecond, "the wave starts: %s", &last)
	return created.ID
}

// waveAgent is a real sms-agent with a disk image of its own, registered.
type waveAgent struct {
	name, img, src string
	a              *realAgent
}

// waveAgents starts a real agent for each name, each with a 48 MiB disk
// image (seeds 31, 32, …) as its only disk, and waits for their sources.
func waveAgents(t testing.TB, s *server, names ...string) []waveAgent {
	t.Helper()
	var out []waveAgent
	for i, name := range names {
		img := filepath.Join(t.TempDir(), "vda.img")
		require.NoError(t, diskimage.Source(img, waveImageBytes, uint64(31+i)))
		// The agents run on this machine: each names its own, or the
		// server takes the second for the first re-registering.
		a := startAgent(t, s, "--name", name, "--machine-id", "e2e-"+name, "--disk-image", "/dev/vda="+img, "--only-images")
		out = append(out, waveAgent{name: name, img: img, a: a, src: s.waitSource(t, name)})
	}
	return out
}

// waveImageBytes is the size of each waveAgents disk.
const waveImageBytes = 48 << 20

// TestWaveOfTwoRealAgents: two real sms-agent processes, each with a 48 MiB
// disk image, migrate in one wave with continuous sync and cutover on
// approval inside a cutover window open now (UTC). After approve_cutover
// the wave is DONE, each target disk is its source byte for byte, and the
// report gives every member its measured downtime and its verification.
func TestWaveOfTwoRealAgents(t *testing.T) {
	s := newServer(t)
	ms := waveAgents(t, s, "wreal-01", "wreal-02")
	var body []map[string]any
	for _, m := range ms {
		body = append(body, map[string]any{"source_id": m.src})
	}
	// A cutover window open from a minute ago for an hour, on today's
	// weekday in UTC (it may run past midnight: the start's day counts).
	from := time.Now().UTC().Add(-time.Minute)
	to := from.Add(time.Hour)
	day := strings.ToUpper(from.Weekday().String()[:3])
	id := s.startWave(t, map[string]any{
		"name": "wave-real", "project_id": s.defaultMigProject(t),
		"task_defaults": map[string]any{"type": "MIGRATE_BLOCK", "syncing": true}, "members": body,
		"max_concurrent": 2, "time_zone": "UTC", "cutover_mode": "approve", "max_failures": 0,
		"cutover_windows": []map[string]any{{"start": from.Format("15:04"), "end": to.Format("15:04"), "weekdays": []string{day}}},
	})

	s.waitWave(t, id, 2*time.Minute, func(w waveShow) bool {
		require.NotContains(t, []string{"FAILED", "PAUSED", "CANCELED", "DONE"}, w.State, "the wave waits for approval")
		return w.State == "AWAITING_CUTOVER"
	})
	s.call("POST", "/v3/waves/"+id+"/action", map[string]string{"operation": "approve_cutover"}, nil)
	w := s.waitWave(t, id, 2*time.Minute, func(w waveShow) bool {
		return w.State == "DONE" || w.State == "FAILED" || w.State == "PAUSED" || w.State == "CANCELED"
	})
	require.Equal(t, "DONE", w.State)
	// The workflow writes the wave's DONE before its members' last moves
	// (they are flushed after the state): wait for the members' rows too.
	s.waitWave(t, id, 30*time.Second, func(w waveShow) bool {
		for _, m := range w.Members {
			if m.State != "DONE" {
				return false
			}
		}
		return true
	})

	var report struct {
		Members []reportRow `json:"members"`
	}
	s.call("GET", "/v3/waves/"+id+"/report", nil, &report)
	require.Len(t, report.Members, 2)
	bySource := map[string]reportRow{}
	for _, r := range report.Members {
		bySource[r.SourceID] = r
	}
	for _, m := range ms {
		r, found := bySource[m.src]
		require.True(t, found, m.src)
		assert.Equal(t, "DONE", r.State, m.src)
		if assert.NotNil(t, r.DowntimeSeconds, "%s: downtime measured", m.src) {
			assert.Positive(t, *r.DowntimeSeconds, m.src)
		}
		assert.Equal(t, int64(waveImageBytes), r.BytesTotal, m.src)
		assert.Equal(t, "PASSED", r.Verification, "%s: the verification is reported", m.src)
		require.NotEmpty(t, r.TaskID, m.src)
		tk := s.task(r.TaskID)
		assert.Equal(t, "MIGRATE_SUCCESS", tk.State, m.src)
		target := filepath.Join(tk.TargetServer.Location, "disk-0.img")
		assert.True(t, sameHead(t, m.img, target), "%s: the target disk is the source byte for byte", m.src)
	}
}

// reportRow is one member of GET /v3/waves/{id}/report.
type reportRow struct {
	SourceID        string   `json:"source_id"`
	TaskID          string   `json:"task_id"`
	State           string   `json:"state"`
	BytesTotal      int64    `json:"bytes_total"`
	DowntimeSeconds *float64 `json:"downtime_seconds"`
	Verification    string   `json:"verification"`
}

// TestServeKilledMidWave: `smsflow serve` is killed with SIGKILL while the
// three members of a wave copy and started again on the same data dir. The
// wave goes on where it was (no member back to PENDING, the wave still
// REPLICATING) to DONE — its members DONE in the same read — and no
// member's copy was started twice: each task got exactly one START, by the
// agents' records and by the server's log. (It used to fail a member whose
// WaitAgent was in flight at the kill: TestServeKilledWhileWaitingForTheAgent.)
func TestServeKilledMidWave(t *testing.T) {
	s := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	starts := map[string]int{} // task id → START commands received
	var agents []*scriptedAgent
	var body []map[string]any
	for i := range 3 {
		a := newAgent(t, s, fmt.Sprintf("wkill-%02d", i))
		a.onCommand = func(a *scriptedAgent, name, taskID string) (string, string) {
			switch name {
			case "START":
				mu.Lock()
				starts[taskID]++
				mu.Unlock()
				// A copy of about 8 s: time enough to kill serve midway.
				go func() {
					for p := int32(10); p <= 100; p += 10 {
						a.progress(ctx, taskID, "MIGRATE_LINUX_BLOCK", p)
						time.Sleep(800 * time.Millisecond)
					}
				}()
			case "SYNC":
				go a.progress(ctx, taskID, "SYNC_LINUX_BLOCK", 100)
			}
			return "success", "done"
		}
		go a.run(ctx)
		agents = append(agents, a)
		body = append(body, map[string]any{"source_id": a.sourceID})
	}
	id := s.startWave(t, map[string]any{
		"name": "wave-kill", "project_id": s.defaultMigProject(t), "task_defaults": map[string]any{"type": "MIGRATE_BLOCK"},
		"members": body, "max_concurrent": 3, "time_zone": "UTC", "cutover_mode": "auto", "max_failures": 0,
	})
	s.waitWave(t, id, 2*time.Minute, func(w waveShow) bool {
		n := 0
		for _, m := range w.Members {
			if m.State == "COPYING" {
				n++
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return n == 3 && len(starts) == 3 // and every agent copies
	})
	s.kill()
	before := s.log.String()
	s.start()

	// Where it was: the first read after the restart.
	var again waveShow
	s.call("GET", "/v3/waves/"+id, nil, &again)
	require.Len(t, again.Members, 3)
	if again.State != "DONE" {
		assert.Contains(t, []string{"REPLICATING", "SYNCED", "AWAITING_CUTOVER", "CUTTING_OVER"}, again.State)
	}
	for _, m := range again.Members {
		assert.NotEqual(t, "PENDING", m.State, "member %s went back to PENDING", m.SourceID)
	}
	w := s.waitWave(t, id, 3*time.Minute, func(w waveShow) bool {
		return w.State == "DONE" || w.State == "FAILED" || w.State == "PAUSED" || w.State == "CANCELED"
	})
	require.Equal(t, "DONE", w.State, "%+v\n%s", w.Members, lastLines(s.log.String(), 40))
	for _, m := range w.Members { // written before the wave's state
		assert.Equal(t, "DONE", m.State, "member %s when the wave reads DONE", m.SourceID)
	}

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, starts, 3, "each member's task was started")
	for task, n := range starts {
		assert.Equal(t, 1, n, "task %s: START received %d times", task, n)
	}
	// The server's side: one START handed out per task, over both lives.
	handed := map[string]int{}
	for _, line := range strings.Split(before+s.log.String(), "\n") {
		if strings.Contains(line, `"msg":"command handed out"`) && strings.Contains(line, `"command":"START"`) {
			for task := range starts {
				if strings.Contains(line, `"task":"`+task+`"`) {
					handed[task]++
				}
			}
		}
	}
	for task := range starts {
		assert.Equal(t, 1, handed[task], "task %s: START handed out %d times", task, handed[task])
	}
	for _, a := range agents {
		assert.Equal(t, 1, a.count("START"), a.sourceID)
	}
}

// TestServeKilledWhileWaitingForTheAgent: a task waits for its agent (away
// for longer than agent-timeout) when serve is killed with SIGKILL. The
// WaitAgent attempt dies with the worker and its heartbeat times out after
// the restart: that attempt is retried, the agent polls again, and the copy
// starts — once — and the task succeeds. It used to fail with SMS.0508 at
// that heartbeat timeout (one attempt only), though the agent was back.
func TestServeKilledWhileWaitingForTheAgent(t *testing.T) {
	s := newServer(t, "--agent-timeout", "5s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newAgent(t, s, "wait-01")
	a.onCommand = copyAll(ctx)
	// Registered, and not polling: away once agent-timeout has passed.
	require.Eventually(t, func() bool {
		var src struct {
			Connected bool `json:"connected"`
		}
		s.call("GET", "/v3/sources/"+a.sourceID, nil, &src)
		return !src.Connected
	}, 30*time.Second, 250*time.Millisecond, "the agent never counted as away")

	id := createTask(t, s, a, false)
	c := dialTemporal(t, s.front, "default")
	// The wait is under way: its activity started and heartbeats.
	require.Eventually(t, func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, workflows.MigrationWorkflowID(id), "")
		if err != nil {
			return false
		}
		for _, pa := range d.PendingActivities {
			if pa.ActivityType.GetName() == "WaitAgent" && pa.State == enumspb.PENDING_ACTIVITY_STATE_STARTED &&
				pa.LastHeartbeatTime != nil {
				return true
			}
		}
		return false
	}, time.Minute, 100*time.Millisecond, "the task never waited for its agent")

	s.kill()
	s.start()
	go a.run(ctx) // the agent is back

	tk := s.waitState(id, "MIGRATE_SUCCESS", 3*time.Minute)
	assert.Empty(t, tk.ErrorJSON)
	assert.Equal(t, 1, a.count("START"), "%v", a.seen())
}

// TestWaveCancelLeavesNothingRunning: a wave canceled while two of its
// three members copy (max_concurrent 2) ends CANCELED with every member
// CANCELED; the two copying agents are told STOP and their tasks end in
// ABORT; the third member's agent never got a START; and no run of the
// wave — neither the wave's nor a member's — is still open in Temporal.
func TestWaveCancelLeavesNothingRunning(t *testing.T) {
	s := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	stops := map[string]chan struct{}{} // task id → closed by STOP
	var body []map[string]any
	var agents []*scriptedAgent
	for i := range 3 {
		a := newAgent(t, s, fmt.Sprintf("wcan-%02d", i))
		a.onCommand = func(a *scriptedAgent, name, taskID string) (string, string) {
			mu.Lock()
			defer mu.Unlock()
			switch name {
			case "START": // a copy that never ends by itself
				stop := make(chan struct{})
				stops[taskID] = stop
				go func() {
					for p := int32(1); p < 100; p++ {
						select {
						case <-stop:
							return
						case <-ctx.Done():
							return
						case <-time.After(time.Second):
						}
						a.progress(ctx, taskID, "MIGRATE_LINUX_BLOCK", min(p*10, 90))
					}
				}()
			case "STOP":
				if c, ok := stops[taskID]; ok {
					close(c)
					delete(stops, taskID)
				}
			}
			return "success", "done"
		}
		go a.run(ctx)
		agents = append(agents, a)
		body = append(body, map[string]any{"source_id": a.sourceID})
	}
	id := s.startWave(t, map[string]any{
		"name": "wave-cancel", "project_id": s.defaultMigProject(t), "task_defaults": map[string]any{"type": "MIGRATE_BLOCK"},
		"members": body, "max_concurrent": 2, "time_zone": "UTC", "cutover_mode": "auto", "max_failures": 0,
	})
	s.waitWave(t, id, 2*time.Minute, func(w waveShow) bool {
		n := 0
		for _, m := range w.Members {
			if m.State == "COPYING" {
				n++
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return n == 2 && len(stops) == 2 // and both agents copy
	})
	s.call("POST", "/v3/waves/"+id+"/action", map[string]string{"operation": "cancel"}, nil)

	w := s.waitWave(t, id, time.Minute, func(w waveShow) bool { return w.State == "CANCELED" })
	for _, m := range w.Members {
		assert.Equal(t, "CANCELED", m.State, m.SourceID)
	}
	var tasks struct {
		Members []struct {
			TaskID *string `json:"task_id"`
		} `json:"members"`
	}
	s.call("GET", "/v3/waves/"+id, nil, &tasks)
	started := 0
	for i, a := range agents {
		if a.count("START") == 0 {
			continue
		}
		started++
		assert.Equal(t, 1, a.count("START"), a.sourceID)
		require.Eventually(t, func() bool { return a.count("STOP") > 0 }, time.Minute, 200*time.Millisecond,
			"agent %d was not told to stop: %v", i, a.seen())
	}
	assert.Equal(t, 2, started, "only the window's members started")
	for _, m := range tasks.Members {
		require.NotNil(t, m.TaskID)
		if tk := s.task(*m.TaskID); tk.State != "READY" {
			assert.Equal(t, "ABORT", tk.State, "task %s", *m.TaskID)
		}
	}
	c := dialTemporal(t, s.front, "default")
	open := -1
	var lerr error
	assert.Eventually(t, func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default",
			Query: `SmsWaveId = "` + id + `" AND ExecutionStatus = "Running"`})
		if err != nil {
			lerr = err
			return false
		}
		open = len(resp.Executions)
		return open == 0
	}, time.Minute, 500*time.Millisecond)
	assert.Zero(t, open, "runs of the wave still open (%v)", lerr)
}
