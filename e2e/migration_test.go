package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func createTask(t *testing.T, s *server, a *scriptedAgent, syncing bool) string {
	t.Helper()
	return s.localTask("e2e", "MIGRATE_BLOCK", a.sourceID, map[string]any{"syncing": syncing, "speed_limit": 500})
}

// copyAll is a well-behaved agent: each copy command reports 0→100 %.
func copyAll(ctx context.Context) func(a *scriptedAgent, name, taskID string) (string, string) {
	return func(a *scriptedAgent, name, taskID string) (string, string) {
		sub := map[string]string{"START": "MIGRATE_LINUX_BLOCK", "SYNC": "SYNC_LINUX_BLOCK"}[name]
		if sub != "" {
			go func() {
				for _, p := range []int32{10, 50, 100} {
					a.progress(ctx, taskID, sub, p)
				}
			}()
		}
		return "success", "done"
	}
}

// TestMigrationToSuccess: a task goes from READY to MIGRATE_SUCCESS through
// the real server, its embedded Temporal and worker, and a scripted agent.
func TestMigrationToSuccess(t *testing.T) {
	s := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newAgent(t, s, "web-01")
	a.onCommand = copyAll(ctx)
	go a.run(ctx)

	id := createTask(t, s, a, false)
	s.recordHistory(id, "success-then-delete")
	tk := s.waitState(id, "MIGRATE_SUCCESS", 90*time.Second)
	for _, st := range tk.SubTasks {
		assert.Equal(t, int32(100), st.Progress, st.Name)
	}
	assert.Equal(t, "finished", tk.SourceServer.State)
	assert.Equal(t, "cutovered", tk.SourceServer.MigrationCycle)
	assert.Contains(t, tk.WorkflowURL, "/namespaces/default/workflows/migration%2F"+id)
	require.NotEmpty(t, tk.TargetServer.Location)
	img, err := os.Stat(filepath.Join(tk.TargetServer.Location, "disk-0.img"))
	require.NoError(t, err, "the local provider laid out the target disk")
	assert.Equal(t, int64(40<<30), img.Size(), "a 2 GiB system disk becomes the 40 GiB minimum")
	assert.Equal(t, []string{"START", "SYNC"}, a.seen()[:2])

	// The Temporal UI answers, and finds the run.
	resp, err := http.Get("http://" + s.ui + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// The operator's actions follow the rules: a finished task does not stop.
	code, b, err := s.do("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "stop"})
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, string(b), "SMS.7714")

	// Deleting goes through the workflow: the target goes, the source is free.
	s.call("DELETE", "/v3/tasks/"+id, nil, nil)
	require.Eventually(t, func() bool {
		code, _, _ := s.do("GET", "/v3/tasks/"+id, nil)
		return code == http.StatusNotFound
	}, 30*time.Second, 200*time.Millisecond)
	_, err = os.Stat(tk.TargetServer.Location)
	assert.True(t, os.IsNotExist(err), "the target folder is removed")
	assert.Contains(t, a.seen(), "DELETE")
}

// TestMigrationFailsAndRestarts: the agent fails the copy; the task ends in
// MIGRATE_FAIL with the SMS code; restart resumes from the copy.
func TestMigrationFailsAndRestarts(t *testing.T) {
	s := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newAgent(t, s, "db-02")
	starts := 0
	ok := copyAll(ctx)
	a.onCommand = func(a *scriptedAgent, name, taskID string) (string, string) {
		if name == "START" {
			starts++
			if starts == 1 {
				return "fail", "disk /dev/vda: read error"
			}
		}
		return ok(a, name, taskID)
	}
	go a.run(ctx)

	id := createTask(t, s, a, false)
	s.recordHistory(id, "fail-then-restart")
	tk := s.waitState(id, "MIGRATE_FAIL", 90*time.Second)
	var ej map[string]string
	require.NoError(t, json.Unmarshal([]byte(tk.ErrorJSON), &ej))
	assert.Equal(t, "SMS.1801", ej["error_code"])
	assert.Contains(t, ej["error_msg"], "read error")
	assert.Equal(t, "error", tk.SourceServer.State)
	for _, st := range tk.SubTasks {
		if st.Name == "FORMAT_DISK_LINUX_BLOCK" {
			assert.Equal(t, int32(100), st.Progress, "steps before the failure stay done")
		}
	}
	var errs struct {
		Count int `json:"count"`
	}
	s.call("GET", "/v3/errors", nil, &errs)
	assert.Equal(t, 1, errs.Count)

	s.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "restart"}, nil)
	s.waitState(id, "MIGRATE_SUCCESS", 90*time.Second)
	assert.Equal(t, 2, starts)
	assert.Equal(t, 1, a.count("SYNC"), "the final sync ran once, after the restart")
}

// TestServeKilledMidReplication: `smsflow serve` is killed -9 while the agent
// copies; started again on the same data dir, the run goes on where it was
// and completes.
func TestServeKilledMidReplication(t *testing.T) {
	s := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newAgent(t, s, "app-03")
	halfway := make(chan string, 1)
	resume := make(chan struct{})
	ok := copyAll(ctx)
	a.onCommand = func(a *scriptedAgent, name, taskID string) (string, string) {
		if name != "START" {
			return ok(a, name, taskID)
		}
		go func() {
			a.progress(ctx, taskID, "MIGRATE_LINUX_BLOCK", 50)
			halfway <- taskID
			<-resume
			for _, p := range []int32{60, 80, 100} {
				a.progress(ctx, taskID, "MIGRATE_LINUX_BLOCK", p)
			}
		}()
		return "success", "copying"
	}
	go a.run(ctx)

	id := createTask(t, s, a, false)
	s.recordHistory(id, "killed-mid-copy")
	select {
	case <-halfway:
	case <-time.After(90 * time.Second):
		t.Fatalf("the copy did not start\n%s", lastLines(s.log.String(), 40))
	}
	before := s.task(id)
	require.Equal(t, "RUNNING", before.State)

	s.kill()
	s.start() // same data dir: the same SQLite files, the same Temporal database
	close(resume)

	tk := s.waitState(id, "MIGRATE_SUCCESS", 120*time.Second)
	for _, st := range tk.SubTasks {
		assert.Equal(t, int32(100), st.Progress, st.Name)
	}
	assert.Equal(t, before.TargetServer.VMID, tk.TargetServer.VMID, "the same target, not a new one")
	assert.Equal(t, 1, a.count("START"), "the copy was not restarted from zero: %v", a.seen())
}

// TestContinuousSyncCloneAndLaunch: a syncing task copies once, then syncs
// every interval; a new speed window reaches the agent at once; clone_test
// clones the target while syncing goes on; stop and start resume syncing
// without a new full copy; test makes a last pass and launches the target.
func TestContinuousSyncCloneAndLaunch(t *testing.T) {
	s := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newAgent(t, s, "erp-04")
	a.onCommand = copyAll(ctx)
	go a.run(ctx)

	id := createTask(t, s, a, true)
	s.recordHistory(id, "sync-clone-stop-launch")
	s.waitState(id, "SYNCING", 90*time.Second)
	count := func(name string) int { return a.count(name) }
	require.Eventually(t, func() bool { return count("SYNC") >= 2 }, 30*time.Second, 100*time.Millisecond,
		"a syncing task syncs again after --sync-interval")

	rules := []map[string]any{{"start": "00:00", "end": "23:59", "speed": 100, "over_speed_threshold": 50}}
	s.call("POST", "/v3/tasks/"+id+"/speed-limit", map[string]any{"speed_limit": rules}, nil)
	// Pushed at once while a pass runs (SPEED_LIMIT), else with the next pass.
	require.Eventually(t, func() bool {
		p := a.lastParams("SPEED_LIMIT")
		if p == nil {
			p = a.lastParams("SYNC")
		}
		return p != nil && p["speed_limit"] == float64(100)
	}, 30*time.Second, 100*time.Millisecond, "the agent runs at the new limit: %v", a.seen())
	var got struct {
		SpeedLimit []struct {
			Start string `json:"start"`
			End   string `json:"end"`
			Speed int32  `json:"speed"`
		} `json:"speed_limit"`
	}
	s.call("GET", "/v3/tasks/"+id+"/speed-limit", nil, &got)
	require.Len(t, got.SpeedLimit, 1)
	assert.Equal(t, int32(100), got.SpeedLimit[0].Speed)

	s.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "clone_test"}, nil)
	require.Eventually(t, func() bool { return s.task(id).CloneServer.CloneState == "FINISHED" }, 60*time.Second,
		200*time.Millisecond, "clone_test made a copy of the target")
	clone := s.task(id).CloneServer
	m, _ := filepath.Glob(filepath.Join(s.dataDir, "targets", "*-clone-*", "disk-0.img"))
	assert.Len(t, m, 1, "the clone's disk is on the target side")
	assert.NotEmpty(t, clone.VMID)
	assert.Equal(t, "SYNCING", s.task(id).State, "syncing goes on after the clone")

	s.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "stop"}, nil)
	s.waitState(id, "ABORT", 60*time.Second)
	code, b, err := s.do("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "test"})
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, string(b), "SMS.7721", "no launch while stopped")
	s.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "start"}, nil)
	s.waitState(id, "SYNCING", 60*time.Second)

	syncs := count("SYNC")
	s.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "test"}, nil)
	tk := s.waitState(id, "MIGRATE_SUCCESS", 90*time.Second)
	assert.Equal(t, 1, count("START"), "stop and start did not copy everything again")
	assert.Greater(t, count("SYNC"), syncs, "launch makes a last pass")
	assert.Equal(t, "cutovered", tk.SourceServer.MigrationCycle)
}
