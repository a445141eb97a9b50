package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSystemdUnit: deploy/sms-agent.service starts `sms-agent run` with
// flags the agent has, restarts it, and its sample config uses keys the
// agent reads.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../deploy/sms-agent.service")
	require.NoError(t, err)
	unit := string(b)
	var exec string
	for _, l := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			exec = v
		}
	}
	require.NotEmpty(t, exec)
	args := strings.Fields(exec)
	require.GreaterOrEqual(t, len(args), 2)
	assert.Equal(t, "run", args[1])
	// The flags parse (the run then stops at the unreadable config file).
	err = runAgent(t.Context(), args[2:], new(strings.Builder))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/etc/sms-agent/agent.conf", "the flags parsed; only the file is missing here")
	assert.Contains(t, unit, "Restart=always")
	assert.Contains(t, unit, "WantedBy=multi-user.target")

	// The commented sample config is a valid config.
	var conf []string
	inSample := false
	for _, l := range strings.Split(unit, "\n") {
		switch {
		case strings.HasPrefix(l, "# /etc/sms-agent/agent.conf:"):
			inSample = true
		case inSample && strings.HasPrefix(l, "#   "):
			conf = append(conf, strings.TrimPrefix(l, "#   "))
		case inSample:
			inSample = false
		}
	}
	require.Len(t, conf, 4)
	p := t.TempDir() + "/agent.conf"
	require.NoError(t, os.WriteFile(p, []byte(strings.Join(conf, "\n")+"\n"), 0o600))
	t.Setenv("SMS_AGENT_SK", "")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	err = runAgent(ctx, []string{"--config", p, "--state-dir", t.TempDir(), "--poll-wait", "1s"}, new(strings.Builder))
	// Everything is set: the agent keeps trying the example server until
	// the deadline.
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}
