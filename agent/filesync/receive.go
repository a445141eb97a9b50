//go:build linux

package filesync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"
	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/agent/transport"
)

// tmpPrefix starts the names of files being written: ".smsf~<pass>~<n>".
// Leftovers of an interrupted pass are removed by the next one.
const tmpPrefix = ".smsf~"

type openDir struct {
	rel       string
	fd        int
	names     map[string]struct{}
	held      int64 // what names costs (see receiver.hold)
	protected bool
}

type dirMeta struct {
	rel      string
	mode     uint32
	uid, gid uint32
	mtime    int64
}

type pendingFile struct {
	rel              string
	size             int64 // as listed, then as sent
	mode, uid, gid   uint32
	mtime            int64
	delta            bool
	basisDev, basisI uint64
	basisSize        int64
	// old is the size of the regular file the new one replaces (0: none):
	// what placing it frees.
	old int64
}

type curFile struct {
	index    uint32
	pf       *pendingFile
	dirfd    int
	tmp      string
	f        *os.File
	basis    *os.File
	declared int64
	cursor   int64
	written  int64 // end of the last write
	digest   *xxhash.Digest
}

type hardlink struct {
	rel string
	src uint32
}

type hashJob struct {
	index uint32
	f     *os.File
	size  int64
}

type request struct {
	typ uint8
	p   []byte
}

type receiver struct {
	c      *transport.Conn
	ctx    context.Context
	cancel context.CancelCauseFunc
	rootfd int
	root   bool // running as root: owners are set
	token  string
	seq    uint64
	prot   map[string]bool

	entries      uint32
	stack        []*openDir
	dirs         []dirMeta
	linkSrc      map[uint32]string
	hardlinks    []hardlink
	manifestDone bool

	pending map[uint32]*pendingFile
	cur     *curFile
	cache   dirCache

	want                       []byte
	nWant                      uint64
	skippedFiles, skippedBytes uint64
	reqCh                      chan request
	hashCh                     chan hashJob
	hashClosed                 bool

	deleted, written int64
	buf              []byte

	// held is what the pass keeps in memory for its entries (names, files
	// pending, directories and links for the end), bounded by maxHeld.
	held, maxHeld int64
	// treeBytes is the size of the tree's regular files on the target:
	// what was there when the pass began, plus what it writes, less what it
	// replaces or removes; bounded by maxBytes. listedBytes is the size of
	// the files listed, also bounded by maxBytes (a tree too big fails
	// before its data is sent).
	treeBytes, listedBytes, maxBytes int64
	// existingEntries is the tree's entries when the pass began; with the
	// entries listed, bounded by maxEntries.
	existingEntries, maxEntries int64
	minFree                     int64
}

// ReceiveOptions bound one pass.
type ReceiveOptions struct {
	// MaxBytes caps the bytes of the tree's regular files (0: no cap); a
	// pass over it fails with ENOSPC (the agent reports SMS.0519). The
	// local provider passes the sum of the task's target disk sizes.
	MaxBytes int64
	// MaxHeld bounds what the pass holds in memory for its entries: names
	// of the directories being listed, files asked for and not yet
	// received, directories and hard links kept for the end. 0 is
	// DefaultMaxHeld.
	MaxHeld int64
	// MaxEntries caps the tree's entries (inodes): those there when the
	// pass began plus those it lists (a pass that lists the same names
	// again counts them twice, so this bounds what the pass can create
	// before it removes anything). 0 is DefaultMaxEntries.
	MaxEntries int64
	// MinFree is the free space the file system of the root keeps: a file
	// whose data would leave less fails with ENOSPC before it is written.
	// 0 is DefaultMinFree; negative, no check.
	MinFree int64
}

// DefaultMaxEntries and DefaultMinFree are the receiver's defaults.
const (
	DefaultMaxEntries = 8 << 20
	DefaultMinFree    = 64 << 20
)

// DefaultMaxHeld allows a few million entries in flight; a sender flooding
// the receiver with hard links or long names is stopped there.
const DefaultMaxHeld = 256 << 20

// entryCost is what one held entry costs beside its name (map slot,
// struct, string header), roughly.
const entryCost = 96

// hold accounts n more bytes held by the pass.
func (r *receiver) hold(name string) (int64, error) {
	n := int64(len(name)) + entryCost
	r.held += n
	if r.held > r.maxHeld {
		return n, fmt.Errorf("filesync: the pass holds more than %d bytes of entries in memory (too many names at once)", r.maxHeld)
	}
	return n, nil
}

// errTooBig: the tree outgrew the target.
func (r *receiver) errTooBig() error {
	return fmt.Errorf("filesync: the tree needs more than the target's %d bytes: %w", r.maxBytes, unix.ENOSPC)
}

// Receive is the target's side of one pass: it writes the sender's tree
// under root (which must exist). Whatever goes wrong is also reported to the
// sender. The connection is not reusable after an error.
func Receive(ctx context.Context, c *transport.Conn, root string) error {
	return ReceiveWith(ctx, c, root, ReceiveOptions{})
}

// ReceiveWith is Receive within the bounds o.
//
// Every file system operation is relative to a directory descriptor opened
// beneath root without following symlinks, and acts on the name itself,
// never on what a symlink there points to: even a second pass of the task
// racing this one (the listener runs one at a time) cannot make it touch
// or list anything outside root.
func ReceiveWith(ctx context.Context, c *transport.Conn, root string, o ReceiveOptions) error {
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		err = fmt.Errorf("filesync: target root %s: %w", root, err)
		c.SendError(err.Error())
		return err
	}
	// The caps are on the tree, not on one pass: count what is there
	// already (a pass that fills d1/, then one that lists d2/ instead, would
	// otherwise hold both until d1/ is removed at the end of the second).
	treeBytes, treeEntries, err := treeUsage(rootfd)
	if err != nil {
		unix.Close(rootfd)
		err = fmt.Errorf("filesync: size of the target tree: %w", err)
		c.SendError(err.Error())
		return err
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	k := armKick(ctx, c)
	var tok [4]byte
	_, _ = rand.Read(tok[:])
	r := &receiver{c: c, ctx: ctx, cancel: cancel, rootfd: rootfd, root: os.Geteuid() == 0, token: hex.EncodeToString(tok[:]),
		linkSrc: map[uint32]string{}, pending: map[uint32]*pendingFile{},
		reqCh: make(chan request, 64), hashCh: make(chan hashJob, 16), maxHeld: o.MaxHeld, maxBytes: o.MaxBytes}
	if r.maxHeld <= 0 {
		r.maxHeld = DefaultMaxHeld
	}
	r.maxEntries, r.minFree = o.MaxEntries, o.MinFree
	if r.maxEntries <= 0 {
		r.maxEntries = DefaultMaxEntries
	}
	if r.minFree == 0 {
		r.minFree = DefaultMinFree
	}
	r.treeBytes, r.existingEntries = treeBytes, treeEntries
	r.cache.rootfd = rootfd

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := r.sendRequests(); err != nil {
			cancel(err)
		}
	})
	wg.Go(r.hashBases)

	err = r.run()
	if err == nil {
		wg.Wait()
		err = r.finish()
	}
	if err != nil {
		k.disarm() // from here on, only this goroutine decides to cut the link
		cancel(err)
		if !r.hashClosed {
			close(r.hashCh)
			r.hashClosed = true
		}
		// Let the request sender finish the frame it may be writing, so the
		// error below reaches the sender intact; cut it short if it hangs.
		waited := make(chan struct{})
		go func() { wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(2 * time.Second):
			_ = c.SetDeadline(time.Now())
			<-waited
		}
		var re *transport.RemoteError
		if !errors.As(err, &re) && !isConnErr(err) {
			if parent.Err() != nil {
				c.SendError(transport.StoppingMsg)
			} else {
				c.SendError(err.Error())
			}
			drain(c)
		}
	}
	k.disarm()
	r.cleanup()
	return err
}

// drain reads and drops what the peer still sends, until it hangs up (at
// most a few seconds): closing with unread data would reset the connection,
// and the error just sent could be lost.
func drain(c *transport.Conn) {
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	for {
		if _, _, err := c.Recv(); err != nil {
			return
		}
	}
}

// kicker unblocks the connection's reads and writes when a context ends; it
// is disarmed before a last write, which a kick would cut in the middle of a
// TLS record.
type kicker struct {
	mu   sync.Mutex
	done bool
	c    *transport.Conn
	stop func() bool
}

func armKick(ctx context.Context, c *transport.Conn) *kicker {
	k := &kicker{c: c}
	k.stop = context.AfterFunc(ctx, k.kick)
	return k
}

func (k *kicker) kick() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.done {
		k.done = true
		_ = k.c.SetDeadline(time.Now())
	}
}

// disarm: no kick happens after it returns.
func (k *kicker) disarm() {
	k.stop()
	k.mu.Lock()
	k.done = true
	k.mu.Unlock()
}

func (r *receiver) cleanup() {
	if r.cur != nil {
		r.cur.f.Close()
		if r.cur.basis != nil {
			r.cur.basis.Close()
		}
		_ = unix.Unlinkat(r.cur.dirfd, r.cur.tmp, 0)
		unix.Close(r.cur.dirfd)
		r.cur = nil
	}
	for _, d := range r.stack {
		if d.fd != r.rootfd {
			unix.Close(d.fd)
		}
	}
	r.stack = nil
	r.cache.closeAll()
	unix.Close(r.rootfd)
}

func (r *receiver) push(rq request) error {
	select {
	case r.reqCh <- rq:
		return nil
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
}

// sendRequests is the only goroutine that sends until the requests end.
func (r *receiver) sendRequests() error {
	for {
		select {
		case rq, ok := <-r.reqCh:
			if !ok {
				return r.c.Flush()
			}
			if err := r.c.Send(rq.typ, rq.p); err != nil {
				return fmt.Errorf("filesync: send request: %w", err)
			}
			if len(r.reqCh) == 0 {
				if err := r.c.Flush(); err != nil {
					return fmt.Errorf("filesync: send request: %w", err)
				}
			}
		case <-r.ctx.Done():
			return nil
		}
	}
}

// hashBases hashes, block by block, the target's old version of the files to
// update, and sends the hashes; then it ends the requests.
func (r *receiver) hashBases() {
	buf := make([]byte, deltaBlockSize)
	ok := true
	for hj := range r.hashCh {
		if ok {
			if err := r.hashBasis(hj, &buf); err != nil {
				ok = false // keep draining, to close the files
				r.cancel(err)
			}
		}
		hj.f.Close()
	}
	if ok && r.ctx.Err() == nil {
		if r.push(request{typ: tReqEnd}) == nil {
			close(r.reqCh)
		}
	}
}

func blockSizeFor(size int64) int64 {
	bs := int64(deltaBlockSize)
	for (size+bs-1)/bs > 1<<20 && bs < maxBlockSize {
		bs *= 2
	}
	return bs
}

func (r *receiver) hashBasis(hj hashJob, bufp *[]byte) error {
	bs := blockSizeFor(hj.size)
	if int64(len(*bufp)) < bs {
		*bufp = make([]byte, bs)
	}
	buf := (*bufp)[:bs]
	total := uint64((hj.size + bs - 1) / bs)
	zeroHash := zeroSum(bs)
	fd := int(hj.f.Fd())
	var first uint64
	p := make([]byte, 0, 32+8*min(total, maxHashFrame))
	header := func() {
		p = be32(p[:0], hj.index)
		p = be32(p, uint32(bs))
		p = be64(p, uint64(hj.size))
		p = be64(p, total)
		p = be64(p, first)
	}
	header()
	var off int64
	for i := uint64(0); i < total; i++ {
		if r.ctx.Err() != nil {
			return context.Cause(r.ctx)
		}
		n := min(bs, hj.size-off)
		var h uint64
		if isHole(fd, off, n, hj.size) {
			// A hole reads as zeros: hashed without reading it.
			if n == bs {
				h = zeroHash
			} else {
				h = zeroSum(n)
			}
		} else {
			got, err := hj.f.ReadAt(buf[:n], off)
			if int64(got) < n {
				return fmt.Errorf("filesync: read target file for entry %d: short read (%v)", hj.index, err)
			}
			h = xxhash.Sum64(buf[:n])
		}
		p = be64(p, h)
		off += n
		if len(p) >= 32+8*maxHashFrame || i == total-1 {
			if err := r.push(request{typ: tDelta, p: p}); err != nil {
				return err
			}
			first = i + 1
			p = make([]byte, 0, 32+8*min(total-first, maxHashFrame))
			header()
		}
	}
	return nil
}

func (r *receiver) fail(format string, args ...any) error {
	return fmt.Errorf("filesync: "+format, args...)
}

// run reads the sender's frames until tDone.
func (r *receiver) run() error {
	typ, p, err := r.c.Recv()
	if err != nil {
		return r.recvErr(err)
	}
	if typ != tBegin {
		return r.fail("expected the start of a pass, got frame %d", typ)
	}
	if r.prot, err = decodeBegin(p); err != nil {
		return err
	}
	for {
		typ, p, err := r.c.Recv()
		if err != nil {
			return r.recvErr(err)
		}
		switch typ {
		case tEntries:
			if r.manifestDone {
				return r.fail("manifest entries after its end")
			}
			if err := decodeEntries(p, r.onEntry); err != nil {
				return err
			}
			if err := r.flushWant(); err != nil {
				return err
			}
		case tManifestEnd:
			if r.manifestDone || len(p) != 8 || binary.BigEndian.Uint64(p) != uint64(r.entries) {
				return r.fail("bad end of manifest (%d entries received)", r.entries)
			}
			if r.entries == 0 {
				return r.fail("empty manifest")
			}
			for len(r.stack) > 0 {
				if err := r.popDir(); err != nil {
					return err
				}
			}
			if err := r.flushWant(); err != nil {
				return err
			}
			r.manifestDone = true
			close(r.hashCh)
			r.hashClosed = true
		case tFile:
			if err := r.beginFile(p); err != nil {
				return err
			}
		case tData, tHole, tCopy:
			if err := r.fileData(typ, p); err != nil {
				return err
			}
		case tFileEnd:
			if err := r.endFile(p); err != nil {
				return err
			}
		case tGone:
			if r.cur != nil || len(p) != 4 {
				return r.fail("bad vanished-file frame")
			}
			idx := binary.BigEndian.Uint32(p)
			pf := r.pending[idx]
			if pf == nil {
				return r.fail("vanished-file frame for entry %d, which was not asked for", idx)
			}
			delete(r.pending, idx)
			r.held -= int64(len(pf.rel)) + entryCost
		case tDone:
			if len(p) != 0 || !r.manifestDone || r.cur != nil || len(r.pending) != 0 {
				return r.fail("pass ended early: %d files outstanding", len(r.pending))
			}
			return nil
		default:
			return r.fail("unexpected frame %d", typ)
		}
	}
}

func (r *receiver) recvErr(err error) error {
	if r.ctx.Err() != nil {
		return context.Cause(r.ctx)
	}
	var re *transport.RemoteError
	if errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("filesync: receive: %w", err)
}

func (r *receiver) flushWant() error {
	if r.nWant == 0 && r.skippedFiles == 0 {
		return nil
	}
	p := binary.AppendUvarint(nil, r.skippedFiles)
	p = binary.AppendUvarint(p, r.skippedBytes)
	p = binary.AppendUvarint(p, r.nWant)
	p = append(p, r.want...)
	r.want, r.nWant, r.skippedFiles, r.skippedBytes = r.want[:0], 0, 0, 0
	return r.push(request{typ: tWant, p: p})
}

func (r *receiver) tmpName() string {
	r.seq++
	return fmt.Sprintf("%s%s~%x", tmpPrefix, r.token, r.seq)
}

// onEntry applies one manifest entry: directories, symlinks and special
// files right away, files asked for (or found up to date), hard links
// remembered for the end.
func (r *receiver) onEntry(e *entry) error {
	idx := r.entries
	if idx == 1<<32-1 {
		return r.fail("too many entries")
	}
	r.entries++
	if int64(r.entries)+r.existingEntries > r.maxEntries {
		return fmt.Errorf("filesync: the tree would have more than %d entries: %w", r.maxEntries, unix.ENOSPC)
	}
	if idx == 0 {
		if e.Path != "." || e.Kind != kDir {
			return r.fail("manifest must start with the root directory")
		}
		r.stack = append(r.stack, &openDir{rel: ".", fd: r.rootfd, names: map[string]struct{}{}})
		r.dirs = append(r.dirs, dirMeta{rel: ".", mode: e.Mode, uid: e.UID, gid: e.GID, mtime: e.MtimeNs})
		_, err := r.hold(".")
		return err
	}
	if e.Path == "." {
		return r.fail("root directory listed twice")
	}
	parent, base := path.Dir(e.Path), path.Base(e.Path)
	// The parent must be a directory still being listed; checked before
	// anything is closed, as closing a directory deletes what it lacks.
	at := len(r.stack) - 1
	for at >= 0 && r.stack[at].rel != parent {
		at--
	}
	if at < 0 {
		return r.fail("entry %q: its parent is not a directory listed before it (out of order, or through a symlink)", e.Path)
	}
	for len(r.stack) > at+1 {
		if err := r.popDir(); err != nil {
			return err
		}
	}
	top := r.stack[len(r.stack)-1]
	if _, dup := top.names[base]; dup {
		return r.fail("entry %q listed twice", e.Path)
	}
	top.names[base] = struct{}{}
	n, err := r.hold(base)
	top.held += n
	if err != nil {
		return err
	}
	switch e.Kind {
	case kDir:
		if _, err := r.hold(e.Path); err != nil { // kept for the end
			return err
		}
		err = r.ensureDir(top, base, e)
	case kFile:
		if r.listedBytes += e.Size; r.maxBytes > 0 && r.listedBytes > r.maxBytes {
			return fmt.Errorf("%w (at %q)", r.errTooBig(), e.Path)
		}
		if e.Flags&flagLinkSource != 0 {
			if _, err := r.hold(e.Path); err != nil { // kept for the end
				return err
			}
		}
		err = r.checkFile(top, base, e, idx)
		if err == nil && e.Flags&flagLinkSource != 0 {
			r.linkSrc[idx] = e.Path
		}
	case kSymlink:
		err = r.ensureSymlink(top, base, e)
	case kHardlink:
		if _, ok := r.linkSrc[e.Link]; !ok || e.Link >= idx {
			return r.fail("hard link %q to entry %d, which is not an earlier linked file", e.Path, e.Link)
		}
		if _, err := r.hold(e.Path); err != nil { // kept for the end
			return err
		}
		r.hardlinks = append(r.hardlinks, hardlink{rel: e.Path, src: e.Link})
	case kSpecial:
		err = r.ensureSpecial(top, base, e)
	}
	if err != nil {
		return fmt.Errorf("filesync: %s %q: %w", e.Kind, e.Path, err)
	}
	return nil
}

func lstatAt(dirfd int, name string) (unix.Stat_t, bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return st, false, nil
	}
	return st, err == nil, err
}

func ftype(st *unix.Stat_t) uint32 { return st.Mode & unix.S_IFMT }

// clear removes what is at name unless it is of the wanted type.
func (r *receiver) clear(dir *openDir, name string, st *unix.Stat_t, exists bool, want uint32) (bool, error) {
	if !exists || ftype(st) == want {
		return exists, nil
	}
	_, b, err := removeAtSized(dir.fd, name)
	r.treeBytes -= b
	if err != nil {
		return false, err
	}
	r.cache.purge(path.Join(dir.rel, name))
	return false, nil
}

func (r *receiver) ensureDir(top *openDir, base string, e *entry) error {
	if len(r.stack) >= maxDepth {
		return errors.New("too deep")
	}
	st, exists, err := lstatAt(top.fd, base)
	if err != nil {
		return err
	}
	if exists, err = r.clear(top, base, &st, exists, unix.S_IFDIR); err != nil {
		return err
	}
	if !exists {
		if err := unix.Mkdirat(top.fd, base, 0o700); err != nil {
			return err
		}
	}
	fd, err := unix.Openat(top.fd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	r.stack = append(r.stack, &openDir{rel: e.Path, fd: fd, names: map[string]struct{}{}, protected: isProtected(r.prot, e.Path)})
	r.dirs = append(r.dirs, dirMeta{rel: e.Path, mode: e.Mode, uid: e.UID, gid: e.GID, mtime: e.MtimeNs})
	return nil
}

// raceHook, set by tests only, runs in fixOwnerMode between the lookup of a
// name and the change made to it: a test swaps the name there, as a racing
// pass could, without depending on the scheduler to hit that moment.
var raceHook func(dirfd int, name string)

// fixOwnerMode sets owner then mode (chown clears setuid) on name, of the
// type st says. The name is opened O_PATH|O_NOFOLLOW (which needs no
// permission on the file and opens no device or FIFO), checked by fstat to
// be still of that type, and changed through that descriptor: a name
// swapped for a symlink meanwhile is refused, never followed.
func (r *receiver) fixOwnerMode(dirfd int, name string, st *unix.Stat_t, mode, uid, gid uint32) error {
	needOwner := r.root && (st.Uid != uid || st.Gid != gid)
	if !needOwner && st.Mode&0o7777 == mode {
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if raceHook != nil {
		raceHook(dirfd, name)
	}
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return err
	}
	if t := ftype(&fst); t != ftype(st) || t == unix.S_IFLNK {
		return fmt.Errorf("%q changed type under the receiver", name)
	}
	if needOwner {
		if err := unix.Fchownat(fd, "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return chmodFD(fd, mode)
}

func (r *receiver) checkFile(top *openDir, base string, e *entry, idx uint32) error {
	st, exists, err := lstatAt(top.fd, base)
	if err != nil {
		return err
	}
	if exists && ftype(&st) == unix.S_IFREG && st.Size == e.Size && mtimeOf(&st) == e.MtimeNs {
		r.skippedFiles++
		r.skippedBytes += uint64(e.Size)
		return r.fixOwnerMode(top.fd, base, &st, e.Mode, e.UID, e.GID)
	}
	if exists && ftype(&st) == unix.S_IFDIR {
		if exists, err = r.clear(top, base, &st, exists, unix.S_IFREG); err != nil {
			return err
		}
	}
	if _, err := r.hold(e.Path); err != nil { // released when the file arrives
		return err
	}
	pf := &pendingFile{rel: e.Path, size: e.Size, mode: e.Mode, uid: e.UID, gid: e.GID, mtime: e.MtimeNs}
	if exists && ftype(&st) == unix.S_IFREG {
		pf.old = st.Size
	}
	r.pending[idx] = pf
	if exists && ftype(&st) == unix.S_IFREG && st.Size >= deltaBlockSize && e.Size >= deltaBlockSize {
		fd, fst, err := openRegular(top.fd, base)
		if err != nil {
			if err == errNotRegular {
				return fmt.Errorf("%q changed type under the receiver", base)
			}
			return err
		}
		pf.delta, pf.basisDev, pf.basisI, pf.basisSize = true, fst.Dev, fst.Ino, fst.Size
		select {
		case r.hashCh <- hashJob{index: idx, f: os.NewFile(uintptr(fd), base), size: fst.Size}:
			return nil
		case <-r.ctx.Done():
			unix.Close(fd)
			return context.Cause(r.ctx)
		}
	}
	r.want = binary.AppendUvarint(r.want, uint64(idx))
	r.nWant++
	if r.nWant >= 4096 {
		return r.flushWant()
	}
	return nil
}

// place renames the finished temporary tmp to name in dirfd, replacing a
// directory there if need be.
func (r *receiver) place(dirfd int, dirRel, tmp, name string) error {
	err := unix.Renameat(dirfd, tmp, dirfd, name)
	if err == unix.EISDIR || err == unix.ENOTEMPTY || err == unix.EEXIST || err == unix.ENOTDIR {
		if _, rerr := removeAt(dirfd, name); rerr != nil {
			_ = unix.Unlinkat(dirfd, tmp, 0)
			return rerr
		}
		r.cache.purge(path.Join(dirRel, name))
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
	}
	return err
}

func (r *receiver) ensureSymlink(top *openDir, base string, e *entry) error {
	st, exists, err := lstatAt(top.fd, base)
	if err != nil {
		return err
	}
	if exists && ftype(&st) == unix.S_IFLNK {
		buf := make([]byte, maxTargetLen+1)
		n, err := unix.Readlinkat(top.fd, base, buf)
		if err == nil && string(buf[:n]) == e.Target {
			if r.root && (st.Uid != e.UID || st.Gid != e.GID) {
				if err := unix.Fchownat(top.fd, base, int(e.UID), int(e.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
					return err
				}
			}
			if mtimeOf(&st) != e.MtimeNs {
				_ = lutimesAt(top.fd, base, e.MtimeNs) // best effort
			}
			return nil
		}
	}
	tmp := r.tmpName()
	if err := unix.Symlinkat(e.Target, top.fd, tmp); err != nil {
		return err
	}
	if r.root {
		if err := unix.Fchownat(top.fd, tmp, int(e.UID), int(e.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			_ = unix.Unlinkat(top.fd, tmp, 0)
			return err
		}
	}
	_ = lutimesAt(top.fd, tmp, e.MtimeNs)
	return r.place(top.fd, top.rel, tmp, base)
}

func (r *receiver) ensureSpecial(top *openDir, base string, e *entry) error {
	st, exists, err := lstatAt(top.fd, base)
	if err != nil {
		return err
	}
	perm := e.Mode & 0o7777
	if exists && st.Mode == e.Mode && st.Rdev == e.Rdev && (!r.root || st.Uid == e.UID && st.Gid == e.GID) {
		if mtimeOf(&st) != e.MtimeNs {
			return lutimesAt(top.fd, base, e.MtimeNs)
		}
		return nil
	}
	tmp := r.tmpName()
	if err := unix.Mknodat(top.fd, tmp, e.Mode, int(e.Rdev)); err != nil {
		if err == unix.EPERM && !r.root {
			return nil // devices need privileges: left out
		}
		return err
	}
	var tst unix.Stat_t
	if err := unix.Fstatat(top.fd, tmp, &tst, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		tst.Mode &^= 0o7777 // force the chmod after umask
		err = r.fixOwnerMode(top.fd, tmp, &tst, perm, e.UID, e.GID)
		if err == nil {
			err = lutimesAt(top.fd, tmp, e.MtimeNs)
		}
		if err != nil {
			_ = unix.Unlinkat(top.fd, tmp, 0)
			return err
		}
	}
	return r.place(top.fd, top.rel, tmp, base)
}

// popDir closes the directory being listed: what the target has there and
// the source does not is removed (except excluded paths and this pass's
// temporaries).
func (r *receiver) popDir() error {
	d := r.stack[len(r.stack)-1]
	r.stack = r.stack[:len(r.stack)-1]
	r.held -= d.held
	defer func() {
		if d.fd != r.rootfd {
			unix.Close(d.fd)
		}
	}()
	if d.protected {
		return nil
	}
	names, err := readNames(d.fd)
	if err != nil {
		return fmt.Errorf("filesync: list %q: %w", d.rel, err)
	}
	mine := tmpPrefix + r.token + "~"
	for _, name := range names {
		if _, ok := d.names[name]; ok || strings.HasPrefix(name, mine) {
			continue
		}
		rel := path.Join(d.rel, name)
		if isProtected(r.prot, rel) {
			continue
		}
		n, b, err := removeAtSized(d.fd, name)
		r.treeBytes -= b
		if err != nil {
			return fmt.Errorf("filesync: remove %q: %w", rel, err)
		}
		r.cache.purge(rel)
		if !strings.HasPrefix(name, tmpPrefix) {
			r.deleted += n
		}
	}
	return nil
}

// dirFD is a descriptor of the directory rel (owned by the receiver: valid
// until the next dirFD call or the manifest moves on; dup it to keep it).
func (r *receiver) dirFD(rel string) (int, error) {
	for i := len(r.stack) - 1; i >= 0; i-- {
		if r.stack[i].rel == rel {
			return r.stack[i].fd, nil
		}
	}
	return r.cache.get(rel)
}

func dupFD(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }

func (r *receiver) beginFile(p []byte) error {
	if r.cur != nil {
		return r.fail("a file started before the previous one ended")
	}
	if len(p) != 13 {
		return r.fail("bad file header")
	}
	idx, size, mode := binary.BigEndian.Uint32(p), binary.BigEndian.Uint64(p[4:]), p[12]
	pf := r.pending[idx]
	if pf == nil {
		return r.fail("data for entry %d, which was not asked for", idx)
	}
	if size > maxFileSize || mode > modeDelta || (mode == modeDelta) != pf.delta {
		return r.fail("bad file header for %q", pf.rel)
	}
	// The file may have grown since it was listed: the cap holds for what
	// is sent (no more than size is written), on the tree as it will be
	// once the file replaces the old one.
	r.listedBytes += int64(size) - pf.size
	if r.treeBytes += int64(size) - pf.old; r.maxBytes > 0 && (r.treeBytes > r.maxBytes || r.listedBytes > r.maxBytes) {
		return fmt.Errorf("%w (at %q)", r.errTooBig(), pf.rel)
	}
	pf.size = int64(size)
	dfd, err := r.dirFD(path.Dir(pf.rel))
	if err != nil {
		return fmt.Errorf("filesync: directory of %q: %w", pf.rel, err)
	}
	if r.minFree > 0 {
		var fs unix.Statfs_t
		if err := unix.Fstatfs(dfd, &fs); err == nil {
			free := int64(math.MaxInt64)
			if bs := max(fs.Bsize, 1); fs.Bavail < uint64(math.MaxInt64/bs) {
				free = int64(fs.Bavail) * bs
			}
			if free-int64(size) < r.minFree {
				return fmt.Errorf("filesync: %q would leave less than %d bytes free on the target: %w", pf.rel, r.minFree, unix.ENOSPC)
			}
		}
	}
	if dfd, err = dupFD(dfd); err != nil {
		return err
	}
	cf := &curFile{index: idx, pf: pf, dirfd: dfd, tmp: r.tmpName(), declared: int64(size), digest: xxhash.New()}
	fd, err := unix.Openat(dfd, cf.tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		unix.Close(dfd)
		return fmt.Errorf("filesync: create %q: %w", pf.rel, err)
	}
	cf.f = os.NewFile(uintptr(fd), cf.tmp)
	r.cur = cf
	if pf.delta {
		// Never opened as anything but the regular file hashed before: a
		// FIFO or a device swapped in meanwhile is neither opened for
		// reading nor waited on.
		bfd, st, err := openRegular(dfd, path.Base(pf.rel))
		if err == errNotRegular {
			return r.fail("%q changed on the target during the pass", pf.rel)
		}
		if err != nil {
			return fmt.Errorf("filesync: reopen %q: %w", pf.rel, err)
		}
		cf.basis = os.NewFile(uintptr(bfd), pf.rel)
		if st.Dev != pf.basisDev || st.Ino != pf.basisI || st.Size != pf.basisSize {
			return r.fail("%q changed on the target during the pass", pf.rel)
		}
	}
	return nil
}

func (r *receiver) fileData(typ uint8, p []byte) error {
	cf := r.cur
	if cf == nil {
		return r.fail("file data outside a file")
	}
	rd := &reader{p: p}
	off := rd.u64()
	if rd.err != nil || off != uint64(cf.cursor) {
		return r.fail("%q: data at %d, expected %d", cf.pf.rel, off, cf.cursor)
	}
	switch typ {
	case tData:
		rawLen, flags := rd.u32(), rd.u8()
		if rd.err != nil || rawLen == 0 || rawLen > maxRawChunk || int64(rawLen) > cf.declared-cf.cursor || flags&^flagS2 != 0 {
			return r.fail("%q: bad data frame", cf.pf.rel)
		}
		raw := rd.p
		if flags&flagS2 != 0 {
			if n, err := s2.DecodedLen(rd.p); err != nil || n != int(rawLen) {
				return r.fail("%q: corrupt compressed data", cf.pf.rel)
			}
			if cap(r.buf) < int(rawLen) {
				r.buf = make([]byte, rawLen)
			}
			var err error
			if raw, err = s2.Decode(r.buf[:rawLen], rd.p); err != nil || len(raw) != int(rawLen) {
				return r.fail("%q: corrupt compressed data", cf.pf.rel)
			}
		} else if len(raw) != int(rawLen) {
			return r.fail("%q: bad data frame length", cf.pf.rel)
		}
		if _, err := cf.f.WriteAt(raw, cf.cursor); err != nil {
			return fmt.Errorf("filesync: write %q: %w", cf.pf.rel, err)
		}
		cf.digest.Write(raw)
		cf.cursor += int64(rawLen)
		cf.written = cf.cursor
	case tHole, tCopy:
		n := rd.u64()
		if err := rd.end(); err != nil || n == 0 || n > uint64(cf.declared-cf.cursor) {
			return r.fail("%q: bad range frame", cf.pf.rel)
		}
		if typ == tCopy {
			if cf.basis == nil || cf.cursor+int64(n) > cf.pf.basisSize {
				return r.fail("%q: copy outside the target's old file", cf.pf.rel)
			}
			if err := r.copyRange(cf, int64(n)); err != nil {
				return fmt.Errorf("filesync: copy within %q: %w", cf.pf.rel, err)
			}
			cf.written = cf.cursor + int64(n)
		}
		cf.cursor += int64(n)
	}
	return nil
}

// copyRange copies n bytes at the cursor from the old file to the new one,
// in the kernel when it can.
func (r *receiver) copyRange(cf *curFile, n int64) error {
	roff, woff := cf.cursor, cf.cursor
	end := cf.cursor + n
	for roff < end {
		got, err := unix.CopyFileRange(int(cf.basis.Fd()), &roff, int(cf.f.Fd()), &woff, int(end-roff), 0)
		if err != nil || got == 0 {
			if err == unix.ENOSPC || err == unix.EIO || err == unix.EDQUOT {
				return err
			}
			break
		}
	}
	if cap(r.buf) < 1<<20 {
		r.buf = make([]byte, 1<<20)
	}
	for roff < end {
		m := int(min(int64(1<<20), end-roff))
		got, err := cf.basis.ReadAt(r.buf[:m], roff)
		if got < m {
			return fmt.Errorf("short read: %v", err)
		}
		if _, err := cf.f.WriteAt(r.buf[:m], roff); err != nil {
			return err
		}
		roff += int64(m)
	}
	return nil
}

func (r *receiver) endFile(p []byte) error {
	cf := r.cur
	if cf == nil || len(p) != 16 {
		return r.fail("bad end of file")
	}
	size, sum := int64(binary.BigEndian.Uint64(p)), binary.BigEndian.Uint64(p[8:])
	if size != cf.cursor {
		return r.fail("%q: ends at %d, data up to %d", cf.pf.rel, size, cf.cursor)
	}
	if sum != cf.digest.Sum64() {
		return r.fail("%q: checksum mismatch", cf.pf.rel)
	}
	pf := cf.pf
	fd := int(cf.f.Fd())
	werr := func(err error) error { return fmt.Errorf("filesync: write %q: %w", pf.rel, err) }
	if cf.written != size {
		if err := unix.Ftruncate(fd, size); err != nil { // a trailing hole
			return werr(err)
		}
	}
	if r.root {
		if err := unix.Fchown(fd, int(pf.uid), int(pf.gid)); err != nil {
			return werr(err)
		}
	}
	if err := unix.Fchmod(fd, pf.mode); err != nil {
		return werr(err)
	}
	if err := futimens(fd, pf.mtime); err != nil {
		return werr(err)
	}
	err := cf.f.Close()
	cf.f = nil
	if err != nil {
		return werr(err)
	}
	if cf.basis != nil {
		cf.basis.Close()
		cf.basis = nil
	}
	r.cur = nil
	defer unix.Close(cf.dirfd)
	if err := r.place(cf.dirfd, path.Dir(pf.rel), cf.tmp, path.Base(pf.rel)); err != nil {
		return werr(err)
	}
	delete(r.pending, cf.index)
	r.held -= int64(len(pf.rel)) + entryCost
	r.written++
	return nil
}

// finish links hard links, sets the directories' metadata (after their
// content), syncs the file system and reports.
func (r *receiver) finish() error {
	for _, hl := range r.hardlinks {
		if err := r.link(hl); err != nil {
			return fmt.Errorf("filesync: hard link %q: %w", hl.rel, err)
		}
	}
	for i := len(r.dirs) - 1; i >= 0; i-- {
		if err := r.setDirMeta(&r.dirs[i]); err != nil {
			return fmt.Errorf("filesync: directory %q: %w", r.dirs[i].rel, err)
		}
	}
	if err := unix.Syncfs(r.rootfd); err != nil {
		return fmt.Errorf("filesync: sync: %w", err)
	}
	p := binary.AppendUvarint(nil, uint64(r.deleted))
	p = binary.AppendUvarint(p, uint64(r.written))
	if err := r.c.Send(tResult, p); err != nil {
		return err
	}
	return r.c.Flush()
}

func (r *receiver) link(hl hardlink) error {
	src := r.linkSrc[hl.src]
	sfd, err := r.dirFD(path.Dir(src))
	if err != nil {
		return err
	}
	if sfd, err = dupFD(sfd); err != nil {
		return err
	}
	defer unix.Close(sfd)
	sst, ok, err := lstatAt(sfd, path.Base(src))
	if err != nil || !ok || ftype(&sst) != unix.S_IFREG {
		return nil // the file vanished from the source: nothing to link to
	}
	dfd, err := r.dirFD(path.Dir(hl.rel))
	if err != nil {
		return err
	}
	name := path.Base(hl.rel)
	st, ok, err := lstatAt(dfd, name)
	if err != nil {
		return err
	}
	if ok && st.Dev == sst.Dev && st.Ino == sst.Ino {
		return nil
	}
	tmp := r.tmpName()
	if err := unix.Linkat(sfd, path.Base(src), dfd, tmp, 0); err != nil {
		return err
	}
	return r.place(dfd, path.Dir(hl.rel), tmp, name)
}

func (r *receiver) setDirMeta(d *dirMeta) error {
	fd := r.rootfd
	if d.rel != "." {
		var err error
		if fd, err = openBeneath(r.rootfd, d.rel, unix.O_RDONLY|unix.O_DIRECTORY); err != nil {
			return err
		}
		defer unix.Close(fd)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	chowned := false
	if r.root && (st.Uid != d.uid || st.Gid != d.gid) {
		if err := unix.Fchown(fd, int(d.uid), int(d.gid)); err != nil {
			return err
		}
		chowned = true
	}
	if st.Mode&0o7777 != d.mode || chowned {
		if err := unix.Fchmod(fd, d.mode); err != nil {
			return err
		}
	}
	if mtimeOf(&st) != d.mtime {
		return futimens(fd, d.mtime)
	}
	return nil
}

// dirCache keeps a few directory descriptors for files that arrive after
// the manifest moved past their directory.
type dirCache struct {
	rootfd  int
	entries map[string]*cacheEntry
	clock   uint64
}

type cacheEntry struct {
	fd   int
	used uint64
}

const dirCacheSize = 32

func (c *dirCache) get(rel string) (int, error) {
	if rel == "." {
		return c.rootfd, nil
	}
	c.clock++
	if e, ok := c.entries[rel]; ok {
		e.used = c.clock
		return e.fd, nil
	}
	fd, err := openBeneath(c.rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return -1, err
	}
	if c.entries == nil {
		c.entries = map[string]*cacheEntry{}
	}
	if len(c.entries) >= dirCacheSize {
		var oldest string
		var ou uint64 = 1<<64 - 1
		for k, e := range c.entries {
			if e.used < ou {
				oldest, ou = k, e.used
			}
		}
		unix.Close(c.entries[oldest].fd)
		delete(c.entries, oldest)
	}
	c.entries[rel] = &cacheEntry{fd: fd, used: c.clock}
	return fd, nil
}

// purge forgets rel and what is under it (removed or replaced).
func (c *dirCache) purge(rel string) {
	for k, e := range c.entries {
		if k == rel || strings.HasPrefix(k, rel+"/") {
			unix.Close(e.fd)
			delete(c.entries, k)
		}
	}
}

func (c *dirCache) closeAll() {
	for k, e := range c.entries {
		unix.Close(e.fd)
		delete(c.entries, k)
	}
}
