package runner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/agent/smsapi"
)

// TestConsistencyCheckOption: a copy command whose task asked for no
// consistency check copies without verifying the target or reporting a
// verification; one that asks for it (or says nothing) verifies.
func TestConsistencyCheckOption(t *testing.T) {
	f, srv := newFakeAPI(t)
	const size = 1 << 20
	addr, src, dst := blockTarget(t, f, size)
	r, _ := startRunner(t, srv, t.TempDir(), func(c *Config) {
		c.DiskPaths = map[string]string{"/dev/vda": src}
		c.PollWait = time.Second
	})
	require.Eventually(t, func() bool { return r.SourceID() != "" }, 10*time.Second, 10*time.Millisecond)
	for i, tc := range []struct {
		option string // the command's consistency_check ("" : absent)
		checks int    // consistency reports after the pass
	}{{"false", 0}, {"true", 1}, {"", 2}} {
		p := fmt.Sprintf(`{"task_id":"t3","migrate_type":"MIGRATE_BLOCK","target_addr":%q,"disks":[{"index":0,"name":"/dev/vda","size":%d}]`, addr, size)
		if tc.option != "" {
			p += `,"consistency_check":` + tc.option
		}
		id := fmt.Sprintf("sync-%d", i)
		f.commands <- smsapi.Command{Name: "SYNC", ID: id, Param: json.RawMessage(p + "}")}
		got := f.next(t)
		assert.Equal(t, commandResult{Name: "SYNC", ID: id, Result: "success", Detail: map[string]string{}}, got, "option %q", tc.option)
		f.mu.Lock()
		assert.Equal(t, tc.checks, f.consistency, "option %q", tc.option)
		f.mu.Unlock()
	}
	sameFiles(t, src, dst)
}

// TestResendOption: after a rollback put the target back, a SYNC with
// "resend" sends every block again; without it the recorded hashes leave
// the restored (here: zeroed) target as it is.
func TestResendOption(t *testing.T) {
	f, srv := newFakeAPI(t)
	const size = 1 << 20
	addr, src, dst := blockTarget(t, f, size)
	r, _ := startRunner(t, srv, t.TempDir(), func(c *Config) {
		c.DiskPaths = map[string]string{"/dev/vda": src}
		c.PollWait = time.Second
	})
	require.Eventually(t, func() bool { return r.SourceID() != "" }, 10*time.Second, 10*time.Millisecond)
	sync := func(id, extra string) {
		p := fmt.Sprintf(`{"task_id":"t3","migrate_type":"MIGRATE_BLOCK","target_addr":%q,"consistency_check":false,"disks":[{"index":0,"name":"/dev/vda","size":%d}]%s}`,
			addr, size, extra)
		f.commands <- smsapi.Command{Name: "SYNC", ID: id, Param: json.RawMessage(p)}
		assert.Equal(t, "success", f.next(t).Result, id)
	}
	sync("first", "")
	sameFiles(t, src, dst)
	require.NoError(t, os.WriteFile(dst, make([]byte, size), 0o600)) // the rollback
	sync("plain", "")
	got, err := os.ReadFile(dst)
	require.NoError(t, err)
	want, err := os.ReadFile(src)
	require.NoError(t, err)
	assert.False(t, bytes.Equal(want, got), "without resend the hashes hide the rollback")
	sync("resend", `,"resend":true`)
	sameFiles(t, src, dst)
}
