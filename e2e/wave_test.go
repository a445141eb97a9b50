package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waveWatch follows what the scripted agents of a wave do: how many copy
// at once, and the limits the copying ones were given.
type waveWatch struct {
	mu         sync.Mutex
	copying    map[string]bool
	limit      map[string]float64
	maxCopying int
	violations []string
	budget     float64
}

func (w *waveWatch) check(what string) {
	n, sum := 0, 0.0
	for src, c := range w.copying {
		if c {
			n++
			sum += w.limit[src]
			if w.limit[src] <= 0 {
				w.violations = append(w.violations, what+": "+src+" copies without a limit")
			}
		}
	}
	w.maxCopying = max(w.maxCopying, n)
	if n > 5 {
		w.violations = append(w.violations, fmt.Sprintf("%s: %d copying", what, n))
	}
	if sum > w.budget {
		w.violations = append(w.violations, fmt.Sprintf("%s: limits of the copying agents sum to %.0f", what, sum))
	}
}

// agent is a scripted agent whose copy takes a couple of seconds, and
// which records its limits.
func (w *waveWatch) agent(ctx context.Context) func(a *scriptedAgent, name, taskID string) (string, string) {
	return func(a *scriptedAgent, name, taskID string) (string, string) {
		lim, _ := a.lastParams(name)["speed_limit"].(float64)
		w.mu.Lock()
		switch name {
		case "SPEED_LIMIT":
			w.limit[a.sourceID] = lim
			w.check("SPEED_LIMIT")
		case "START":
			w.limit[a.sourceID] = lim
			w.copying[a.sourceID] = true
			w.check("START")
		}
		w.mu.Unlock()
		switch name {
		case "START":
			go func() {
				for _, p := range []int32{10, 50, 90} {
					a.progress(ctx, taskID, "MIGRATE_LINUX_BLOCK", p)
					time.Sleep(700 * time.Millisecond)
				}
				w.mu.Lock()
				w.copying[a.sourceID] = false
				w.mu.Unlock()
				a.progress(ctx, taskID, "MIGRATE_LINUX_BLOCK", 100)
			}()
		case "SYNC":
			go a.progress(ctx, taskID, "SYNC_LINUX_BLOCK", 100)
		}
		return "success", "done"
	}
}

// TestWaveOfTwentyScriptedAgents runs a 20-member wave through serve with
// its embedded Temporal: max_concurrent 5 and a budget of 500 Mbit/s. Never
// more than 5 agents copy, the limits the copying agents are given never
// sum above 500, the wave reaches DONE with every member cut over and its
// downtime measured.
func TestWaveOfTwentyScriptedAgents(t *testing.T) {
	s := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &waveWatch{copying: map[string]bool{}, limit: map[string]float64{}, budget: 500}
	var members []map[string]any
	for i := 0; i < 20; i++ {
		a := newAgent(t, s, fmt.Sprintf("wave-%02d", i))
		a.onCommand = w.agent(ctx)
		go a.run(ctx)
		members = append(members, map[string]any{"source_id": a.sourceID})
	}
	var mps struct {
		MigProjects []struct {
			ID        string `json:"id"`
			IsDefault bool   `json:"isdefault"`
		} `json:"migprojects"`
	}
	s.call("GET", "/v3/migprojects", nil, &mps)
	require.NotEmpty(t, mps.MigProjects)
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
		"name": "wave-e2e", "project_id": mp, "task_defaults": map[string]any{"type": "MIGRATE_BLOCK"},
		"members": members, "max_concurrent": 5, "bandwidth_budget": map[string]any{"default_mbps": 500},
		"time_zone": "Europe/Berlin", "cutover_mode": "auto", "max_failures": 0,
	}, &created)
	require.NotEmpty(t, created.ID)
	require.Eventually(t, func() bool { // the agents have polled: preflight passes
		code, _, err := s.do("POST", "/v3/waves/"+created.ID+"/action", map[string]string{"operation": "start"})
		return err == nil && code == http.StatusOK
	}, 30*time.Second, 500*time.Millisecond)

	var show struct {
		State   string `json:"state"`
		Members []struct {
			State    string   `json:"state"`
			Downtime *float64 `json:"downtime_seconds"`
		} `json:"members"`
	}
	require.Eventually(t, func() bool {
		s.call("GET", "/v3/waves/"+created.ID, nil, &show)
		return show.State == "DONE" || show.State == "PAUSED" || show.State == "CANCELED"
	}, 4*time.Minute, time.Second)
	require.Equal(t, "DONE", show.State)
	require.Len(t, show.Members, 20)
	for i, m := range show.Members {
		assert.Equal(t, "DONE", m.State, i)
		if assert.NotNil(t, m.Downtime, i) {
			assert.Greater(t, *m.Downtime, 0.0, i)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	assert.Empty(t, w.violations)
	assert.Equal(t, 5, w.maxCopying, "the window is used in full")
}
