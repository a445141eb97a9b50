//go:build linux

// Package treecmp describes a directory tree entry by entry (type, mode,
// owner, mtime, content digest, symlink target, device, inode) and lists
// how two trees differ. File-level replication is judged by it: the unit
// tests of agent/filesync and the end-to-end migration of a tree.
package treecmp

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Node is one entry of a tree.
type Node struct {
	Type   uint32 // S_IFMT bits
	Mode   uint32 // permission bits with setuid, setgid, sticky
	UID    uint32
	GID    uint32
	Mtime  int64 // nanoseconds
	Size   int64 // regular files
	Sum    [32]byte
	Target string // symlinks
	Ino    uint64
	Rdev   uint64
	Blocks int64 // 512-byte blocks allocated
}

// IsFile tells whether the entry is a regular file.
func (n Node) IsFile() bool { return n.Type == unix.S_IFREG }

// Snapshot describes every entry under root, keyed by its path relative to
// root ("." is the root itself). Symlinks are not followed.
func Snapshot(root string) (map[string]Node, error) {
	out := map[string]Node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", p, err)
		}
		n := Node{Type: st.Mode & unix.S_IFMT, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
			Mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec, Ino: st.Ino, Rdev: st.Rdev, Blocks: st.Blocks}
		switch n.Type {
		case unix.S_IFREG:
			n.Size = st.Size
			if n.Sum, err = digest(p); err != nil {
				return err
			}
		case unix.S_IFLNK:
			if n.Target, err = os.Readlink(p); err != nil {
				return fmt.Errorf("readlink %s: %w", p, err)
			}
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", root, err)
	}
	return out, nil
}

func digest(p string) (sum [32]byte, err error) {
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("read %s: %w", p, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Diff lists, sorted, how dst fails to mirror src: missing and extra
// entries, types, content, modes (not of symlinks), owners, mtimes, symlink
// targets, device numbers, and hard links: regular files must share an
// inode on dst exactly where they do on src. Empty means identical.
func Diff(src, dst map[string]Node) []string {
	var problems []string
	for p, x := range src {
		y, ok := dst[p]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing on target: %q", p))
			continue
		}
		if x.Type != y.Type {
			problems = append(problems, fmt.Sprintf("%q: type %o vs %o", p, x.Type, y.Type))
			continue
		}
		if x.Type != unix.S_IFLNK && x.Mode != y.Mode {
			problems = append(problems, fmt.Sprintf("%q: mode %o vs %o", p, x.Mode, y.Mode))
		}
		if x.UID != y.UID || x.GID != y.GID {
			problems = append(problems, fmt.Sprintf("%q: owner %d:%d vs %d:%d", p, x.UID, x.GID, y.UID, y.GID))
		}
		if x.Mtime != y.Mtime {
			problems = append(problems, fmt.Sprintf("%q (%o): mtime %d vs %d", p, x.Type, x.Mtime, y.Mtime))
		}
		if x.Size != y.Size || x.Sum != y.Sum {
			problems = append(problems, fmt.Sprintf("%q: content differs (%d vs %d bytes)", p, x.Size, y.Size))
		}
		if x.Target != y.Target || x.Rdev != y.Rdev {
			problems = append(problems, fmt.Sprintf("%q: target %q vs %q", p, x.Target, y.Target))
		}
	}
	for p := range dst {
		if _, ok := src[p]; !ok {
			problems = append(problems, fmt.Sprintf("extra on target: %q", p))
		}
	}
	ga, gb := linkGroups(src), linkGroups(dst)
	for p, g := range ga {
		if gb[p] == g {
			continue
		}
		if strings.Contains(g, "|") {
			problems = append(problems, fmt.Sprintf("%q: hard link group %q vs %q", p, g, gb[p]))
		} else if dst[p].IsFile() {
			problems = append(problems, fmt.Sprintf("%q: unexpectedly linked %q", p, gb[p]))
		}
	}
	sort.Strings(problems)
	return problems
}

// linkGroups maps each regular file to the sorted, "|"-joined list of the
// paths sharing its inode (itself alone when it has no other link).
func linkGroups(m map[string]Node) map[string]string {
	byIno := map[uint64][]string{}
	for p, n := range m {
		if n.IsFile() {
			byIno[n.Ino] = append(byIno[n.Ino], p)
		}
	}
	out := map[string]string{}
	for _, ps := range byIno {
		sort.Strings(ps)
		for _, p := range ps {
			out[p] = strings.Join(ps, "|")
		}
	}
	return out
}
