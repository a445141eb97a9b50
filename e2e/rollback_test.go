package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestRealAgentSyncFailsAndRollsBack: issue 13's rollback end to end, with
// `smsflow serve` and a real sms-agent moving real bytes. A finished task's
// sync pass snapshots the target, then fails for real: the source disk
// shrinks under the pass after part of the changed blocks reached the
// target (SYNC_FAIL, SMS.0515). sync_failed_rollback (RESETING, then
// MIGRATE_SUCCESS) puts the snapshot back: the target is, byte for byte,
// what it was before the pass. A pass on the still-cut disk is refused
// before it writes (SMS.0515). With the source whole again, the next pass
// sends every block — the hashes the agent recorded in the failed pass
// describe data the rollback took away — and the target is the source.
func TestRealAgentSyncFailsAndRollsBack(t *testing.T) {
	s := newServer(t)
	img, a, src := imageAgent(t, s, "rb-01", 15)
	// 128 Mbit/s: the 64 MiB of random bytes written below take the sync
	// pass about 4 s to send, time to cut the disk in the middle of them.
	id := s.localTask("rb", "MIGRATE_BLOCK", src, map[string]any{"speed_limit": 128})
	s.recordHistory(id, "real-agent-sync-rollback")
	tk := s.waitState(id, "MIGRATE_SUCCESS", 3*time.Minute)
	target := filepath.Join(tk.TargetServer.Location, "disk-0.img")
	require.True(t, sameHead(t, img, target), "after the full copy the target is the source")
	// The target is a sparse 40 GiB image (the local provider's minimum):
	// past the source's 256 MiB it holds nothing, and the digest of its
	// first 256 MiB stands for all of it (sameImage).
	const diskSize = 256 << 20
	require.True(t, holesAfter(t, target, diskSize), "nothing past the source's size on the target")
	beforePass := headSum(t, target, diskSize)
	rollback := map[string]string{"operation": "sync_failed_rollback"}
	refused(t, s, id, rollback, "SMS.7718", "no rollback of a task whose sync did not fail")

	// The source changes: 64 MiB from 8 MiB on (past the partition table
	// and the superblock), all of it in the disk's first half.
	const changedAt, changedLen, cutAt = 8 << 20, 64 << 20, 128 << 20
	changed := make([]byte, changedLen)
	r := rand.New(rand.NewPCG(16, 16))
	for i := range changed {
		changed[i] = byte(r.Uint32())
	}
	writeAt(t, img, changedAt, changed)
	// What the shrink takes away, to put it back afterwards.
	tail := filepath.Join(t.TempDir(), "tail")
	copyRange(t, img, cutAt, tail, 0, diskSize-cutAt)

	// The finished task syncs: the run snapshots the target, then the agent
	// sends the changed blocks. Once the first of them is on the target the
	// pass is under way: the disk is cut to 128 MiB under it, and the pass
	// fails on reaching the cut (what TestRealAgentDiskShrinksMidCopy does
	// to a full copy).
	s.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "start"}, nil)
	refused(t, s, id, rollback, "SMS.7718", "no rollback of a sync under way")
	first := changed[:4096]
	require.Eventually(t, func() bool { return bytes.Equal(readAt(t, target, changedAt, len(first)), first) },
		time.Minute, 20*time.Millisecond, "the sync pass writes the first changed block\n%s", lastLines(a.log.String(), 20))
	require.NoError(t, os.Truncate(img, cutAt))
	assert.False(t, bytes.Equal(readAt(t, target, changedAt+changedLen-4096, 4096), changed[changedLen-4096:]),
		"the disk was cut before the pass sent the last changed block")

	tk = s.waitState(id, "SYNC_FAIL", time.Minute)
	var fail struct {
		Code string `json:"error_code"`
	}
	require.NoError(t, json.Unmarshal([]byte(tk.ErrorJSON), &fail), tk.ErrorJSON)
	assert.Equal(t, "SMS.0515", fail.Code, tk.ErrorJSON)
	require.NotEmpty(t, tk.TargetSnapshotID, "the pass recorded the snapshot it took first")
	snapshot := filepath.Join(tk.TargetServer.Location, "snapshots", tk.TargetSnapshotID, "disk-0.img")
	require.FileExists(t, snapshot)
	assert.Equal(t, beforePass, headSum(t, snapshot, diskSize), "the snapshot is the target from before the pass")
	// The failed pass wrote part of its changes: the target is half-synced,
	// neither the snapshot nor the source (no test write stands in for it).
	assert.False(t, sameImage(t, snapshot, target, diskSize), "the failed pass changed the target")

	// The rollback: RESETING while the snapshot is copied back (seen when
	// the poll falls inside it), then finished as before the pass.
	s.call("POST", "/v3/tasks/"+id+"/action", rollback, nil)
	seen := map[string]bool{}
	require.Eventually(t, func() bool {
		tk = s.task(id)
		seen[tk.State] = true
		return tk.State == "MIGRATE_SUCCESS"
	}, time.Minute, 20*time.Millisecond, "the rollback finishes the task again\n%s", lastLines(s.log.String(), 20))
	t.Logf("states seen during the rollback: %v", seen)
	assert.False(t, seen["SYNC_SUCCESS"] || seen["SYNCING"], "a rollback runs no pass: %v", seen)
	assert.Empty(t, tk.ErrorJSON, "the sync's failure is cleared")
	assert.True(t, sameImage(t, snapshot, target, diskSize), "the target is the snapshot, byte for byte")
	assert.Equal(t, beforePass, headSum(t, target, diskSize), "the target is again what it was before the pass")
	refused(t, s, id, rollback, "SMS.7718", "the rollback is done: no second one")

	// A pass while the disk is still cut fails before it sends anything:
	// the disk is not the size it was copied at (SMS.0515; it used to be
	// synced at its new size and verified clean). The target stays what the
	// pass's own snapshot holds, and a second rollback finishes the task.
	s.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "start"}, nil)
	tk = s.waitState(id, "SYNC_FAIL", time.Minute)
	require.NoError(t, json.Unmarshal([]byte(tk.ErrorJSON), &fail), tk.ErrorJSON)
	assert.Equal(t, "SMS.0515", fail.Code, tk.ErrorJSON)
	require.NotEmpty(t, tk.TargetSnapshotID)
	snapshot = filepath.Join(tk.TargetServer.Location, "snapshots", tk.TargetSnapshotID, "disk-0.img")
	assert.True(t, sameImage(t, snapshot, target, diskSize), "the pass wrote nothing")
	assert.Equal(t, beforePass, headSum(t, target, diskSize))
	s.call("POST", "/v3/tasks/"+id+"/action", rollback, nil)
	s.waitState(id, "MIGRATE_SUCCESS", time.Minute)
	assert.True(t, sameImage(t, snapshot, target, diskSize))

	// The source whole again, the next pass: a new snapshot, every block
	// compared as unknown (resend), and the target is the source, the
	// changed bytes included.
	copyRange(t, tail, 0, img, cutAt, diskSize-cutAt)
	require.False(t, sameHead(t, img, target), "the source has the changes the target lacks")
	oldSnapshot := s.task(id).TargetSnapshotID
	s.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "start"}, nil)
	tk = s.waitState(id, "SYNC_SUCCESS", 2*time.Minute)
	assert.True(t, sameHead(t, img, target), "the pass after the rollback made the target the source")
	pass := lastPass(t, a.log.String(), "SYNC")
	assert.Equal(t, int64(1024), pass.Blocks, "the whole 256 MiB disk in 256 KiB blocks")
	assert.Zero(t, pass.Unchanged, "after a rollback the agent trusts none of its recorded hashes")
	assert.NotEqual(t, oldSnapshot, tk.TargetSnapshotID, "the pass took a snapshot of its own")
	assert.NoDirExists(t, filepath.Dir(snapshot), "the new snapshot replaced the old")
	refused(t, s, id, rollback, "SMS.7718", "no rollback of a sync that succeeded")
}

// sameImage tells whether two disk images are equal byte for byte: the
// same size, the same first n bytes (SHA-256) and only holes after them in
// both. Targets are sparse files of 40 GiB or more: hashing all of them
// would take minutes.
func sameImage(t testing.TB, a, b string, n int64) bool {
	t.Helper()
	sa, err := os.Stat(a)
	require.NoError(t, err)
	sb, err := os.Stat(b)
	require.NoError(t, err)
	return sa.Size() == sb.Size() && bytes.Equal(headSum(t, a, n), headSum(t, b, n)) &&
		holesAfter(t, a, n) && holesAfter(t, b, n)
}

// holesAfter tells whether the file holds no data (only holes, read as
// zeros) from off to its end, as the file system reports it (SEEK_DATA).
func holesAfter(t testing.TB, path string, off int64) bool {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Seek(off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return true
	}
	require.NoError(t, err)
	return false
}

// refused posts a task action that must be refused with 400 and code.
func refused(t testing.TB, s *server, id string, action map[string]string, code, why string) {
	t.Helper()
	status, body, err := s.do("POST", "/v3/tasks/"+id+"/action", action)
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, status, "%s: %s", why, body)
	assert.Contains(t, string(body), code, why)
}

// writeAt writes b into the file at off.
func writeAt(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// readAt reads n bytes of the file at off (fewer past its end).
func readAt(t testing.TB, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, n)
	m, err := f.ReadAt(b, off)
	if err != io.EOF {
		require.NoError(t, err)
	}
	return b[:m]
}

// copyRange copies n bytes of from at fromOff into to at toOff (to is
// created when missing).
func copyRange(t testing.TB, from string, fromOff int64, to string, toOff, n int64) {
	t.Helper()
	in, err := os.Open(from)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE, 0o600)
	require.NoError(t, err)
	written, err := io.Copy(io.NewOffsetWriter(out, toOff), io.NewSectionReader(in, fromOff, n))
	require.NoError(t, err)
	require.Equal(t, n, written)
	require.NoError(t, out.Close())
}
