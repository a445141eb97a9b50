package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemo runs the README's five-minute demo (internal/tools/demo) against
// serve, twice: each run registers a new source, migrates its disk and
// finds the target identical.
func TestDemo(t *testing.T) {
	s := newServer(t)
	work := t.TempDir()
	for run := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, demoBinary, "--server", "http://"+s.http, "--data-dir", s.dataDir,
			"--work", work, "--size-mib", "64", "--speed-limit", "0").CombinedOutput()
		cancel()
		require.NoError(t, err, "run %d:\n%s", run, out)
		assert.Contains(t, string(out), "identical to the source: true", "run %d", run)
		assert.Contains(t, string(out), "MIGRATE_SUCCESS", "run %d", run)
		assert.True(t, strings.Contains(string(out), "/workflows/migration%2F"), "run %d links its Temporal run:\n%s", run, out)
	}
}
