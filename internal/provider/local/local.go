// Package local is the provider whose target servers are folders on this
// machine: <root>/<task id>/ holds one sparse image file per target disk
// (disk-0.img ...), target.json and owner.json (the domain it belongs to and
// the task that holds it, owner.go). The data plane writes the images (block
// migration) or a root tree (file migration); Start checks them.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms"
)

// Provider lays targets out under Root.
type Provider struct {
	Root   string
	Logger *slog.Logger
	// Net is where receivers listen and what agents dial (zero: loopback).
	Net ReceiverNet
	rx  receivers
	own sync.Mutex // serializes owner records' read-modify-write
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

// dir is the folder of a target name. The name must be one plain path
// element: the root itself ("."), its parent or any other folder must never
// become a target.
func (p *Provider) dir(name string) (string, error) {
	if !safeID.MatchString(name) || strings.Contains(name, "..") || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("local provider: bad target name %q", name)
	}
	d := filepath.Join(p.Root, name)
	if err := p.inRoot(d); err != nil {
		return "", err
	}
	return d, nil
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

// Create makes the folder and records the spec and the owner (the spec's
// domain and task); the disks are laid out by Format. Creating again returns
// the same target. With ExistVM the target is the folder <root>/<ExistVM>:
// it must exist, belong to the spec's domain (ErrNotFound otherwise, as if
// it did not exist) and not be held by another task (ErrInUse); the task
// then holds it, and it is kept when the task is deleted (Release).
func (p *Provider) Create(ctx context.Context, s provider.Spec) (provider.Target, error) {
	if s.DomainID == "" || s.TaskID == "" {
		return provider.Target{}, errors.New("local provider: a target needs its task and domain")
	}
	name, created := s.TaskID, true
	if s.ExistVM != "" {
		name, created = s.ExistVM, false
	}
	p.own.Lock()
	defer p.own.Unlock()
	var dir string
	var err error
	if created {
		if dir, err = p.dir(name); err != nil {
			return provider.Target{}, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return provider.Target{}, fmt.Errorf("local provider: create %s: %w", dir, err)
		}
		o, ok, err := readOwner(dir)
		if err != nil {
			return provider.Target{}, err
		}
		switch {
		case !ok:
			// A new folder, or this task's own from before owners were
			// recorded (it is named after the task).
			if err := writeOwner(dir, owner{DomainID: s.DomainID, TaskID: s.TaskID, Created: true}); err != nil {
				return provider.Target{}, err
			}
		case o.DomainID != s.DomainID || o.TaskID != s.TaskID:
			return provider.Target{}, fmt.Errorf("local provider: %s belongs to another task", dir)
		}
	} else {
		if dir, err = p.existingDir(name); err != nil {
			return provider.Target{}, err
		}
		if err := bindable(dir, name, s.DomainID, s.TaskID); err != nil {
			return provider.Target{}, err
		}
		if err := writeOwner(dir, owner{DomainID: s.DomainID, TaskID: s.TaskID}); err != nil {
			return provider.Target{}, err
		}
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
	return satMul(int64(st.Bavail), int64(st.Bsize)), nil
}

func (p *Provider) Prepare(ctx context.Context, t provider.Target) error { return p.exists(t) }

// Format creates each disk image as a sparse file of its size (block), or
// the root folder (file level). Free space is checked, for both levels,
// against what the copy will write (the source's used bytes; zero blocks are
// skipped), summed without wrapping, so a full target fails here, not
// mid-copy.
func (p *Provider) Format(ctx context.Context, t provider.Target, s provider.Spec) error {
	if err := p.exists(t); err != nil {
		return err
	}
	var need int64
	for _, d := range s.Disks {
		if d.Size < 0 {
			return fmt.Errorf("local provider: disk %s has a negative size", d.Name)
		}
		need = satAdd(need, max(d.UsedSize, 0))
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(t.Location, &st); err == nil {
		if free := satMul(int64(st.Bavail), int64(st.Bsize)); free < need {
			return fmt.Errorf("%w: need %d bytes, %d free in %s", provider.ErrNoSpace, need, free, t.Location)
		}
	}
	if s.Type == sms.MigrateFile {
		return os.MkdirAll(RootDir(t.Location), 0o755)
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
	if m.Spec.Type != sms.MigrateFile {
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
	srcOwner, srcOwned, err := readOwner(t.Location)
	if err != nil {
		return provider.Target{}, err
	}
	if _, err := os.Stat(dst); err == nil {
		// A retry after the clone completed, if the folder is the clone
		// this one would make: a folder of the same name that belongs to
		// another domain (or to nobody, when the target has an owner) is
		// not handed to this one as its clone.
		o, ok, err := readOwner(dst)
		if err != nil {
			return provider.Target{}, err
		}
		if ok != srcOwned || o.DomainID != srcOwner.DomainID {
			return provider.Target{}, fmt.Errorf("local provider: clone folder %s exists and is not this target's domain's", id)
		}
		return c, nil
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
	// The clone belongs to the target's domain and is held by no task: it
	// outlives the task, and the domain may bind it as an existing server.
	if srcOwned {
		if err := writeOwner(tmp, owner{DomainID: srcOwner.DomainID}); err != nil {
			return provider.Target{}, err
		}
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

// Delete stops the target's receiver and removes the target folder, owner
// record included: no folder is left behind that could pass for an
// existing server. A bound existing server is never deleted (its task
// releases it, Release).
func (p *Provider) Delete(ctx context.Context, t provider.Target) error {
	if t.Location == "" {
		return nil
	}
	if err := p.inRoot(t.Location); err != nil {
		return fmt.Errorf("local provider: refusing to delete: %w", err)
	}
	p.StopReceiver(t)
	p.own.Lock()
	defer p.own.Unlock()
	if o, ok, err := readOwner(t.Location); err != nil {
		return err
	} else if ok && !o.Created {
		return fmt.Errorf("local provider: refusing to delete %s: an existing server, not created by a task", t.Location)
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

// satAdd is a+b for non-negative a and b, stopping at math.MaxInt64: sizes
// the API did not bound (targets made before it did) must not wrap a sum
// into a small or negative figure that passes a check.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// satMul is a*b for non-negative a and b, stopping at math.MaxInt64.
func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}
