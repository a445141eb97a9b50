//go:build linux

package treecmp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// tree writes a small tree with a file, a hard link, a symlink and a
// directory, all with fixed mtimes.
func tree(t *testing.T, root string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "d/f"), []byte("hello"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "g"), []byte("world"), 0o600))
	require.NoError(t, os.Link(filepath.Join(root, "d/f"), filepath.Join(root, "h")))
	require.NoError(t, os.Symlink("d/f", filepath.Join(root, "s")))
	when := time.Unix(1700000000, 123456789)
	// The link's own time (Chtimes would follow it), then the rest.
	ts := []unix.Timespec{unix.NsecToTimespec(when.UnixNano()), unix.NsecToTimespec(when.UnixNano())}
	require.NoError(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, "s"), ts, unix.AT_SYMLINK_NOFOLLOW))
	for _, p := range []string{"d/f", "g", "d", "."} {
		require.NoError(t, os.Chtimes(filepath.Join(root, p), when, when))
	}
}

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dst string)
		want   string // "" = identical
	}{
		{"identical", func(*testing.T, string) {}, ""},
		{"content", func(t *testing.T, dst string) {
			st, _ := os.Stat(filepath.Join(dst, "g"))
			require.NoError(t, os.WriteFile(filepath.Join(dst, "g"), []byte("WORLD"), 0o600))
			require.NoError(t, os.Chtimes(filepath.Join(dst, "g"), st.ModTime(), st.ModTime()))
		}, `"g": content differs`},
		{"mode", func(t *testing.T, dst string) { require.NoError(t, os.Chmod(filepath.Join(dst, "g"), 0o644)) }, `"g": mode 600 vs 644`},
		{"mtime", func(t *testing.T, dst string) {
			require.NoError(t, os.Chtimes(filepath.Join(dst, "d"), time.Unix(1, 0), time.Unix(1, 0)))
		}, `"d" (40000): mtime`},
		{"missing", func(t *testing.T, dst string) { require.NoError(t, os.Remove(filepath.Join(dst, "s"))) }, `missing on target: "s"`},
		{"extra", func(t *testing.T, dst string) {
			require.NoError(t, os.WriteFile(filepath.Join(dst, "x"), nil, 0o644))
		}, `extra on target: "x"`},
		{"symlink target", func(t *testing.T, dst string) {
			require.NoError(t, os.Remove(filepath.Join(dst, "s")))
			require.NoError(t, os.Symlink("g", filepath.Join(dst, "s")))
		}, `"s": target "d/f" vs "g"`},
		{"hard link broken", func(t *testing.T, dst string) {
			p := filepath.Join(dst, "h")
			st, _ := os.Stat(p)
			require.NoError(t, os.Remove(p))
			require.NoError(t, os.WriteFile(p, []byte("hello"), 0o644))
			require.NoError(t, os.Chtimes(p, st.ModTime(), st.ModTime()))
		}, `hard link group "d/f|h" vs`},
		{"type", func(t *testing.T, dst string) {
			require.NoError(t, os.Remove(filepath.Join(dst, "g")))
			require.NoError(t, os.Mkdir(filepath.Join(dst, "g"), 0o600))
		}, `"g": type`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
			tree(t, src)
			tree(t, dst)
			tc.change(t, dst)
			// Changing an entry changes its directory's mtime: put it back.
			when := time.Unix(1700000000, 123456789)
			if tc.name != "mtime" {
				require.NoError(t, os.Chtimes(dst, when, when))
			}
			a, err := Snapshot(src)
			require.NoError(t, err)
			b, err := Snapshot(dst)
			require.NoError(t, err)
			got := Diff(a, b)
			if tc.want == "" {
				require.Empty(t, got)
				return
			}
			require.NotEmpty(t, got)
			require.True(t, strings.Contains(strings.Join(got, "\n"), tc.want), "want %q in %q", tc.want, got)
		})
	}
}

func TestSnapshotMissingRoot(t *testing.T) {
	_, err := Snapshot(filepath.Join(t.TempDir(), "nope"))
	require.Error(t, err)
}
