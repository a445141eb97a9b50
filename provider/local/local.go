// Package local is the provider whose target servers are folders on this
// machine: <root>/<task id>/ holds one sparse image file per target disk
// (disk-0.img ...) and target.json. The data plane writes the images (block
// migration) or a root tree (file migration); Start checks them.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/smsflow/smsflow/provider"
)

// Provider lays targets out under Root.
type Provider struct {
	Root   string
	Logger *slog.Logger
	rx     receivers
}

// New returns a local provider rooted at dir (created if missing).
func New(dir string) (*Provider, error) {
	// Locations are shown to operators (target_server.location) and read by
	// tools started elsewhere: absolute, whatever serve's working directory.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local provider: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("local provider: %w", err)
	}
	return &Provider{Root: abs}, nil
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func (p *Provider) dir(taskID string) (string, error) {
	if !safeID.MatchString(taskID) || strings.Contains(taskID, "..") {
		return "", fmt.Errorf("local provider: bad task id %q", taskID)
	}
	return filepath.Join(p.Root, taskID), nil
}

type manifest struct {
	Spec    provider.Spec `json:"spec"`
	Started bool          `json:"started"`
}

// DiskFile is the image of the i-th disk of a target folder.
func DiskFile(location string, i int) string {
	return filepath.Join(location, fmt.Sprintf("disk-%d.img", i))
}

// RootDir is where a file-level migration writes the target's tree.
func RootDir(location string) string { return filepath.Join(location, "root") }

// Create makes the folder and records the spec; the disks are laid out by
// Format. Creating again returns the same target. With ExistVM the target is
// the folder <root>/<ExistVM> the operator prepared: it must exist, and it
// is kept when the task is deleted.
func (p *Provider) Create(ctx context.Context, s provider.Spec) (provider.Target, error) {
	name, created := s.TaskID, true
	if s.ExistVM != "" {
		name, created = s.ExistVM, false
	}
	dir, err := p.dir(name)
	if err != nil {
		return provider.Target{}, err
	}
	if created {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return provider.Target{}, fmt.Errorf("local provider: create %s: %w", dir, err)
		}
	} else if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return provider.Target{}, fmt.Errorf("local provider: existing target %q: %w", s.ExistVM, provider.ErrNotFound)
	}
	b, _ := json.MarshalIndent(manifest{Spec: s}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "target.json"), b, 0o600); err != nil {
		return provider.Target{}, fmt.Errorf("local provider: %w", err)
	}
	t := provider.Target{VMID: "local-" + name, Name: s.Name, IP: "127.0.0.1", Location: dir, Created: created}
	if !created {
		t.VMID = s.ExistVM
	}
	for i := range s.Disks {
		t.Disks = append(t.Disks, DiskFile(dir, i))
	}
	return t, nil
}

// FreeBytes is the space left for targets under the provider's root (a
// wave's preflight compares it with what its members will write).
func (p *Provider) FreeBytes(ctx context.Context) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(p.Root, &st); err != nil {
		return 0, fmt.Errorf("local provider: free space of %s: %w", p.Root, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

func (p *Provider) Prepare(ctx context.Context, t provider.Target) error { return p.exists(t) }

// Format creates each disk image as a sparse file of its size (block), or
// the root folder (file level). Free space is checked against what the copy
// will write (the source's used bytes; zero blocks are skipped), so a full
// target fails here, not mid-copy.
func (p *Provider) Format(ctx context.Context, t provider.Target, s provider.Spec) error {
	if err := p.exists(t); err != nil {
		return err
	}
	if s.Type == "MIGRATE_FILE" {
		return os.MkdirAll(RootDir(t.Location), 0o755)
	}
	var need int64
	for _, d := range s.Disks {
		if d.Size < 0 {
			return fmt.Errorf("local provider: disk %s has a negative size", d.Name)
		}
		need += d.UsedSize
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(t.Location, &st); err == nil {
		if free := int64(st.Bavail) * int64(st.Bsize); free < need {
			return fmt.Errorf("%w: need %d bytes, %d free in %s", provider.ErrNoSpace, need, free, t.Location)
		}
	}
	for i, d := range s.Disks {
		f, err := os.OpenFile(DiskFile(t.Location, i), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("local provider: disk %d: %w", i, err)
		}
		err = f.Truncate(d.Size)
		f.Close()
		if err != nil {
			return fmt.Errorf("local provider: size disk %d: %w", i, err)
		}
	}
	return nil
}

func (p *Provider) Configure(ctx context.Context, t provider.Target) error { return p.exists(t) }
func (p *Provider) Detach(ctx context.Context, t provider.Target) error    { return p.exists(t) }

// Start checks the target can boot: every disk image is there and readable
// and shows the source's partition table and, at each partition's start,
// its file system's signature (check.go).
func (p *Provider) Start(ctx context.Context, t provider.Target) error {
	if err := p.exists(t); err != nil {
		return err
	}
	mp := filepath.Join(t.Location, "target.json")
	b, err := os.ReadFile(mp)
	if err != nil {
		return fmt.Errorf("local provider: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("local provider: %s: %w", mp, err)
	}
	if m.Spec.Type != "MIGRATE_FILE" {
		for i, d := range t.Disks {
			var want provider.Disk
			if i < len(m.Spec.Disks) {
				want = m.Spec.Disks[i]
			}
			if err := checkDisk(d, want); err != nil {
				return fmt.Errorf("local provider: %w", err)
			}
		}
	}
	m.Started = true
	b, _ = json.MarshalIndent(m, "", "  ")
	return os.WriteFile(mp, b, 0o600)
}

// Clone copies the target folder (images copied sparse-aware by the OS).
func (p *Provider) Clone(ctx context.Context, t provider.Target, name string) (provider.Target, error) {
	if err := p.exists(t); err != nil {
		return provider.Target{}, err
	}
	id := filepath.Base(t.Location) + "-" + name
	dst, err := p.dir(id)
	if err != nil {
		return provider.Target{}, err
	}
	c := provider.Target{VMID: "local-" + id, Name: name, IP: "127.0.0.1", Location: dst, Created: true}
	for i := range t.Disks {
		c.Disks = append(c.Disks, DiskFile(dst, i))
	}
	if _, err := os.Stat(dst); err == nil {
		return c, nil // a retry after the clone completed
	}
	// The copy goes to a partial folder renamed at the end: a clone folder
	// is always complete, and a retried clone starts clean.
	tmp := dst + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return provider.Target{}, fmt.Errorf("local provider: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return provider.Target{}, fmt.Errorf("local provider: %w", err)
	}
	if err := copySparse(ctx, filepath.Join(t.Location, "target.json"), filepath.Join(tmp, "target.json")); err != nil {
		return provider.Target{}, fmt.Errorf("local provider: clone manifest: %w", err)
	}
	for i, d := range t.Disks {
		if err := copySparse(ctx, d, DiskFile(tmp, i)); err != nil {
			return provider.Target{}, fmt.Errorf("local provider: clone disk %d: %w", i, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return provider.Target{}, fmt.Errorf("local provider: %w", err)
	}
	return c, nil
}

// Delete stops the target's receiver and removes the target folder.
func (p *Provider) Delete(ctx context.Context, t provider.Target) error {
	if t.Location == "" {
		return nil
	}
	p.StopReceiver(t)
	rel, err := filepath.Rel(p.Root, t.Location)
	if err != nil || strings.HasPrefix(rel, "..") || rel == "." {
		return fmt.Errorf("local provider: refusing to delete %s outside %s", t.Location, p.Root)
	}
	return os.RemoveAll(t.Location)
}

func (p *Provider) exists(t provider.Target) error {
	if _, err := os.Stat(filepath.Join(t.Location, "target.json")); err != nil {
		return fmt.Errorf("local provider: target %s: %w", t.VMID, err)
	}
	return nil
}

// copySparse copies a file and keeps it sparse: it copies only the data
// extents the file system reports (SEEK_DATA/SEEK_HOLE), so a 40 GiB image
// holding 1 GiB costs 1 GiB of reads, and skips zero runs inside them. A
// canceled ctx stops it between chunks.
func copySparse(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	buf := make([]byte, 1<<20)
	size := st.Size()
	for off := int64(0); off < size; {
		from, to, err := nextExtent(in, off, size)
		if err != nil {
			return err
		}
		if from >= size {
			break
		}
		for off = from; off < to; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, err := in.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
			if n > 0 && !allZero(buf[:n]) {
				if _, werr := out.WriteAt(buf[:n], off); werr != nil {
					return werr
				}
			}
			off += int64(n)
			if errors.Is(err, io.EOF) {
				off = to
				break
			}
			if err != nil {
				return err
			}
		}
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	return out.Sync()
}

// Linux lseek whence values for sparse files.
const (
	seekData = 3
	seekHole = 4
)

// nextExtent finds the data extent at or after off. Where the file system
// cannot tell (EINVAL), the whole rest of the file is one extent.
func nextExtent(f *os.File, off, size int64) (int64, int64, error) {
	from, err := f.Seek(off, seekData)
	if errors.Is(err, syscall.ENXIO) {
		return size, size, nil // only a hole is left
	}
	if err != nil {
		return off, size, nil
	}
	to, err := f.Seek(from, seekHole)
	if err != nil {
		return from, size, nil
	}
	return from, to, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

var _ provider.Provider = (*Provider)(nil)
