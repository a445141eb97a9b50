package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRealAgentTaskOptions: a real agent and receiver with a task's
// options. The receivers are advertised on a documentation address nothing
// answers on (192.0.2.1), so the copy and the start's network check reach
// the target only through the task's migration_ip; the task asked for no
// consistency check, so the agent reports no verification.
func TestRealAgentTaskOptions(t *testing.T) {
	s := newServer(t, "--receiver-listen", "127.0.0.1", "--receiver-advertise", "192.0.2.1")
	img, a, src := imageAgent(t, s, "opt-01", 21)
	id := s.localTask("opt", "MIGRATE_BLOCK", src, map[string]any{"migration_ip": "127.0.0.1", "use_public_ip": false,
		"start_network_check": true, "is_need_consistency_check": false})
	tk := s.waitState(id, "MIGRATE_SUCCESS", 3*time.Minute)
	assert.True(t, sameHead(t, img, filepath.Join(tk.TargetServer.Location, "disk-0.img")),
		"copied over the migration IP\n%s", lastLines(a.log.String(), 20))

	var nc struct {
		Info *struct {
			Destination *bool `json:"destination_connectivity"`
		} `json:"network_check_info"`
	}
	require.Eventually(t, func() bool {
		s.call("GET", "/v3/tasks/"+id, nil, &nc)
		return nc.Info != nil
	}, 30*time.Second, 500*time.Millisecond, "the start's network check was reported\n%s", lastLines(a.log.String(), 20))
	require.NotNil(t, nc.Info.Destination)
	assert.True(t, *nc.Info.Destination, "the network check reached the receiver at the migration IP")

	var cons struct {
		List []string `json:"result_list"`
	}
	s.call("GET", "/v3/tasks/"+id+"/consistency-result", nil, &cons)
	assert.Empty(t, cons.List, "no consistency check asked for, none made")
	assert.NotContains(t, a.log.String(), "192.0.2.1:", "the agent never dialed the advertised address")
}
