package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/testkit/diskimage"
	"github.com/smsflow/smsflow/internal/testkit/treecmp"
)

const sparseFileSize = 100 << 20

// fileTree writes the source of the file-level migration: 10,000 regular
// files (some empty) over nested directories, odd names, symlinks (relative,
// absolute, dangling, to a directory), hard links, other owners, and a
// 100 MiB sparse file with a few data islands. It returns the regular files'
// paths (each once, hard links aside).
func fileTree(t testing.TB, root string, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, seed))
	var files []string
	put := func(rel string, size int, mode os.FileMode) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		b := make([]byte, size)
		for i := range b {
			b[i] = "abcdefghij klmnopqrstuvwxyz\n"[r.IntN(28)]
		}
		require.NoError(t, os.WriteFile(p, b, mode))
		require.NoError(t, os.Chmod(p, mode)) // past the umask
		files = append(files, rel)
	}
	for i := range 9985 { // with the 15 below: 10,000 files
		size := r.IntN(8 << 10)
		if i%100 == 0 {
			size = 0
		}
		put(fmt.Sprintf("srv/app%02d/%s/f%05d", i%40, []string{"etc", "lib/x", "var/log/deep/er"}[i%3], i), size, 0o644)
	}
	for i, n := range []string{"with space.txt", "new\nline", "ünïcødé-文件.txt", "-dash", "tab\tname", "back\\slash", "x;rm -rf", "'quote\"", "%s%n", " "} {
		put(filepath.Join("odd", n), 10+i, 0o640)
	}
	put("modes/setuid", 4, 0o4755)
	put("modes/private", 6, 0o600)
	put("modes/none", 1, 0)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "modes/sticky"), 0o755))
	require.NoError(t, os.Chmod(filepath.Join(root, "modes/sticky"), 0o1777))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "empty/dir"), 0o700))

	require.NoError(t, os.MkdirAll(filepath.Join(root, "links"), 0o755))
	for name, target := range map[string]string{"rel": "../srv/app00/etc/f00000", "abs": "/etc/hostname",
		"dangling": "no/such/file", "dir": "../srv/app01"} {
		require.NoError(t, os.Symlink(target, filepath.Join(root, "links", name)))
	}
	put("hard/a", 3000, 0o644)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "hard/other"), 0o755))
	require.NoError(t, os.Link(filepath.Join(root, "hard/a"), filepath.Join(root, "hard/other/b")))
	require.NoError(t, os.Link(filepath.Join(root, "hard/a"), filepath.Join(root, "srv/c")))
	if os.Geteuid() == 0 {
		for _, p := range []string{"modes/private", "srv/app03", "odd/-dash", "links/abs"} {
			require.NoError(t, os.Lchown(filepath.Join(root, p), 1234, 5678))
		}
	}

	sp := filepath.Join(root, "images/sparse.img")
	require.NoError(t, os.MkdirAll(filepath.Dir(sp), 0o755))
	f, err := os.Create(sp)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(sparseFileSize))
	island := make([]byte, 64<<10)
	for _, off := range []int64{0, 10<<20 + 777, 50 << 20, sparseFileSize - int64(len(island))} {
		for i := range island {
			island[i] = byte(r.Uint32())
		}
		_, err := f.WriteAt(island, off)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	files = append(files, "images/sparse.img")
	return files
}

// changeFiles rewrites n of the files (new content and size), deletes one
// more and adds one, as a live server would between passes. It returns the
// files left.
func changeFiles(t testing.TB, root string, files []string, n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, seed))
	for range n {
		p := filepath.Join(root, files[r.IntN(len(files)-1)]) // the sparse file stays
		st, err := os.Stat(p)
		require.NoError(t, err)
		b := fmt.Appendf(nil, "changed %d at %d\n", r.Uint64(), time.Now().UnixNano())
		require.NoError(t, os.WriteFile(p, append(b, make([]byte, r.IntN(4096))...), st.Mode()))
	}
	gone := r.IntN(len(files) - 1)
	require.NoError(t, os.Remove(filepath.Join(root, files[gone])))
	files = append(files[:gone:gone], files[gone+1:]...)
	require.NoError(t, os.WriteFile(filepath.Join(root, "srv", fmt.Sprintf("new-%d", seed)), []byte("new file"), 0o644))
	return files
}

// treeDiff compares the trees with their metadata (treecmp).
func treeDiff(t testing.TB, src, dst string) []string {
	a, err := treecmp.Snapshot(src)
	require.NoError(t, err)
	b, err := treecmp.Snapshot(dst)
	if err != nil {
		return []string{err.Error()}
	}
	d := treecmp.Diff(a, b)
	if len(d) > 10 {
		d = append(d[:10], fmt.Sprintf("… and %d more", len(d)-10))
	}
	return d
}

// TestRealAgentFileMigration: `smsflow serve` and a real `sms-agent`
// migrate a 10,000-file tree file by file: full copy, continuous sync with
// 1 % of the files changed (plus one deleted, one added), launch. The
// target tree ends identical to the source: content, modes, owners, mtimes,
// symlinks, hard links, odd names, and the sparse file still sparse.
func TestRealAgentFileMigration(t *testing.T) {
	s := newServer(t)
	work := t.TempDir()
	src := filepath.Join(work, "src")
	files := fileTree(t, src, 21)
	// Registration still describes a disk; the copy reads --file-root.
	img := filepath.Join(work, "vda.img")
	require.NoError(t, diskimage.Source(img, 64<<20, 21))
	a := startAgent(t, s, "--name", "file-01", "--disk-image", "/dev/vda="+img, "--only-images", "--file-root", src)
	id := s.waitSource(t, "file-01")

	task := s.localTask("file", "MIGRATE_FILE", id, map[string]any{"syncing": true})
	tk := s.waitState(task, "SYNCING", 3*time.Minute)
	dst := filepath.Join(tk.TargetServer.Location, "root")
	require.Empty(t, treeDiff(t, src, dst), "after the full copy the target tree is the source's")
	var st, dt = statOf(t, filepath.Join(src, "images/sparse.img")), statOf(t, filepath.Join(dst, "images/sparse.img"))
	assert.Less(t, dt.Blocks*512, int64(4<<20), "the 100 MiB sparse file stays sparse on the target (%d bytes allocated)", dt.Blocks*512)
	assert.Equal(t, st.Size, dt.Size)

	files = changeFiles(t, src, files, len(files)/100, 7)
	var last []string
	require.Eventually(t, func() bool { last = treeDiff(t, src, dst); return len(last) == 0 },
		90*time.Second, 2*time.Second, "a sync pass carries the changes: %v\n%s", &last, lastLines(a.log.String(), 20))

	changeFiles(t, src, files, 20, 8)
	s.call("POST", "/v3/tasks/"+task+"/action", map[string]string{"operation": "test"}, nil)
	s.waitState(task, "MIGRATE_SUCCESS", 3*time.Minute)
	assert.Empty(t, treeDiff(t, src, dst), "launch made a last pass: identical at cutover")

	var cons struct {
		List []string `json:"result_list"`
	}
	s.call("GET", "/v3/tasks/"+task+"/consistency-result", nil, &cons)
	require.NotEmpty(t, cons.List)
	var res struct {
		Total     int `json:"num_total_files"`
		Different int `json:"num_different_files"`
		Missing   int `json:"num_target_miss_files"`
		Extra     int `json:"num_target_more_files"`
	}
	require.NoError(t, json.Unmarshal([]byte(cons.List[len(cons.List)-1]), &res))
	snap, err := treecmp.Snapshot(src)
	require.NoError(t, err)
	regular := 0
	for _, n := range snap {
		if n.IsFile() {
			regular++
		}
	}
	assert.Equal(t, 10002, regular, "10,000 files and two more names for a hard-linked one")
	assert.Equal(t, regular, res.Total, "every regular file was compared")
	assert.Zero(t, res.Different+res.Missing+res.Extra, "%+v", res)
	assert.NotContains(t, a.log.String(), s.creds.SK, "the SK never reaches the agent's log")
	peak := peakRSSKiB(a.cmd.Process.Pid)
	require.Positive(t, peak)
	assert.Less(t, peak, int64(100<<10), "the agent stays under 100 MiB resident while copying the tree")
	t.Logf("agent peak RSS %.1f MiB", float64(peak)/1024)
}

type fileStat struct{ Size, Blocks int64 }

func statOf(t testing.TB, p string) fileStat {
	m, err := treecmp.Snapshot(p)
	require.NoError(t, err)
	n := m["."]
	return fileStat{Size: n.Size, Blocks: n.Blocks}
}
