//go:build linux

package filesync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"
	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/agent/transport"
)

// SendOptions says what a pass copies.
type SendOptions struct {
	// Root is the source tree: "/" in production.
	Root string
	// Excludes are paths (absolute, taken relative to Root) skipped with
	// everything under them; the receiver leaves them alone too. When Root is
	// "/", /proc /sys /dev /run /tmp and the mount points of virtual file
	// systems are always skipped (created on the target as empty
	// directories).
	Excludes []string
	// Progress, if set, is called about every second and once at the end
	// (never concurrently).
	Progress func(p Progress)
}

// Progress of a pass. The totals grow while the tree is walked. A file the
// target already has counts as done.
type Progress struct{ BytesDone, BytesTotal, FilesDone, FilesTotal int64 }

// Stats of a finished pass.
type Stats struct {
	FilesSent    int64 // regular files whose content was sent (whole or changed blocks)
	FilesDeleted int64 // entries removed on the target (recursively counted)
	BytesSent    int64 // file payload sent (after compression), frame headers and manifest excluded
	BytesSkipped int64 // file bytes not sent: files the target had, and unchanged blocks
}

const (
	chunkSize       = 1 << 20   // data frames carry at most this much raw data
	pageSize        = 4 << 10   // zero runs are detected at this granularity
	entriesFrameLen = 32 << 10  // a manifest frame is flushed past this size
	deltaBlockSize  = 128 << 10 // the unit of change detection
	maxHashFrame    = 64 << 10  // hashes per tDelta frame
)

var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 32+s2.MaxEncodedLen(chunkSize))
	return &b
}}

// frame is one message of a job, handed from a worker to the send loop.
type frame struct {
	typ      uint8
	p        []byte
	pooled   *[]byte
	fileDone int64 // ≥ 0 on tFileEnd/tGone: the file is finished (its size)
	sent     bool  // tFileEnd: the file's content was sent
}

type job struct {
	index  uint32
	delta  bool
	bs     int64
	tsize  int64
	hashes []uint64
}

type srcRec struct {
	rel       string
	kind      entryKind
	requested bool
}

type sender struct {
	c      *transport.Conn
	t      *tree
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu   sync.RWMutex
	recs []srcRec

	jobs   *queue[job]
	result chan Stats

	bytesTotal, filesTotal, bytesDone, filesDone atomic.Int64
	filesSent, bytesSent, bytesSkipped           atomic.Int64
}

// Send runs one pass from o.Root to the receiver at the other end of c (a
// connection of kind transport.KindFile): a full copy the first time, then
// only what changed. The connection is not reusable after an error.
func Send(ctx context.Context, c *transport.Conn, o SendOptions) (Stats, error) {
	t, err := newTree(o)
	if err != nil {
		return Stats{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s := &sender{c: c, t: t, ctx: ctx, cancel: cancel, jobs: newQueue[job](), result: make(chan Stats, 1)}

	var wg sync.WaitGroup
	manifest := make(chan []byte, 4)
	var walked atomic.Uint64
	wg.Go(func() {
		defer close(manifest)
		n, err := s.walk(manifest)
		if err != nil {
			s.cancel(err)
			return
		}
		walked.Store(n)
	})
	wg.Go(func() {
		if err := s.readRequests(); err != nil {
			s.cancel(err)
		}
	})
	ordered := make(chan chan frame, 8)
	work := make(chan workItem)
	wg.Go(func() { s.dispatch(ordered, work) })
	for range hashWorkers() {
		wg.Go(func() {
			buf := make([]byte, chunkSize)
			for it := range work {
				if err := s.runJob(it.j, it.out, buf); err != nil {
					s.cancel(err)
				}
				close(it.out)
			}
		})
	}
	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if o.Progress != nil {
		progressWG.Go(func() {
			tk := time.NewTicker(time.Second)
			defer tk.Stop()
			for {
				select {
				case <-tk.C:
					o.Progress(s.progress())
				case <-progressDone:
					return
				}
			}
		})
	}

	stats, err := s.sendLoop(manifest, ordered, &walked)
	if err != nil && isConnErr(err) {
		err = preferRemote(ctx, err)
	}
	if err == nil {
		select {
		case r := <-s.result:
			stats.FilesDeleted = r.FilesDeleted
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
	}
	if err != nil {
		abort(c, s.cancel, err)
	}
	wg.Wait()
	close(progressDone)
	progressWG.Wait()
	if o.Progress != nil {
		o.Progress(s.progress())
	}
	if err != nil {
		return s.stats(), err
	}
	stats.FilesSent, stats.BytesSent, stats.BytesSkipped = s.filesSent.Load(), s.bytesSent.Load(), s.bytesSkipped.Load()
	return stats, nil
}

func (s *sender) stats() Stats {
	return Stats{FilesSent: s.filesSent.Load(), BytesSent: s.bytesSent.Load(), BytesSkipped: s.bytesSkipped.Load()}
}

func (s *sender) progress() Progress {
	return Progress{BytesDone: s.bytesDone.Load(), BytesTotal: s.bytesTotal.Load(),
		FilesDone: s.filesDone.Load(), FilesTotal: s.filesTotal.Load()}
}

// preferRemote: when a write fails because the receiver hung up, the reason
// it gave is on its way to the request reader; wait a moment for it.
func preferRemote(ctx context.Context, err error) error {
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	var re *transport.RemoteError
	if cause := context.Cause(ctx); errors.As(cause, &re) {
		return cause
	}
	return err
}

// abort ends a pass (a copy or a verification) that failed: its goroutines
// are cancelled, the receiver hears the reason unless it gave it or the
// link is gone, and a read blocked on c (the request or result reader)
// returns.
func abort(c *transport.Conn, cancel context.CancelCauseFunc, err error) {
	cancel(err)
	var re *transport.RemoteError
	if !errors.As(err, &re) && !isConnErr(err) {
		c.SendError(err.Error())
	}
	_ = c.SetDeadline(time.Now())
}

// isConnErr: the connection itself failed, so there is no one to tell.
func isConnErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// walk streams the manifest: entries encoded in frames of about 32 KiB.
func (s *sender) walk(out chan<- []byte) (uint64, error) {
	var n uint64
	var b batch
	flush := func() error {
		p := b.take()
		if p == nil {
			return nil
		}
		select {
		case out <- p:
			return nil
		case <-s.ctx.Done():
			return context.Cause(s.ctx)
		}
	}
	err := s.t.walk(s.ctx, func(e *entry) error {
		s.mu.Lock()
		s.recs = append(s.recs, srcRec{rel: e.Path, kind: e.Kind})
		s.mu.Unlock()
		if e.Kind == kFile {
			s.filesTotal.Add(1)
			s.bytesTotal.Add(e.Size)
		}
		b.buf = appendEntry(b.buf, e)
		n++
		if b.add() {
			return flush()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, flush()
}

// readRequests reads what the receiver asks for and queues the jobs.
func (s *sender) readRequests() error {
	partial := map[uint32]*job{}
	for {
		typ, p, err := s.c.Recv()
		if err != nil {
			if s.ctx.Err() != nil {
				return context.Cause(s.ctx)
			}
			return fmt.Errorf("filesync: receiver: %w", err)
		}
		switch typ {
		case tWant:
			if s.jobs.isClosed() {
				return errors.New("filesync: receiver asked for files after its last request")
			}
			r := &reader{p: p}
			sf, sb := r.uvarint(), r.uvarint()
			n := r.uvarint()
			if r.err == nil && n > uint64(len(p)) {
				return fmt.Errorf("filesync: bad request count %d", n)
			}
			s.filesDone.Add(int64(sf))
			s.bytesDone.Add(int64(sb))
			s.bytesSkipped.Add(int64(sb))
			for i := uint64(0); i < n && r.err == nil; i++ {
				idx := r.uvarint()
				if r.err != nil {
					break
				}
				if err := s.claim(idx); err != nil {
					return err
				}
				s.jobs.push(job{index: uint32(idx)})
			}
			if err := r.end(); err != nil {
				return fmt.Errorf("filesync: bad request frame: %w", err)
			}
		case tDelta:
			r := &reader{p: p}
			idx, bs, tsize, total, first := r.u32(), r.u32(), r.u64(), r.u64(), r.u64()
			if r.err != nil || len(r.p)%8 != 0 {
				return errors.New("filesync: bad block hash frame")
			}
			j := partial[idx]
			if j == nil {
				if first != 0 || bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 ||
					tsize > maxFileSize || total != (tsize+uint64(bs)-1)/uint64(bs) || total > maxHashBlocks {
					return fmt.Errorf("filesync: bad block hashes for entry %d", idx)
				}
				if err := s.claim(uint64(idx)); err != nil {
					return err
				}
				j = &job{index: idx, delta: true, bs: int64(bs), tsize: int64(tsize), hashes: make([]uint64, 0, total)}
				partial[idx] = j
			}
			if first != uint64(len(j.hashes)) || first+uint64(len(r.p)/8) > uint64(cap(j.hashes)) {
				return fmt.Errorf("filesync: block hashes of entry %d out of order", idx)
			}
			for len(r.p) > 0 {
				j.hashes = append(j.hashes, binary.BigEndian.Uint64(r.p))
				r.p = r.p[8:]
			}
			if len(j.hashes) == cap(j.hashes) {
				delete(partial, idx)
				s.jobs.push(*j)
			}
		case tReqEnd:
			if len(partial) != 0 {
				return errors.New("filesync: receiver ended its requests with block hashes missing")
			}
			s.jobs.close()
		case tResult:
			if !s.jobs.isClosed() {
				return errors.New("filesync: receiver reported a result before ending its requests")
			}
			r := &reader{p: p}
			deleted := r.uvarint()
			_ = r.uvarint()
			if err := r.end(); err != nil {
				return fmt.Errorf("filesync: bad result: %w", err)
			}
			s.result <- Stats{FilesDeleted: int64(deleted)}
			return nil
		default:
			return fmt.Errorf("filesync: unexpected frame %d from the receiver", typ)
		}
	}
}

// claim checks that a request names a regular file of the manifest, once.
func (s *sender) claim(idx uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx >= uint64(len(s.recs)) || s.recs[idx].kind != kFile {
		return fmt.Errorf("filesync: receiver asked for entry %d, not a file of the manifest", idx)
	}
	if s.recs[idx].requested {
		return fmt.Errorf("filesync: receiver asked twice for entry %d", idx)
	}
	s.recs[idx].requested = true
	return nil
}

type workItem struct {
	j   job
	out chan frame
}

// dispatch hands jobs to the workers in order, and their output channels
// to the send loop in the same order.
func (s *sender) dispatch(ordered chan<- chan frame, work chan<- workItem) {
	defer close(work)
	defer close(ordered)
	for {
		j, ok := s.jobs.pop(s.ctx)
		if !ok {
			return
		}
		out := make(chan frame, 2)
		select {
		case ordered <- out:
		case <-s.ctx.Done():
			return
		}
		select {
		case work <- workItem{j, out}:
		case <-s.ctx.Done():
			close(out)
			return
		}
	}
}

// sendLoop is the only goroutine that sends: the manifest first whenever a
// frame of it is ready, file data otherwise; it flushes when it would wait.
func (s *sender) sendLoop(manifest <-chan []byte, ordered <-chan chan frame, walked *atomic.Uint64) (Stats, error) {
	c := s.c
	send := func(typ uint8, p []byte) error {
		if err := c.Send(typ, p); err != nil {
			return fmt.Errorf("filesync: send: %w", err)
		}
		return nil
	}
	begin := appendProtected([]byte{protoVersion}, s.t.protected())
	if err := send(tBegin, begin); err != nil {
		return Stats{}, err
	}
	for manifest != nil || ordered != nil {
		var (
			m     []byte
			out   chan frame
			ok    bool
			which int
		)
		// Without waiting first, preferring the manifest; flush before
		// waiting.
		select {
		case m, ok = <-manifest:
			which = 1
		default:
			select {
			case m, ok = <-manifest:
				which = 1
			case out, ok = <-ordered:
				which = 2
			default:
				if err := c.Flush(); err != nil {
					return Stats{}, fmt.Errorf("filesync: send: %w", err)
				}
				select {
				case m, ok = <-manifest:
					which = 1
				case out, ok = <-ordered:
					which = 2
				case <-s.ctx.Done():
					return Stats{}, context.Cause(s.ctx)
				}
			}
		}
		if !ok {
			if s.ctx.Err() != nil {
				return Stats{}, context.Cause(s.ctx)
			}
			if which == 1 {
				if err := send(tManifestEnd, be64(nil, walked.Load())); err != nil {
					return Stats{}, err
				}
				manifest = nil
			} else {
				ordered = nil
			}
			continue
		}
		if which == 1 {
			if err := send(tEntries, m); err != nil {
				return Stats{}, err
			}
			continue
		}
		for f := range out {
			err := send(f.typ, f.p)
			if f.pooled != nil {
				*f.pooled = f.p[:0]
				chunkPool.Put(f.pooled)
			}
			if err != nil {
				return Stats{}, err
			}
			if f.fileDone >= 0 {
				s.filesDone.Add(1)
				s.bytesDone.Add(f.fileDone)
				if f.sent {
					s.filesSent.Add(1)
				}
			}
		}
		if s.ctx.Err() != nil {
			return Stats{}, context.Cause(s.ctx)
		}
	}
	if err := send(tDone, nil); err != nil {
		return Stats{}, err
	}
	if err := c.Flush(); err != nil {
		return Stats{}, fmt.Errorf("filesync: send: %w", err)
	}
	return Stats{}, nil
}

// runJob reads one requested file and turns it into frames.
func (s *sender) runJob(j job, out chan<- frame, buf []byte) error {
	s.mu.RLock()
	rel := s.recs[j.index].rel
	s.mu.RUnlock()
	em := &emitter{ctx: s.ctx, out: out, digest: xxhash.New(), s: s}
	gone := func() error {
		return em.put(frame{typ: tGone, p: be32(nil, j.index), fileDone: 0})
	}
	abs := s.t.abs(rel)
	f, err := openSource(abs)
	if err != nil {
		if vanished(err) {
			return gone()
		}
		return fmt.Errorf("filesync: open %s: %w", abs, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("filesync: stat %s: %w", abs, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return gone()
	}
	size := st.Size
	mode := byte(modeWhole)
	if j.delta {
		mode = modeDelta
	}
	hdr := be64(be32(make([]byte, 0, 13), j.index), uint64(size))
	if err := em.put(frame{typ: tFile, p: append(hdr, mode), fileDone: -1}); err != nil {
		return err
	}
	if j.delta {
		size, err = em.deltaStream(f, size, j, buf)
	} else {
		size, err = em.wholeStream(f, size, buf)
	}
	if err != nil {
		return fmt.Errorf("filesync: read %s: %w", abs, err)
	}
	if err := em.flush(); err != nil {
		return err
	}
	end := be64(be64(make([]byte, 0, 16), uint64(size)), em.digest.Sum64())
	return em.put(frame{typ: tFileEnd, p: end, fileDone: size, sent: true})
}

func openSource(p string) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := unix.Open(p, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(p, flags, 0)
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

// emitter turns a file's content, in order, into data, hole and copy
// frames, merging neighbours of the same kind.
type emitter struct {
	ctx    context.Context
	s      *sender
	out    chan<- frame
	digest *xxhash.Digest

	cursor  int64
	pend    uint8 // tHole, tCopy or 0
	pendOff int64
	pendLen int64
	data    *[]byte // raw data not yet framed
	dataOff int64
}

func (e *emitter) put(f frame) error {
	select {
	case e.out <- f:
		return nil
	case <-e.ctx.Done():
		if f.pooled != nil {
			chunkPool.Put(f.pooled)
		}
		return context.Cause(e.ctx)
	}
}

func (e *emitter) run(kind uint8, n int64) error {
	if n <= 0 {
		return nil
	}
	if err := e.flushData(); err != nil {
		return err
	}
	if e.pend != kind {
		if err := e.flushRun(); err != nil {
			return err
		}
		e.pend, e.pendOff = kind, e.cursor
	}
	e.pendLen += n
	e.cursor += n
	return nil
}

func (e *emitter) hole(n int64) error { return e.run(tHole, n) }

func (e *emitter) copyRun(n int64) error {
	if err := e.run(tCopy, n); err != nil {
		return err
	}
	e.s.bytesSkipped.Add(n)
	return nil
}

func (e *emitter) putData(b []byte) error {
	if err := e.flushRun(); err != nil {
		return err
	}
	for len(b) > 0 {
		if e.data == nil {
			e.data = chunkPool.Get().(*[]byte)
			*e.data = (*e.data)[:0]
			e.dataOff = e.cursor
		}
		n := min(len(b), chunkSize-len(*e.data))
		*e.data = append(*e.data, b[:n]...)
		e.cursor += int64(n)
		b = b[n:]
		if len(*e.data) == chunkSize {
			if err := e.flushData(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *emitter) flushRun() error {
	if e.pend == 0 {
		return nil
	}
	p := be64(be64(make([]byte, 0, 16), uint64(e.pendOff)), uint64(e.pendLen))
	kind := e.pend
	e.pend, e.pendLen = 0, 0
	return e.put(frame{typ: kind, p: p, fileDone: -1})
}

// flushData frames the pending raw data, s2-compressed when that saves at
// least an eighth.
func (e *emitter) flushData() error {
	if e.data == nil {
		return nil
	}
	raw := *e.data
	e.digest.Write(raw)
	fb := chunkPool.Get().(*[]byte)
	p := (*fb)[:13]
	binary.BigEndian.PutUint64(p, uint64(e.dataOff))
	binary.BigEndian.PutUint32(p[8:], uint32(len(raw)))
	p[12] = 0
	if len(raw) >= 64 {
		enc := s2.Encode(p[13:cap(p)], raw)
		if len(enc) < len(raw)-len(raw)/8 && &enc[0] == &p[13:cap(p)][0] {
			p = p[:13+len(enc)]
			p[12] = flagS2
		}
	}
	if p[12] == 0 {
		p = append(p, raw...)
	}
	e.s.bytesSent.Add(int64(len(p) - 13))
	chunkPool.Put(e.data)
	e.data = nil
	return e.put(frame{typ: tData, p: p, pooled: fb, fileDone: -1})
}

func (e *emitter) flush() error {
	if err := e.flushData(); err != nil {
		return err
	}
	return e.flushRun()
}

// pages emits b (content at the cursor), its all-zero pages as holes.
func (e *emitter) pages(b []byte) error {
	for len(b) > 0 {
		n := min(len(b), pageSize)
		// Grow the run while the pages stay of one kind.
		zero := isZero(b[:n])
		for n < len(b) {
			m := min(len(b)-n, pageSize)
			if isZero(b[n:n+m]) != zero {
				break
			}
			n += m
		}
		var err error
		if zero {
			err = e.hole(int64(n))
		} else {
			err = e.putData(b[:n])
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// wholeStream sends the whole file: holes found with SEEK_DATA/SEEK_HOLE
// are not read, zero pages in the data become holes too. It returns the
// size sent (less than size if the file shrank meanwhile).
func (e *emitter) wholeStream(f *os.File, size int64, buf []byte) (int64, error) {
	return readSparse(f, size, buf, e.hole, e.pages)
}

// deltaStream sends a file the target has an older version of: block by
// block, a hole for a zero block, a copy for a block whose hash matches the
// target's, the data otherwise.
func (e *emitter) deltaStream(f *os.File, size int64, j job, buf []byte) (int64, error) {
	fd := int(f.Fd())
	bs := j.bs
	if int64(len(buf)) < bs {
		buf = make([]byte, bs)
	}
	var off int64
	for i := 0; off < size; i++ {
		n := min(bs, size-off)
		if isHole(fd, off, n, size) {
			if err := e.hole(n); err != nil {
				return 0, err
			}
			off += n
			continue
		}
		got, err := f.ReadAt(buf[:n], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		blk := buf[:got]
		var werr error
		switch {
		case got == 0:
		case isZero(blk):
			werr = e.hole(int64(got))
		case i < len(j.hashes) && int64(got) == min(bs, j.tsize-off) && xxhash.Sum64(blk) == j.hashes[i]:
			werr = e.copyRun(int64(got))
		default:
			werr = e.putData(blk)
		}
		if werr != nil {
			return 0, werr
		}
		off += int64(got)
		if int64(got) < n {
			return off, nil // shrank meanwhile
		}
	}
	return off, nil
}
