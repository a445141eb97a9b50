//go:build linux

package filesync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/agent/transport"
)

// Consistency is the outcome of a verification: regular files compared by
// content (xxhash64).
type Consistency struct {
	Dir           string // the source root
	Total         int64  // regular files on the source
	Different     int64  // on both sides, content (or type) differs
	TargetMissing int64  // on the source only
	TargetExtra   int64  // regular files on the target only
	// DifferentFiles are the first 100 (in lexical order) of the paths
	// counted in Different, TargetMissing and TargetExtra, relative to the
	// root with a leading slash.
	DifferentFiles []string
}

const maxListed = 100

func hashWorkers() int { return min(4, max(2, runtime.GOMAXPROCS(0))) }

type vFile struct {
	rel  string
	size int64
	hash uint64
}

// Verify checksums every regular file under o.Root and has the receiver at
// the other end of c (a connection of kind transport.KindVerify) compare
// with its own tree.
func Verify(ctx context.Context, c *transport.Conn, o SendOptions) (Consistency, error) {
	t, err := newTree(o)
	if err != nil {
		return Consistency{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup

	paths := make(chan string, 256)
	results := make(chan vFile, 256)
	wg.Go(func() {
		defer close(paths)
		err := t.walk(ctx, func(e *entry) error {
			if e.Kind != kFile && e.Kind != kHardlink {
				return nil
			}
			select {
			case paths <- e.Path:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
		if err != nil {
			cancel(err)
		}
	})
	var hw sync.WaitGroup
	for range hashWorkers() {
		hw.Go(func() {
			buf := make([]byte, 1<<20)
			for rel := range paths {
				f, err := openSource(t.abs(rel))
				if err != nil {
					if vanished(err) {
						continue
					}
					cancel(fmt.Errorf("filesync: open %s: %w", t.abs(rel), err))
					continue
				}
				var st unix.Stat_t
				err = unix.Fstat(int(f.Fd()), &st)
				var h uint64
				if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
					h, err = hashFile(f, st.Size, buf)
				}
				f.Close()
				if err != nil {
					cancel(fmt.Errorf("filesync: read %s: %w", t.abs(rel), err))
					continue
				}
				if st.Mode&unix.S_IFMT != unix.S_IFREG {
					continue
				}
				select {
				case results <- vFile{rel, st.Size, h}:
				case <-ctx.Done():
				}
			}
		})
	}
	go func() { hw.Wait(); close(results) }()

	result := make(chan Consistency, 1)
	wg.Go(func() {
		typ, p, err := c.Recv()
		if err != nil {
			if ctx.Err() == nil {
				cancel(fmt.Errorf("filesync: verify: %w", err))
			}
			return
		}
		if typ != tVResult {
			cancel(fmt.Errorf("filesync: verify: unexpected frame %d", typ))
			return
		}
		res, err := decodeVResult(p)
		if err != nil {
			cancel(err)
			return
		}
		res.Dir = t.root
		result <- res
	})

	err = func() error {
		if err := c.Send(tVBegin, appendProtected([]byte{protoVersion}, t.protected())); err != nil {
			return err
		}
		var b batch
		var count uint64
		flush := func() error {
			if p := b.take(); p != nil {
				return c.Send(tVFiles, p)
			}
			return nil
		}
		for {
			select {
			case f, ok := <-results:
				if !ok {
					if ctx.Err() != nil {
						return context.Cause(ctx)
					}
					if err := flush(); err != nil {
						return err
					}
					if err := c.Send(tVEnd, be64(nil, count)); err != nil {
						return err
					}
					return c.Flush()
				}
				b.buf = appendStr(b.buf, f.rel)
				b.buf = binary.AppendUvarint(b.buf, uint64(f.size))
				b.buf = be64(b.buf, f.hash)
				count++
				if b.add() {
					if err := flush(); err != nil {
						return err
					}
				}
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
	}()
	var res Consistency
	if err != nil && isConnErr(err) {
		err = preferRemote(ctx, err)
	}
	if err == nil {
		select {
		case res = <-result:
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
	}
	if err != nil {
		abort(c, cancel, err)
		for range results { //nolint:revive // drain so the workers end
		}
		wg.Wait()
		return Consistency{}, err
	}
	wg.Wait()
	return res, nil
}

func decodeVResult(p []byte) (Consistency, error) {
	r := &reader{p: p}
	res := Consistency{Total: int64(r.uvarint()), Different: int64(r.uvarint()),
		TargetMissing: int64(r.uvarint()), TargetExtra: int64(r.uvarint())}
	n := r.uvarint()
	if r.err == nil && n > maxListed {
		return res, errors.New("filesync: verify: too many paths listed")
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		res.DifferentFiles = append(res.DifferentFiles, r.str(maxPathLen+1))
	}
	if err := r.end(); err != nil {
		return res, fmt.Errorf("filesync: verify: bad result: %w", err)
	}
	return res, nil
}

// listed keeps the lexically first maxListed paths.
type listed struct {
	mu    sync.Mutex
	paths []string
}

func (l *listed) add(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paths = append(l.paths, p)
	if len(l.paths) >= 10*maxListed {
		l.trim()
	}
}

func (l *listed) trim() {
	sort.Strings(l.paths)
	if len(l.paths) > maxListed {
		l.paths = l.paths[:maxListed]
	}
}

// ServeVerify is the target's side of a verification: it checksums its
// files under root as the sender's list arrives and answers the counts.
func ServeVerify(ctx context.Context, c *transport.Conn, root string) error {
	k := armKick(ctx, c)
	err := serveVerify(ctx, c, root)
	k.disarm()
	if err != nil {
		var re *transport.RemoteError
		if !errors.As(err, &re) && !isConnErr(err) {
			c.SendError(err.Error())
			drain(c)
		}
	}
	return err
}

func serveVerify(ctx context.Context, c *transport.Conn, root string) error {
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("filesync: target root %s: %w", root, err)
	}
	defer unix.Close(rootfd)
	recv := func() (uint8, []byte, error) {
		typ, p, err := c.Recv()
		if err != nil && ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		return typ, p, err
	}

	typ, p, err := recv()
	if err != nil {
		return err
	}
	if typ != tVBegin {
		return fmt.Errorf("filesync: expected the start of a verification, got frame %d", typ)
	}
	prot, err := decodeBegin(p)
	if err != nil {
		return err
	}

	var (
		mu                  sync.Mutex
		different, missing  int64
		list                listed
		firstErr            error
		seen                = map[string]struct{}{}
		total               uint64
		jobs                = make(chan vFile, 256)
		workers             sync.WaitGroup
		closeJobs           = sync.OnceFunc(func() { close(jobs) })
		workersCtx, wcancel = context.WithCancel(ctx)
	)
	defer wcancel()
	defer func() { closeJobs(); workers.Wait() }()
	for range hashWorkers() {
		workers.Go(func() {
			buf := make([]byte, 1<<20)
			for j := range jobs {
				if workersCtx.Err() != nil {
					continue
				}
				kind, err := compareTarget(rootfd, j, buf)
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = err
					}
					wcancel()
				case kind == 1:
					different++
				case kind == 2:
					missing++
				}
				mu.Unlock()
				if kind != 0 {
					list.add("/" + j.rel)
				}
			}
		})
	}

	for {
		typ, p, err := recv()
		if err != nil {
			return err
		}
		switch typ {
		case tVFiles:
			r := &reader{p: p}
			n := r.batchCount(p)
			for i := uint64(0); i < n && r.err == nil; i++ {
				rel := r.str(maxPathLen)
				size := r.uvarint()
				h := r.u64()
				if r.err != nil {
					break
				}
				if err := checkRel(rel); err != nil || rel == "." || size > maxFileSize {
					return fmt.Errorf("filesync: verify: bad entry %q", rel)
				}
				if _, dup := seen[rel]; dup {
					return fmt.Errorf("filesync: verify: %q listed twice", rel)
				}
				seen[rel] = struct{}{}
				total++
				select {
				case jobs <- vFile{rel, int64(size), h}:
				case <-workersCtx.Done():
					mu.Lock()
					err := firstErr
					mu.Unlock()
					if err == nil {
						err = ctx.Err()
					}
					return err
				}
			}
			if err := r.end(); err != nil {
				return fmt.Errorf("filesync: verify: bad frame: %w", err)
			}
		case tVEnd:
			if len(p) != 8 || binary.BigEndian.Uint64(p) != total {
				return errors.New("filesync: verify: bad end of list")
			}
			closeJobs()
			workers.Wait()
			if firstErr != nil {
				return firstErr
			}
			extra, err := extraFiles(ctx, rootfd, prot, seen, &list)
			if err != nil {
				return err
			}
			list.trim()
			out := binary.AppendUvarint(nil, total)
			out = binary.AppendUvarint(out, uint64(different))
			out = binary.AppendUvarint(out, uint64(missing))
			out = binary.AppendUvarint(out, uint64(extra))
			out = binary.AppendUvarint(out, uint64(len(list.paths)))
			for _, p := range list.paths {
				out = appendStr(out, p)
			}
			if err := c.Send(tVResult, out); err != nil {
				return err
			}
			return c.Flush()
		default:
			return fmt.Errorf("filesync: verify: unexpected frame %d", typ)
		}
	}
}

// compareTarget: 0 same, 1 different, 2 missing. The file is opened
// O_PATH beneath the root (no symlink followed, no device opened) and read
// only if fstat says it is a regular file.
func compareTarget(rootfd int, j vFile, buf []byte) (int, error) {
	pfd, err := openBeneath(rootfd, j.rel, unix.O_PATH)
	if err != nil {
		switch err {
		case unix.ENOENT, unix.ENOTDIR, unix.ELOOP, unix.EXDEV:
			return 2, nil
		}
		return 0, fmt.Errorf("filesync: open %q on the target: %w", j.rel, err)
	}
	fd, st, err := reopenRegular(pfd, func() (int, error) {
		return openBeneath(rootfd, j.rel, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	})
	unix.Close(pfd)
	switch err {
	case nil:
	case errNotRegular:
		if ftype(&st) == unix.S_IFLNK {
			return 2, nil // O_PATH|O_NOFOLLOW opened the link itself: not followed, the file is missing
		}
		return 1, nil
	case unix.ENOENT, unix.ENOTDIR, unix.ELOOP, unix.EXDEV:
		return 2, nil
	default:
		return 0, fmt.Errorf("filesync: open %q on the target: %w", j.rel, err)
	}
	f := os.NewFile(uintptr(fd), j.rel)
	defer f.Close()
	if st.Size != j.size {
		return 1, nil
	}
	h, err := hashFile(f, st.Size, buf)
	if err != nil {
		return 0, fmt.Errorf("filesync: read %q on the target: %w", j.rel, err)
	}
	if h != j.hash {
		return 1, nil
	}
	return 0, nil
}

// extraFiles counts the target's regular files the source does not list.
// It walks by handle: each directory is opened beneath its parent's
// descriptor without following symlinks (openat2 RESOLVE_BENEATH|
// RESOLVE_NO_SYMLINKS) and listed on its own descriptor, each name's type
// read by fstatat AT_SYMLINK_NOFOLLOW; a directory swapped for a symlink
// mid-walk is skipped, never entered.
func extraFiles(ctx context.Context, rootfd int, prot map[string]bool, seen map[string]struct{}, list *listed) (int64, error) {
	var extra int64
	var walk func(dirfd int, rel string, depth int) error
	walk = func(dirfd int, rel string, depth int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if depth > maxDepth {
			return fmt.Errorf("filesync: verify: %q is too deep", rel)
		}
		names, err := readNames(dirfd)
		if err != nil {
			return fmt.Errorf("filesync: verify: list %q: %w", rel, err)
		}
		for _, name := range names {
			crel := name
			if rel != "." {
				crel = rel + "/" + name
			}
			if isProtected(prot, crel) {
				continue
			}
			var st unix.Stat_t
			if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if err == unix.ENOENT {
					continue
				}
				return fmt.Errorf("filesync: verify: %q: %w", crel, err)
			}
			switch ftype(&st) {
			case unix.S_IFREG:
				if _, ok := seen[crel]; !ok {
					extra++
					list.add("/" + crel)
				}
			case unix.S_IFDIR:
				fd, err := openBeneath(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
				if err != nil {
					switch err {
					case unix.ENOENT, unix.ENOTDIR, unix.ELOOP, unix.EXDEV:
						continue // replaced meanwhile
					}
					return fmt.Errorf("filesync: verify: open %q: %w", crel, err)
				}
				err = walk(fd, crel, depth+1)
				unix.Close(fd)
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	return extra, walk(rootfd, ".", 0)
}
