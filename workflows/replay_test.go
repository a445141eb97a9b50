package workflows

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistories replays the histories of real runs (recorded
// with SMSFLOW_RECORD_HISTORIES by the e2e suite, and for waves by
// tserver's TestRecordWaveHistories; committed in testdata)
// against today's workflow code. A change that would break the runs in
// flight on a user's server — new or reordered activities, timers or
// side effects without workflow.GetVersion — fails here. The bounded-*
// histories are the runs of one task that continued as new at every kind
// of point (TestBoundedHistoryOnTheServer).
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 10, "the recorded histories are committed")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(MigrationWorkflow)
			r.RegisterWorkflow(WaveWorkflow)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}

// TestRecordedHistoriesCoverEveryVersion: each workflow.GetVersion in the
// code is replayed both ways — some recorded run has its marker (the new
// branch) and some has none (runs from before the change).
func TestRecordedHistoriesCoverEveryVersion(t *testing.T) {
	sources, err := filepath.Glob("*.go")
	require.NoError(t, err)
	var changes []string
	for _, f := range sources {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`GetVersion\(ctx, "([^"]+)"`).FindAllStringSubmatch(string(src), -1) {
			changes = append(changes, m[1])
		}
	}
	require.Contains(t, changes, "bounded-history")
	require.Contains(t, changes, "wave-members-before-state", "the wave's files are read too")
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	with, without := map[string]int{}, map[string]int{}
	for _, f := range files {
		markers := recordedChanges(t, f)
		for _, c := range changes {
			if markers[c] {
				with[c]++
			} else {
				without[c]++
			}
		}
	}
	for _, c := range changes {
		assert.Positive(t, with[c], "a recorded run took %s's new branch", c)
		assert.Positive(t, without[c], "a recorded run predates %s", c)
	}
}

// recordedChanges is the set of change ids a history's version markers name.
func recordedChanges(t *testing.T, file string) map[string]bool {
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var h historypb.History
	require.NoError(t, temporalproto.CustomJSONUnmarshalOptions{}.Unmarshal(b, &h))
	out := map[string]bool{}
	for _, ev := range h.Events {
		a := ev.GetMarkerRecordedEventAttributes()
		if a == nil || a.MarkerName != "Version" {
			continue
		}
		var id string
		if p := a.Details["change-id"]; p != nil && converter.GetDefaultDataConverter().FromPayloads(p, &id) == nil {
			out[id] = true
		}
	}
	return out
}
