package workflows

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistories replays the histories of real runs (recorded
// with SMSFLOW_RECORD_HISTORIES by the e2e suite, and for waves by
// tserver's TestRecordWaveHistories; committed in testdata)
// against today's workflow code. A change that would break the runs in
// flight on a user's server — new or reordered activities, timers or
// side effects without workflow.GetVersion — fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4, "the recorded histories are committed")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(MigrationWorkflow)
			r.RegisterWorkflow(WaveWorkflow)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
