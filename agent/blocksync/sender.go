package blocksync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/smsflow/smsflow/agent/transport"
)

// Disk is one source disk: a block device or an image file standing in
// for one.
type Disk struct {
	Name string // as registered (/dev/vda)
	Path string // what is read
	Size int64  // bytes to copy
}

// Options configure a pass.
type Options struct {
	Disks []Disk
	// Sync sends only the blocks that changed since the last pass; without
	// it the pass is a full copy (resumed from its checkpoint).
	Sync bool
	// Resend forgets the block hashes recorded by earlier passes: the
	// target was put back to an earlier state (a rollback restored its
	// snapshot), so what the agent remembers sending is no longer there.
	// Every block is then compared as unknown and sent (zeros as zeros).
	Resend    bool
	BlockSize int    // default DefaultBlockSize
	StateDir  string // checkpoints and block hashes of this task
	// CheckpointEvery: bytes of disk between checkpoints (default 64 MiB).
	CheckpointEvery int64
	Workers         int // compressors (default GOMAXPROCS)
	// Progress hears of the pass about once a second and at the end.
	Progress func(Progress)
}

// Progress of a pass.
type Progress struct {
	Disk       int
	BytesDone  int64 // of all disks, read and handled
	BytesTotal int64
	RawSent    int64 // block bytes sent, before compression
	WireSent   int64 // bytes on the wire
}

// Stats of a pass.
type Stats struct {
	Blocks, Sent, Zero, Unchanged int64
	RawBytes                      int64 // bytes of the blocks sent
	PayloadBytes                  int64 // after compression
	WireBytes                     int64
}

// CompressRate is raw ÷ compressed × 100 (100: no gain), as the API's
// compress_rate (0–10000).
func (s Stats) CompressRate() float64 {
	if s.PayloadBytes == 0 {
		return 100
	}
	return min(float64(s.RawBytes)/float64(s.PayloadBytes)*100, 10000)
}

// ErrDiskChanged: a source disk shrank or vanished mid-copy, or a sync
// pass found it at another size than the copy it syncs.
var ErrDiskChanged = errors.New("blocksync: source disk changed during the copy")

type item struct {
	idx  int64
	off  int64
	n    int
	buf  []byte
	out  []byte
	zero bool
	hash uint64
	send bool
	s2   bool
	done chan struct{}
}

// Send runs one pass over the disks.
func Send(ctx context.Context, c *transport.Conn, o Options) (Stats, error) {
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.BlockSize%512 != 0 || o.BlockSize > MaxBlockSize {
		return Stats{}, fmt.Errorf("blocksync: block size %d", o.BlockSize)
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 64 << 20
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	st, err := loadState(o.StateDir)
	if err != nil {
		return Stats{}, err
	}
	var total int64
	for _, d := range o.Disks {
		total += d.Size
	}
	s := &sender{c: c, o: o, st: st, total: total, acks: make(chan ack, 64), start: time.Now()}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recvErr := make(chan error, 1)
	go func() { recvErr <- s.readAcks(ctx) }()

	for i, d := range o.Disks {
		if err := s.disk(ctx, i, d); err != nil {
			// The receiver may have refused first (a small target disk):
			// its reason beats our broken pipe. A source disk that changed
			// or a cancel is ours alone: no reason is coming to wait for.
			if !errors.Is(err, ErrDiskChanged) && ctx.Err() == nil {
				select {
				case rerr := <-recvErr:
					var re *transport.RemoteError
					if errors.As(rerr, &re) {
						return s.stats, rerr
					}
				case <-time.After(2 * time.Second):
				}
			}
			c.SendError(err.Error())
			return s.stats, err
		}
	}
	if err := c.Send(tDone, nil); err != nil {
		return s.stats, err
	}
	if err := c.Flush(); err != nil {
		return s.stats, err
	}
	if err := <-recvErr; err != nil {
		return s.stats, err
	}
	s.stats.WireBytes = c.BytesSent()
	s.report(len(o.Disks)-1, true)
	return s.stats, nil
}

type ack struct {
	disk uint32
	off  uint64
}

type sender struct {
	c       *transport.Conn
	o       Options
	st      *state
	total   int64
	base    int64 // bytes of the disks before the current one
	done    int64
	stats   Stats
	acks    chan ack
	start   time.Time
	lastRep time.Time
}

// readAcks reads the receiver's answers: acks go to the disk loop, the
// final doneOK ends it. An error from the receiver ends the pass.
func (s *sender) readAcks(ctx context.Context) error {
	for {
		typ, p, err := s.c.Recv()
		if err != nil {
			close(s.acks)
			return fmt.Errorf("blocksync: receiver: %w", err)
		}
		switch typ {
		case tAck:
			d, off, err := decodeAck(p)
			if err != nil {
				close(s.acks)
				return err
			}
			select {
			case s.acks <- ack{d, off}:
			case <-ctx.Done():
				return ctx.Err()
			}
		case tDoneOK:
			close(s.acks)
			return nil
		default:
			close(s.acks)
			return fmt.Errorf("blocksync: unexpected frame %d from the receiver", typ)
		}
	}
}

func (s *sender) disk(ctx context.Context, i int, d Disk) error {
	f, err := os.Open(d.Path)
	if err != nil {
		return fmt.Errorf("%w: open %s: %v", ErrDiskChanged, d.Name, err)
	}
	defer f.Close()
	bs := int64(s.o.BlockSize)
	blocks := (d.Size + bs - 1) / bs
	ds := s.st.Disks[i]
	if s.o.Sync && ds != nil && ds.Size != d.Size {
		// A sync pass carries changes onto the copy it builds on: a disk of
		// another size is not that disk any more. Synced at its new size, a
		// shrunk disk would verify clean over its shorter length with the
		// old tail left on the target.
		return fmt.Errorf("%w: %s is %d bytes, %d when it was copied", ErrDiskChanged, d.Name, d.Size, ds.Size)
	}
	same := ds != nil && ds.Size == d.Size && ds.BlockSize == s.o.BlockSize && !s.o.Resend
	if !same {
		ds = &diskState{Size: d.Size, BlockSize: s.o.BlockSize}
		s.st.Disks[i] = ds
	}
	hf, err := openHashes(s.st.dir, i, blocks, same)
	if err != nil {
		return err
	}
	defer hf.close()
	// A full copy resumes at its checkpoint; a sync pass (or a full copy
	// asked again once complete) reads everything and sends what changed.
	from := int64(0)
	syncing := s.o.Sync || ds.Full
	if !syncing {
		from = ds.Copied
	}
	if err := s.c.Send(tDiskBegin, diskBegin{Index: uint32(i), Size: uint64(d.Size), BlockSize: uint32(bs), From: uint64(from)}.encode()); err != nil {
		return err
	}
	s.done = s.base + from

	items := make(chan *item, 4*s.o.Workers)
	work := make(chan *item, 4*s.o.Workers)
	var readErr error // set by the reader before it closes items
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// On the way out, stop the reader first, then wait for the compressors
	// (they end when the reader closes their channel).
	defer func() { stop(); wg.Wait() }()
	pool := sync.Pool{New: func() any { return make([]byte, bs) }}
	outPool := sync.Pool{New: func() any { return make([]byte, s2.MaxEncodedLen(int(bs))) }}
	go func() {
		defer close(items)
		defer close(work)
		for off := from; off < d.Size; off += bs {
			if err := rctx.Err(); err != nil {
				readErr = err
				return
			}
			n := int(min(bs, d.Size-off))
			buf := pool.Get().([]byte)[:n]
			m, err := f.ReadAt(buf, off)
			if m < n {
				if err == nil || errors.Is(err, io.EOF) {
					readErr = fmt.Errorf("%w: %s ends at %d, expected %d bytes", ErrDiskChanged, d.Name, off+int64(m), d.Size)
				} else {
					readErr = fmt.Errorf("%w: read %s at %d: %v", ErrDiskChanged, d.Name, off, err)
				}
				return
			}
			it := &item{idx: off / bs, off: off, n: n, buf: buf, done: make(chan struct{})}
			// To the compressors first: an item the writer waits for is
			// always being worked on.
			select {
			case work <- it:
			case <-rctx.Done():
				readErr = rctx.Err()
				return
			}
			select {
			case items <- it:
			case <-rctx.Done():
				readErr = rctx.Err()
				return
			}
		}
	}()
	for range s.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				it.zero = isZero(it.buf)
				it.hash = blockHash(it.buf)
				it.send = !syncing || hf.hashes[it.idx] != it.hash
				if it.send && !it.zero {
					out := s2.Encode(outPool.Get().([]byte), it.buf)
					if len(out) < it.n*15/16 {
						it.out, it.s2 = out, true
					} else {
						outPool.Put(out[:cap(out)])
					}
				}
				close(it.done)
			}
		}()
	}
	// The writer: in order, send what must go, checkpoint as it goes.
	pendingFrom := from // first block offset not yet acknowledged
	var pending []uint64
	lastCkpt := from
	var zeroOff int64 = -1
	var zeroLen int64
	flushZero := func() error {
		if zeroLen == 0 {
			return nil
		}
		err := s.c.Send(tZero, zeroFrame(uint64(zeroOff), uint32(zeroLen)))
		zeroOff, zeroLen = -1, 0
		return err
	}
	hdr := make([]byte, blockHdrLen)
	var frame []byte
	for it := range items {
		<-it.done
		s.stats.Blocks++
		switch {
		case !it.send:
			s.stats.Unchanged++
			if err := flushZero(); err != nil {
				return err
			}
		case it.zero:
			s.stats.Zero++
			if zeroLen > 0 && zeroOff+zeroLen == it.off && zeroLen+int64(it.n) <= MaxBlockSize {
				zeroLen += int64(it.n)
			} else {
				if err := flushZero(); err != nil {
					return err
				}
				zeroOff, zeroLen = it.off, int64(it.n)
			}
		default:
			if err := flushZero(); err != nil {
				return err
			}
			data := it.buf
			h := blockHdr{Offset: uint64(it.off), RawLen: uint32(it.n)}
			if it.s2 {
				data, h.Flags = it.out, flagS2
			}
			h.put(hdr)
			frame = append(append(frame[:0], hdr...), data...)
			if err := s.c.Send(tBlock, frame); err != nil {
				return err
			}
			s.stats.Sent++
			s.stats.RawBytes += int64(it.n)
			s.stats.PayloadBytes += int64(len(data))
		}
		pending = append(pending, it.hash)
		if it.out != nil {
			outPool.Put(it.out[:cap(it.out)])
		}
		pool.Put(it.buf[:cap(it.buf)])
		end := it.off + int64(it.n)
		s.done = s.base + end
		// The disk's last block is acknowledged by tDiskEnd below: a
		// checkpoint there too would leave a second ack at the disk's end
		// behind, for the next disk to take as its own.
		if end < d.Size && end-lastCkpt >= s.o.CheckpointEvery {
			if err := flushZero(); err != nil {
				return err
			}
			if err := s.checkpoint(tCheckpoint, uint64(end)); err != nil {
				return err
			}
			lastCkpt = end
		}
		// Record what the receiver acknowledged so far.
		if err := s.drainAcks(i, ds, hf, &pendingFrom, &pending, false); err != nil {
			return err
		}
		s.report(i, false)
	}
	if readErr != nil {
		return readErr
	}
	if err := flushZero(); err != nil {
		return err
	}
	if err := s.checkpoint(tDiskEnd, uint64(d.Size)); err != nil {
		return err
	}
	if err := s.drainAcks(i, ds, hf, &pendingFrom, &pending, true); err != nil {
		return err
	}
	ds.Full = true
	if err := s.st.save(); err != nil {
		return err
	}
	s.base += d.Size
	return nil
}

func (s *sender) checkpoint(typ uint8, off uint64) error {
	if err := s.c.Send(typ, u64(off)); err != nil {
		return err
	}
	return s.c.Flush()
}

// drainAcks records the hashes and offset of what the receiver has
// synced. With wait it blocks until the disk's final ack.
func (s *sender) drainAcks(disk int, ds *diskState, hf *hashFile, from *int64, pending *[]uint64, wait bool) error {
	bs := int64(s.o.BlockSize)
	for {
		var a ack
		var ok bool
		if wait {
			a, ok = <-s.acks
			if !ok {
				return errors.New("blocksync: the receiver closed before acknowledging the disk")
			}
		} else {
			select {
			case a, ok = <-s.acks:
				if !ok {
					return errors.New("blocksync: the receiver stopped acknowledging")
				}
			default:
				return nil
			}
		}
		if int(a.disk) != disk {
			return fmt.Errorf("blocksync: ack for disk %d while copying disk %d", a.disk, disk)
		}
		off := int64(a.off)
		n := (off - *from + bs - 1) / bs
		if n < 0 || n > int64(len(*pending)) {
			return fmt.Errorf("blocksync: ack at %d outside what was sent", off)
		}
		first := *from / bs
		if err := hf.commit(first, first+n, (*pending)[:n]); err != nil {
			return err
		}
		*pending = (*pending)[n:]
		*from = off
		if !ds.Full {
			ds.Copied = off
		}
		if err := s.st.save(); err != nil {
			return err
		}
		if off >= ds.Size {
			return nil
		}
		if wait {
			continue
		}
	}
}

func (s *sender) report(disk int, final bool) {
	if s.o.Progress == nil {
		return
	}
	if !final && time.Since(s.lastRep) < time.Second {
		return
	}
	s.lastRep = time.Now()
	s.o.Progress(Progress{Disk: disk, BytesDone: s.done, BytesTotal: s.total, RawSent: s.stats.RawBytes, WireSent: s.c.BytesSent()})
}
