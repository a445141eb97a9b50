package blocksync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/klauspost/compress/s2"
	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/agent/transport"
)

// ErrTargetTooSmall: a target disk cannot hold the source disk.
var ErrTargetTooSmall = errors.New("blocksync: target disk smaller than the source disk")

// Receive is the target side of one pass: it writes the blocks into the
// target disks (device or image file paths, by index) and acknowledges each
// checkpoint once the data is synced. Anything out of place — a block past
// the disk's end, an unknown frame, a corrupt compressed block, a full
// target — ends the pass with an error told to the sender; nothing is
// written past a disk's announced size.
func Receive(ctx context.Context, c *transport.Conn, disks []string) error {
	r := &receiver{c: c, disks: disks}
	defer r.closeDisk()
	err := r.run(ctx)
	if err != nil {
		var re *transport.RemoteError
		switch {
		case errors.As(err, &re):
		case ctx.Err() != nil:
			c.SendError(transport.StoppingMsg)
		default:
			c.SendError(err.Error())
		}
	}
	return err
}

type receiver struct {
	c     *transport.Conn
	disks []string
	f     *os.File
	index uint32
	size  uint64
	bs    uint32
	buf   []byte
	zeros []byte
}

func (r *receiver) run(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		typ, p, err := r.c.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("blocksync: the sender closed mid-pass")
			}
			return err
		}
		switch typ {
		case tDiskBegin:
			if err := r.begin(p); err != nil {
				return err
			}
		case tBlock:
			if err := r.block(p); err != nil {
				return err
			}
		case tZero:
			if err := r.zero(p); err != nil {
				return err
			}
		case tCheckpoint, tDiskEnd:
			if r.f == nil {
				return errors.New("blocksync: checkpoint outside a disk")
			}
			if len(p) != 8 {
				return errShort
			}
			if err := r.f.Sync(); err != nil {
				return fmt.Errorf("blocksync: sync target disk %d: %w", r.index, err)
			}
			off := beU64(p)
			if off > r.size {
				return fmt.Errorf("blocksync: checkpoint at %d past the disk's %d bytes", off, r.size)
			}
			if err := r.c.Send(tAck, ackFrame(r.index, off)); err != nil {
				return err
			}
			if err := r.c.Flush(); err != nil {
				return err
			}
			if typ == tDiskEnd {
				r.closeDisk()
			}
		case tDone:
			if r.f != nil {
				return errors.New("blocksync: pass ended inside a disk")
			}
			if err := r.c.Send(tDoneOK, nil); err != nil {
				return err
			}
			return r.c.Flush()
		default:
			return fmt.Errorf("blocksync: unexpected frame %d", typ)
		}
	}
}

func (r *receiver) begin(p []byte) error {
	if r.f != nil {
		return errors.New("blocksync: a disk begins inside another")
	}
	d, err := decodeDiskBegin(p)
	if err != nil {
		return err
	}
	if int(d.Index) >= len(r.disks) {
		return fmt.Errorf("blocksync: disk %d: the target has %d disks", d.Index, len(r.disks))
	}
	f, err := os.OpenFile(r.disks[d.Index], os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("blocksync: target disk %d: %w", d.Index, err)
	}
	size, err := f.Seek(0, io.SeekEnd) // works for files and block devices
	if err != nil {
		f.Close()
		return fmt.Errorf("blocksync: target disk %d: %w", d.Index, err)
	}
	if uint64(size) < d.Size {
		f.Close()
		return fmt.Errorf("%w: disk %d is %d bytes, the source's %d", ErrTargetTooSmall, d.Index, size, d.Size)
	}
	r.f, r.index, r.size, r.bs = f, d.Index, d.Size, d.BlockSize
	return nil
}

func (r *receiver) inside(off uint64, n uint32) error {
	if r.f == nil {
		return errors.New("blocksync: data outside a disk")
	}
	if off > r.size || uint64(n) > r.size-off {
		return fmt.Errorf("blocksync: %d bytes at %d past the end of disk %d (%d bytes)", n, off, r.index, r.size)
	}
	return nil
}

func (r *receiver) block(p []byte) error {
	h, data, err := decodeBlock(p)
	if err != nil {
		return err
	}
	if err := r.inside(h.Offset, h.RawLen); err != nil {
		return err
	}
	raw := data
	if h.Flags&flagS2 != 0 {
		n, err := s2.DecodedLen(data)
		if err != nil || n != int(h.RawLen) {
			return fmt.Errorf("blocksync: corrupt block at %d (%v)", h.Offset, err)
		}
		if cap(r.buf) < n {
			r.buf = make([]byte, n)
		}
		if raw, err = s2.Decode(r.buf[:n], data); err != nil {
			return fmt.Errorf("blocksync: corrupt block at %d: %w", h.Offset, err)
		}
	} else if len(raw) != int(h.RawLen) {
		return fmt.Errorf("blocksync: block at %d has %d bytes, announced %d", h.Offset, len(raw), h.RawLen)
	}
	if _, err := r.f.WriteAt(raw, int64(h.Offset)); err != nil {
		return fmt.Errorf("blocksync: write target disk %d at %d: %w", r.index, h.Offset, err)
	}
	return nil
}

func (r *receiver) zero(p []byte) error {
	off, n, err := decodeZero(p)
	if err != nil {
		return err
	}
	if err := r.inside(off, n); err != nil {
		return err
	}
	// Punch a hole (the image stays sparse); a device or a file system
	// without holes gets zeros written.
	err = unix.Fallocate(int(r.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(n))
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EOPNOTSUPP) && !errors.Is(err, syscall.ENOTSUP) && !errors.Is(err, syscall.ENODEV) &&
		!errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("blocksync: zero target disk %d at %d: %w", r.index, off, err)
	}
	if len(r.zeros) < int(n) {
		r.zeros = make([]byte, n)
	}
	if _, err := r.f.WriteAt(r.zeros[:n], int64(off)); err != nil {
		return fmt.Errorf("blocksync: zero target disk %d at %d: %w", r.index, off, err)
	}
	return nil
}

func (r *receiver) closeDisk() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

func beU64(p []byte) uint64 {
	return uint64(p[0])<<56 | uint64(p[1])<<48 | uint64(p[2])<<40 | uint64(p[3])<<32 |
		uint64(p[4])<<24 | uint64(p[5])<<16 | uint64(p[6])<<8 | uint64(p[7])
}
