package web_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConsoleTaskSyncButton: on a finished task, start runs one more sync
// pass into the target (workflows.ValidateActionIn), so its button says
// "Sync" and explains it; before the first copy it says "Start".
func TestConsoleTaskSyncButton(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		tid, _ := newSourceTask(t, e, "sync-01")
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		const sync = `<button type="submit" name="operation" value="start" title="Run one more synchronization pass: ` +
			`copy the changes made on the source since the last pass into the target.">Sync</button>`
		for _, tc := range []struct {
			state string
			want  string
		}{
			{"READY", `<button type="submit" name="operation" value="start">Start</button>`},
			{"MIGRATE_FAIL", `<button type="submit" name="operation" value="start">Start</button>`},
			{"MIGRATE_SUCCESS", sync},
			{"SYNC_SUCCESS", sync},
			{"SYNC_FAIL", sync},
		} {
			setTask(t, e, tid, map[string]any{"state": tc.state})
			for _, path := range []string{"/console/tasks/" + tid, "/console/tasks/" + tid + "/live"} {
				r := b.get(path)
				require.Equal(t, http.StatusOK, r.status, path)
				assert.Contains(t, r.body, tc.want, "%s on %s", path, tc.state)
			}
		}
	})
}
