package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/testkit/diskimage"
	"github.com/smsflow/smsflow/internal/testkit/testutil"
)

// realAgent is a running sms-agent process.
type realAgent struct {
	t     testing.TB
	s     *server
	args  []string
	state string
	cmd   *exec.Cmd
	log   *testutil.Buffer
	// sk is the agent key's SK (its AK is in args).
	sk string
}

// startAgent runs an sms-agent as the install instructions set one up: with
// an agent key of its own, made by `smsflow admin`, not the admin's.
func startAgent(t testing.TB, s *server, extra ...string) *realAgent {
	ak, sk := s.agentKey(t)
	a := &realAgent{t: t, s: s, state: t.TempDir(), sk: sk}
	a.args = append([]string{"run", "--server", "http://" + s.http, "--ak", ak, "--project", s.creds.ProjectID,
		"--state-dir", a.state, "--poll-wait", "2s", "--progress-every", "500ms", "--log-format", "json"}, extra...)
	a.start()
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("sms-agent log:\n%s", lastLines(a.log.String(), 60))
		}
	})
	return a
}

func (a *realAgent) start() {
	a.cmd = exec.Command(agentBinary, a.args...)
	a.cmd.Env = append(os.Environ(), "SMS_AGENT_SK="+a.sk)
	a.log = &testutil.Buffer{}
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	require.NoError(a.t, a.cmd.Start())
}

func (a *realAgent) kill() {
	if a.cmd != nil && a.cmd.ProcessState == nil {
		_ = a.cmd.Process.Signal(syscall.SIGKILL)
		_, _ = a.cmd.Process.Wait()
	}
}

// waitSource waits for the agent's registration and returns the source id.
func (s *server) waitSource(t testing.TB, name string) string {
	t.Helper()
	var id string
	require.Eventually(t, func() bool {
		var out struct {
			Sources []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"source_servers"`
		}
		code, b, err := s.do("GET", "/v3/sources?name="+name, nil)
		if err != nil || code != 200 || json.Unmarshal(b, &out) != nil || len(out.Sources) == 0 {
			return false
		}
		id = out.Sources[0].ID
		return true
	}, 60*time.Second, 200*time.Millisecond, "the agent registers")
	return id
}

// imageAgent starts a real agent named name whose only disk, /dev/vda, is a
// fresh 256 MiB image (diskimage.Source with seed), and waits for its source.
func imageAgent(t testing.TB, s *server, name string, seed uint64) (img string, a *realAgent, sourceID string) {
	t.Helper()
	img = filepath.Join(t.TempDir(), "vda.img")
	require.NoError(t, diskimage.Source(img, 256<<20, seed))
	a = startAgent(t, s, "--name", name, "--disk-image", "/dev/vda="+img, "--only-images")
	return img, a, s.waitSource(t, name)
}

// changeBlocks rewrites n scattered 4 KiB pieces of the image.
func changeBlocks(t testing.TB, path string, n int, seed uint64) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(seed, seed))
	patch := make([]byte, 4096)
	for range n {
		for i := range patch {
			patch[i] = byte(r.Uint32())
		}
		// Past the first 2 MiB: the partition table and superblock stay.
		_, err := f.WriteAt(patch, (512+r.Int64N(st.Size()/4096-512))*4096)
		require.NoError(t, err)
	}
}

// sameHead tells whether the target's first len(source) bytes are the
// source's, comparing SHA-256 digests.
func sameHead(t testing.TB, source, target string) bool {
	t.Helper()
	st, err := os.Stat(source)
	require.NoError(t, err)
	return bytes.Equal(headSum(t, source, st.Size()), headSum(t, target, st.Size()))
}

// headSum is the SHA-256 digest of the file's first n bytes.
func headSum(t testing.TB, path string, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, io.LimitReader(f, n))
	require.NoError(t, err)
	return h.Sum(nil)
}

// TestRealAgentBlockMigration: `smsflow serve` and a real `sms-agent`
// migrate a 256 MiB disk image block by block: full copy, continuous sync,
// 1 % of the disk changed and synced, launch; the target image ends
// byte-for-byte the source, and the verification is recorded.
func TestRealAgentBlockMigration(t *testing.T) {
	s := newServer(t)
	img, a, src := imageAgent(t, s, "blk-01", 11)
	var facts struct {
		Disks []struct {
			Name            string `json:"name"`
			PartitionStyle  string `json:"partition_style"`
			PhysicalVolumes []struct {
				Index      int    `json:"index"`
				FileSystem string `json:"file_system"`
			} `json:"physical_volumes"`
		} `json:"disks"`
	}
	s.call("GET", "/v3/sources/"+src, nil, &facts)
	require.Len(t, facts.Disks, 1)
	assert.Equal(t, "/dev/vda", facts.Disks[0].Name)
	assert.Equal(t, "MBR", facts.Disks[0].PartitionStyle)
	require.Len(t, facts.Disks[0].PhysicalVolumes, 1, "the agent found the partition")
	assert.Equal(t, "ext4", facts.Disks[0].PhysicalVolumes[0].FileSystem)

	id := s.localTask("blk", "MIGRATE_BLOCK", src, map[string]any{"syncing": true})
	tk := s.waitState(id, "SYNCING", 3*time.Minute)
	target := filepath.Join(tk.TargetServer.Location, "disk-0.img")
	require.True(t, sameHead(t, img, target), "after the full copy the target is the source")

	changeBlocks(t, img, 64, 5) // ~1 % of the 256 KiB blocks
	// The next passes (every 2 s) carry the change.
	require.Eventually(t, func() bool { return sameHead(t, img, target) }, 60*time.Second, 500*time.Millisecond,
		"a sync pass carries the changed blocks\n%s", lastLines(a.log.String(), 20))

	// A network check while the task syncs: the agent measures the link to
	// the target's receiver and reports it.
	s.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "network_check"}, nil)
	var nc struct {
		Info *struct {
			Domain      *bool   `json:"domain_connectivity"`
			Destination *bool   `json:"destination_connectivity"`
			Delay       float64 `json:"network_delay"`
			Speed       float64 `json:"migration_speed"`
			Loss        float64 `json:"loss_percentage"`
			Evaluation  string  `json:"evaluation_result"`
		} `json:"network_check_info"`
	}
	require.Eventually(t, func() bool {
		s.call("GET", "/v3/tasks/"+id, nil, &nc)
		return nc.Info != nil
	}, 60*time.Second, 500*time.Millisecond, "the agent reports the network check\n%s", lastLines(a.log.String(), 20))
	require.NotNil(t, nc.Info.Destination)
	assert.True(t, *nc.Info.Destination, "the receiver answered")
	assert.True(t, *nc.Info.Domain)
	assert.Positive(t, nc.Info.Delay)
	assert.Greater(t, nc.Info.Speed, 10.0, "loopback carries more than 10 Mbit/s")
	// Loopback grades healthy; a CI machine starved of CPU may see slow
	// round trips, so only "failed" (target unreached) is wrong here.
	assert.Contains(t, []string{"healthy", "degraded"}, nc.Info.Evaluation)

	// The operator collects the agent's log without a shell on the source.
	s.call("POST", "/v3/tasks/"+id+"/log", map[string]string{"log_bucket": "support"}, nil)
	var logState struct {
		Status string `json:"log_collect_status"`
	}
	require.Eventually(t, func() bool {
		s.call("GET", "/v3/tasks/"+id, nil, &logState)
		return logState.Status == "UPLOADED"
	}, 30*time.Second, 200*time.Millisecond, "the agent uploads its log")
	code, agentLog, err := s.do("GET", "/v3/tasks/"+id+"/agent-log", nil)
	require.NoError(t, err)
	require.Equal(t, 200, code, string(agentLog))
	assert.Contains(t, string(agentLog), `"msg":"registered"`)
	assert.Contains(t, string(agentLog), `"msg":"network check"`)
	assert.NotContains(t, string(agentLog), s.creds.SK)

	changeBlocks(t, img, 16, 6)
	s.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "test"}, nil)
	tk = s.waitState(id, "MIGRATE_SUCCESS", 2*time.Minute)
	assert.True(t, sameHead(t, img, target), "launch made a last pass: identical at cutover")

	// The SDK declares result_list an array of JSON strings.
	var cons struct {
		List []string `json:"result_list"`
	}
	s.call("GET", "/v3/tasks/"+id+"/consistency-result", nil, &cons)
	require.Len(t, cons.List, 1)
	var res struct {
		DirCheck  string `json:"dir_check"`
		Total     int    `json:"num_total_files"`
		Different int    `json:"num_different_files"`
	}
	require.NoError(t, json.Unmarshal([]byte(cons.List[0]), &res))
	assert.Equal(t, "/dev/vda", res.DirCheck)
	assert.Equal(t, 1024, res.Total, "256 MiB in 256 KiB blocks, all compared")
	assert.Zero(t, res.Different)

	full := s.task(id)
	assert.Equal(t, "cutovered", full.SourceServer.MigrationCycle)
	assert.Contains(t, a.log.String(), `"msg":"pass done"`)
	assert.NotContains(t, a.log.String(), s.creds.SK, "the SK never reaches the agent's log")
	peak := peakRSSKiB(a.cmd.Process.Pid)
	require.Positive(t, peak)
	assert.Less(t, peak, int64(100<<10), "the agent stays under 100 MiB resident while copying the disk")
}

// TestRealAgentKilledMidCopy: the agent is killed with SIGKILL in the middle
// of the full copy and started again: it resumes from its checkpoint (it
// does not start over) and the target ends identical.
func TestRealAgentKilledMidCopy(t *testing.T) {
	s := newServer(t)
	img, a, src := imageAgent(t, s, "kill-01", 12)
	// 400 Mbit/s: the copy takes a few seconds, time to kill it midway.
	id := s.localTask("kill", "MIGRATE_BLOCK", src, map[string]any{"speed_limit": 400})
	s.waitCopyProgress(t, id, 20)
	a.kill()
	checkpoint, err := os.ReadFile(filepath.Join(a.state, "tasks", id, "blocks", "state.json"))
	require.NoError(t, err, "a checkpoint was written before the kill")
	assert.Contains(t, string(checkpoint), `"copied":`)

	a.start()
	tk := s.waitState(id, "MIGRATE_SUCCESS", 3*time.Minute)
	target := filepath.Join(tk.TargetServer.Location, "disk-0.img")
	assert.True(t, sameHead(t, img, target), "resumed, and identical")
	assert.Contains(t, a.log.String(), "resuming the copy in flight")
	// The resumed pass read fewer blocks than the disk has.
	assert.Less(t, lastStartBlocks(t, a.log.String()), 1024, "resumed from the checkpoint, not from zero")
}

// TestRealAgentServeKilledMidCopy: `smsflow serve` is killed with SIGKILL
// in the middle of a real copy (its worker hosts the target's receiver) and
// started again. The agent's link breaks; it runs the pass again once the
// receiver is back, from its checkpoint; the task ends MIGRATE_SUCCESS with
// the target identical.
func TestRealAgentServeKilledMidCopy(t *testing.T) {
	s := newServer(t)
	img, a, src := imageAgent(t, s, "srvkill-01", 13)
	id := s.localTask("srvkill", "MIGRATE_BLOCK", src, map[string]any{"speed_limit": 300})
	s.waitCopyProgress(t, id, 20)
	s.kill()
	s.start() // the same data dir: the run, the target and its receiver come back

	tk := s.waitState(id, "MIGRATE_SUCCESS", 3*time.Minute)
	target := filepath.Join(tk.TargetServer.Location, "disk-0.img")
	assert.True(t, sameHead(t, img, target), "the target is the source")
	logs := a.log.String()
	assert.Contains(t, logs, "the link to the target broke; running the pass again")
	assert.Less(t, lastStartBlocks(t, logs), 1024, "the pass resumed from its checkpoint, not from zero")
}

// TestRealAgentDiskShrinksMidCopy: the source disk shrinks in the middle of
// the copy; the task fails with SMS.0515 (the source disk changed), not
// with a silent short copy.
func TestRealAgentDiskShrinksMidCopy(t *testing.T) {
	s := newServer(t)
	img, _, src := imageAgent(t, s, "shrink-01", 14)
	// At 100 Mbit/s the first half of the disk takes several seconds: the
	// copy is far from 128 MiB when the disk is cut there.
	id := s.localTask("shrink", "MIGRATE_BLOCK", src, map[string]any{"speed_limit": 100})
	s.waitCopyProgress(t, id, 5)
	require.NoError(t, os.Truncate(img, 128<<20))

	tk := s.waitState(id, "MIGRATE_FAIL", 3*time.Minute)
	var fail struct {
		Code string `json:"error_code"`
	}
	require.NoError(t, json.Unmarshal([]byte(tk.ErrorJSON), &fail), tk.ErrorJSON)
	assert.Equal(t, "SMS.0515", fail.Code, tk.ErrorJSON)
}

// waitCopyProgress waits until the task's full copy is at least pct % done.
func (s *server) waitCopyProgress(t testing.TB, id string, pct int32) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, st := range s.task(id).SubTasks {
			if st.Name == "MIGRATE_LINUX_BLOCK" && st.Progress >= pct {
				return true
			}
		}
		return false
	}, 2*time.Minute, 100*time.Millisecond, "the copy gets going")
}

// lastStartBlocks is how many blocks the agent's last START pass read,
// from its JSON log ("pass done").
func lastStartBlocks(t testing.TB, logs string) int {
	t.Helper()
	return int(lastPass(t, logs, "START").Blocks)
}

// passDone is the agent's "pass done" log record of a block pass.
type passDone struct {
	Command   string `json:"command"`
	Blocks    int64  `json:"blocks"`
	Sent      int64  `json:"sent"`
	Zero      int64  `json:"zero"`
	Unchanged int64  `json:"unchanged"`
}

// lastPass is the agent's last "pass done" record of command (START,
// SYNC) in its JSON log.
func lastPass(t testing.TB, logs, command string) passDone {
	t.Helper()
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var rec struct {
			Msg string `json:"msg"`
			passDone
		}
		if json.Unmarshal([]byte(lines[i]), &rec) == nil && rec.Msg == "pass done" && rec.Command == command {
			return rec.passDone
		}
	}
	require.Failf(t, "no pass done", "the agent logged no %s pass:\n%s", command, lastLines(logs, 40))
	return passDone{}
}
