//go:build linux

package filesync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/agent/procfs"
)

// defaultExcludes are never copied when the root is "/": they hold the
// running system's kernel views and scratch space. The directories
// themselves are created on the target (empty), as the system mounts on
// them at boot.
var defaultExcludes = []string{"proc", "sys", "dev", "run", "tmp"}

// virtualFS are file system types whose mounts are not copied when the root
// is "/": kernel views, memory file systems, network shares, images and
// container layers. Their mount points are created on the target, empty.
var virtualFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "ramfs": true,
	"cgroup": true, "cgroup2": true, "securityfs": true, "debugfs": true, "tracefs": true,
	"configfs": true, "fusectl": true, "pstore": true, "bpf": true, "mqueue": true,
	"hugetlbfs": true, "autofs": true, "binfmt_misc": true, "rpc_pipefs": true, "nsfs": true,
	"efivarfs": true, "selinuxfs": true, "squashfs": true, "overlay": true, "iso9660": true,
	"udf": true, "nfs": true, "nfs4": true, "cifs": true, "smb3": true, "ceph": true,
	"glusterfs": true, "9p": true, "virtiofs": true,
}

// virtualMounts lists the mount points (relative to "/") of virtual file
// systems.
func virtualMounts(mounts []procfs.Mount) []string {
	var out []string
	for _, m := range mounts {
		if m.MountPoint == "/" || !strings.HasPrefix(m.MountPoint, "/") {
			continue
		}
		if virtualFS[m.FSType] || strings.HasPrefix(m.FSType, "fuse") {
			out = append(out, strings.TrimPrefix(path.Clean(m.MountPoint), "/"))
		}
	}
	return out
}

// tree is a source tree ready to walk.
type tree struct {
	root    string          // absolute, cleaned
	prefix  string          // root with a trailing slash
	exclude map[string]bool // relative path → the directory itself is kept (empty)
}

func newTree(o SendOptions) (*tree, error) {
	if o.Root == "" {
		return nil, errors.New("filesync: no root")
	}
	root, err := filepath.Abs(o.Root)
	if err == nil {
		root, err = filepath.EvalSymlinks(root) // the root itself may be a symlink; nothing under it is followed
	}
	if err != nil {
		return nil, fmt.Errorf("filesync: root: %w", err)
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("filesync: root: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("filesync: root %s is not a directory", root)
	}
	t := &tree{root: root, prefix: root + "/", exclude: map[string]bool{}}
	if root == "/" {
		t.prefix = "/"
	}
	for _, x := range o.Excludes {
		rel := strings.TrimPrefix(path.Clean("/"+x), "/")
		if rel == "" {
			return nil, fmt.Errorf("filesync: exclude %q is the whole root", x)
		}
		t.exclude[rel] = false
	}
	if root == "/" {
		for _, d := range defaultExcludes {
			t.exclude[d] = true
		}
		if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
			for _, m := range virtualMounts(procfs.ParseMountinfo(string(data))) {
				if _, user := t.exclude[m]; !user {
					t.exclude[m] = true
				}
			}
		}
	}
	return t, nil
}

// protected is what the receiver must leave alone: the excluded paths.
func (t *tree) protected() []string {
	out := make([]string, 0, len(t.exclude))
	for p := range t.exclude {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (t *tree) abs(rel string) string {
	if rel == "." {
		return t.root
	}
	return t.prefix + rel
}

func (t *tree) rel(p string) string {
	if p == t.root {
		return "."
	}
	return strings.TrimPrefix(p, t.prefix)
}

type inodeKey struct{ dev, ino uint64 }

// walk visits the tree in lexical, depth-first order (a directory's entries
// right after it) without following symlinks, and calls fn with each entry
// and its index. Hard links after the first become kHardlink entries.
// Sockets are skipped, and entries that vanish during the walk.
func (t *tree) walk(ctx context.Context, fn func(e *entry) error) error {
	links := map[inodeKey]uint32{}
	var index uint32
	emit := func(e *entry) error {
		if err := fn(e); err != nil {
			return err
		}
		index++
		return nil
	}
	return filepath.WalkDir(t.root, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if p != t.root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("filesync: walk %s: %w", p, err)
		}
		rel := t.rel(p)
		keep, excluded := t.exclude[rel]
		if excluded && !keep {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if err == unix.ENOENT {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			return fmt.Errorf("filesync: lstat %s: %w", p, err)
		}
		e := &entry{Path: rel, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, MtimeNs: mtimeOf(&st)}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			e.Kind = kDir
			if err := emit(e); err != nil {
				return err
			}
			if excluded {
				return filepath.SkipDir
			}
			return nil
		case unix.S_IFREG:
			e.Kind, e.Size = kFile, st.Size
			if st.Nlink > 1 {
				k := inodeKey{st.Dev, st.Ino}
				if first, ok := links[k]; ok {
					e.Kind, e.Size, e.Link = kHardlink, 0, first
				} else if !excluded {
					links[k] = index
					e.Flags |= flagLinkSource
				}
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return fmt.Errorf("filesync: readlink %s: %w", p, err)
			}
			if target == "" || len(target) > maxTargetLen {
				return nil
			}
			e.Kind, e.Target = kSymlink, target
		case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
			e.Kind, e.Mode, e.Rdev = kSpecial, st.Mode&(sIFMT|0o7777), st.Rdev
		default:
			return nil // sockets
		}
		if excluded {
			return nil // an excluded name that is not a directory: nothing to keep
		}
		return emit(e)
	})
}
