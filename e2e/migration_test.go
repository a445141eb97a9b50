package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func createTask(t *testing.T, s *server, a *scriptedAgent, syncing bool) string {
	t.Helper()
	var out struct {
		ID string `json:"id"`
	}
	s.call("POST", "/v3/tasks", map[string]any{
		"name": "e2e", "type": "MIGRATE_BLOCK", "os_type": "LINUX", "source_server": map[string]any{"id": a.sourceID},
		"target_server": map[string]any{"vm_id": "", "name": "e2e-target"}, "region_name": "local", "region_id": "local",
		"project_name": "default", "project_id": s.creds.ProjectID, "syncing": syncing, "speed_limit": 500,
	}, &out)
	return out.ID
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
	assert.Equal(t, 1, strings.Count(strings.Join(a.seen(), ","), "SYNC"), "the final sync ran once, after the restart")
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
	seen := strings.Join(a.seen(), ",")
	assert.Equal(t, 1, strings.Count(seen, "START"), "the copy was not restarted from zero: %s", seen)
}
