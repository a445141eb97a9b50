package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/internal/provider"
)

// Snapshots live in the target's own folder, <target>/snapshots/<id>/, one
// copy of each disk image (disk-N.img) or of the file tree (root/): they go
// with the target when it is deleted, and no path of a request reaches
// them (the location is the task's recorded target, checked to be a
// folder of the root; the id is the workflow's).

// SnapshotsDir is the folder of a target's snapshots.
func SnapshotsDir(location string) string { return filepath.Join(location, "snapshots") }

// snapshotDir is the folder of snapshot id of target t, checked.
func (p *Provider) snapshotDir(t provider.Target, id string) (string, error) {
	if err := p.inRoot(t.Location); err != nil {
		return "", err
	}
	if !safeID.MatchString(id) || strings.Contains(id, "..") || strings.HasPrefix(id, ".") || strings.HasSuffix(id, ".partial") {
		return "", fmt.Errorf("local provider: bad snapshot id %q", id)
	}
	if err := p.exists(t); err != nil {
		return "", err
	}
	return filepath.Join(SnapshotsDir(t.Location), id), nil
}

// Snapshot copies the target's disk images and root tree into
// snapshots/<id>/ (through a partial folder renamed at the end, so a
// snapshot folder is always complete), then removes older snapshots.
func (p *Provider) Snapshot(ctx context.Context, t provider.Target, id string) error {
	dst, err := p.snapshotDir(t, id)
	if err != nil {
		return err
	}
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		return p.pruneSnapshots(t, id) // a retry after the copy completed
	}
	tmp := dst + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("local provider: snapshot: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("local provider: snapshot: %w", err)
	}
	if err := copyContent(ctx, t.Location, tmp, len(t.Disks)); err != nil {
		return fmt.Errorf("local provider: snapshot %s: %w", id, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("local provider: snapshot: %w", err)
	}
	return p.pruneSnapshots(t, id)
}

// pruneSnapshots removes every snapshot of t but keep.
func (p *Provider) pruneSnapshots(t provider.Target, keep string) error {
	entries, err := os.ReadDir(SnapshotsDir(t.Location))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local provider: snapshots: %w", err)
	}
	for _, e := range entries {
		if e.Name() == keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(SnapshotsDir(t.Location), e.Name())); err != nil {
			return fmt.Errorf("local provider: remove snapshot: %w", err)
		}
	}
	return nil
}

// Restore copies snapshot id back over the target's disk images and root
// tree. Each image is written beside its disk and renamed over it, the tree
// to root.partial renamed over root: a restore cut off leaves the target as
// it was or restored, disk by disk, and a retry finishes it.
func (p *Provider) Restore(ctx context.Context, t provider.Target, id string) error {
	src, err := p.snapshotDir(t, id)
	if err != nil {
		return err
	}
	if st, err := os.Stat(src); err != nil || !st.IsDir() {
		return fmt.Errorf("local provider: snapshot %s of %s: %w", id, t.VMID, provider.ErrNoSnapshot)
	}
	for i := range t.Disks {
		from, to := DiskFile(src, i), DiskFile(t.Location, i)
		if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) {
			continue // the disk had no image when the snapshot was taken
		}
		if err := cloneFile(ctx, from, to+".partial"); err != nil {
			return fmt.Errorf("local provider: restore disk %d: %w", i, err)
		}
		if err := os.Rename(to+".partial", to); err != nil {
			return fmt.Errorf("local provider: restore disk %d: %w", i, err)
		}
	}
	if _, err := os.Lstat(RootDir(src)); err == nil {
		tmp := RootDir(t.Location) + ".partial"
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("local provider: restore tree: %w", err)
		}
		if err := copyTree(ctx, RootDir(src), tmp); err != nil {
			return fmt.Errorf("local provider: restore tree: %w", err)
		}
		if err := os.RemoveAll(RootDir(t.Location)); err != nil {
			return fmt.Errorf("local provider: restore tree: %w", err)
		}
		if err := os.Rename(tmp, RootDir(t.Location)); err != nil {
			return fmt.Errorf("local provider: restore tree: %w", err)
		}
	}
	return nil
}

// DeleteSnapshots removes the target's snapshots folder.
func (p *Provider) DeleteSnapshots(ctx context.Context, t provider.Target) error {
	if err := p.inRoot(t.Location); err != nil {
		return fmt.Errorf("local provider: refusing to delete snapshots: %w", err)
	}
	if err := os.RemoveAll(SnapshotsDir(t.Location)); err != nil {
		return fmt.Errorf("local provider: delete snapshots: %w", err)
	}
	return nil
}

// copyContent copies the n disk images and the root tree (when there are)
// of the target folder from into the folder to.
func copyContent(ctx context.Context, from, to string, n int) error {
	for i := range n {
		if _, err := os.Stat(DiskFile(from, i)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := cloneFile(ctx, DiskFile(from, i), DiskFile(to, i)); err != nil {
			return fmt.Errorf("disk %d: %w", i, err)
		}
	}
	if st, err := os.Lstat(RootDir(from)); err == nil && st.IsDir() {
		if err := copyTree(ctx, RootDir(from), RootDir(to)); err != nil {
			return fmt.Errorf("tree: %w", err)
		}
	}
	return nil
}

// cloneFile copies src to dst as a reflink (the blocks are shared until
// either side writes: instant, no space) where the file system can, else
// as a sparse streamed copy that a canceled ctx stops.
func cloneFile(ctx context.Context, src, dst string) error {
	if err := reflink(src, dst); err == nil {
		return nil
	}
	return copySparse(ctx, src, dst)
}

// reflink clones src into a new dst (FICLONE); any error (the file system
// cannot, or src and dst are on different ones) leaves no dst behind.
func reflink(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// copyTree copies a file-level target's tree: folders and files with their
// modes, symbolic links as links; other special files (devices, sockets,
// FIFOs) are skipped, as the file copy skips them.
func copyTree(ctx context.Context, from, to string) error {
	// Folder modes are set last: a read-only folder still receives its
	// files.
	type dirMode struct {
		path string
		mode fs.FileMode
	}
	var dirs []dirMode
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, dirMode{dst, info.Mode().Perm()})
			return os.MkdirAll(dst, 0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, dst)
		case d.Type().IsRegular():
			if err := cloneFile(ctx, path, dst); err != nil {
				return err
			}
			return os.Chmod(dst, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i].path, dirs[i].mode); err != nil {
			return err
		}
	}
	return nil
}

var _ provider.Snapshotter = (*Provider)(nil)
