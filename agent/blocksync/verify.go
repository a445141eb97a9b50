package blocksync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/smsflow/smsflow/agent/transport"
)

// DiskCheck is the consistency of one disk: blocks compared, blocks that
// differ and the first few offsets that do.
type DiskCheck struct {
	Name      string
	Blocks    int64
	Different int64
	Offsets   []int64
}

const hashesPerFrame = 64 << 10

// Verify checksums every block of the source disks and has the receiver
// compare them with the target's (a connection of KindVerify).
func Verify(ctx context.Context, c *transport.Conn, disks []Disk, blockSize int) ([]DiskCheck, error) {
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	var out []DiskCheck
	for i, d := range disks {
		hdr := make([]byte, 16)
		binary.BigEndian.PutUint32(hdr, uint32(i))
		binary.BigEndian.PutUint64(hdr[4:], uint64(d.Size))
		binary.BigEndian.PutUint32(hdr[12:], uint32(blockSize))
		if err := c.Send(tVerifyDisk, hdr); err != nil {
			return nil, err
		}
		f, err := os.Open(d.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: open %s: %v", ErrDiskChanged, d.Name, err)
		}
		err = hashDisk(ctx, f, d.Size, blockSize, func(first int64, hs []uint64) error {
			p := make([]byte, 8+8*len(hs))
			binary.BigEndian.PutUint64(p, uint64(first))
			for j, h := range hs {
				binary.BigEndian.PutUint64(p[8+8*j:], h)
			}
			return c.Send(tVerifyHashes, p)
		})
		f.Close()
		if err != nil {
			return nil, err
		}
		if err := c.Send(tVerifyEnd, nil); err != nil {
			return nil, err
		}
		if err := c.Flush(); err != nil {
			return nil, err
		}
		typ, p, err := c.Recv()
		if err != nil {
			return nil, fmt.Errorf("blocksync: verify: %w", err)
		}
		if typ != tVerifyResult || len(p) < 20 || (len(p)-20)%8 != 0 {
			return nil, fmt.Errorf("blocksync: verify: unexpected frame %d", typ)
		}
		dc := DiskCheck{Name: d.Name, Blocks: int64(binary.BigEndian.Uint64(p[4:])), Different: int64(binary.BigEndian.Uint64(p[12:]))}
		for q := p[20:]; len(q) >= 8; q = q[8:] {
			dc.Offsets = append(dc.Offsets, int64(binary.BigEndian.Uint64(q)))
		}
		out = append(out, dc)
	}
	return out, nil
}

// hashDisk reads a disk and hands its block hashes out in batches.
func hashDisk(ctx context.Context, f *os.File, size int64, bs int, emit func(first int64, hs []uint64) error) error {
	buf := make([]byte, bs)
	batch := make([]uint64, 0, hashesPerFrame)
	first := int64(0)
	for off, idx := int64(0), int64(0); off < size; off, idx = off+int64(bs), idx+1 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(int64(bs), size-off))
		m, err := f.ReadAt(buf[:n], off)
		if m < n {
			if err == nil || errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: ends at %d, expected %d bytes", ErrDiskChanged, off+int64(m), size)
			}
			return err
		}
		batch = append(batch, blockHash(buf[:n]))
		if len(batch) == cap(batch) {
			if err := emit(first, batch); err != nil {
				return err
			}
			first, batch = idx+1, batch[:0]
		}
	}
	if len(batch) > 0 {
		return emit(first, batch)
	}
	return nil
}

// ServeVerify is the target side of Verify.
func ServeVerify(ctx context.Context, c *transport.Conn, disks []string) error {
	for {
		typ, p, err := c.Recv()
		if errors.Is(err, io.EOF) {
			return nil // the agent is done
		}
		if err != nil {
			return err
		}
		if typ != tVerifyDisk || len(p) != 16 {
			c.SendError(fmt.Sprintf("verify: unexpected frame %d", typ))
			return fmt.Errorf("blocksync: verify: unexpected frame %d", typ)
		}
		idx := binary.BigEndian.Uint32(p)
		size := int64(binary.BigEndian.Uint64(p[4:]))
		bs := int(binary.BigEndian.Uint32(p[12:]))
		if int(idx) >= len(disks) || bs <= 0 || bs > MaxBlockSize || size < 0 || size > 1<<50 {
			c.SendError("verify: bad disk")
			return fmt.Errorf("blocksync: verify: bad disk %d", idx)
		}
		res, err := compareDisk(ctx, c, disks[idx], size, bs)
		if err != nil {
			c.SendError(err.Error())
			return err
		}
		out := make([]byte, 20, 20+8*len(res.Offsets))
		binary.BigEndian.PutUint32(out, idx)
		binary.BigEndian.PutUint64(out[4:], uint64(res.Blocks))
		binary.BigEndian.PutUint64(out[12:], uint64(res.Different))
		for _, o := range res.Offsets {
			out = binary.BigEndian.AppendUint64(out, uint64(o))
		}
		if err := c.Send(tVerifyResult, out); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
	}
}

// compareDisk reads the sender's hashes for one disk and compares them with
// the target's blocks as they come.
func compareDisk(ctx context.Context, c *transport.Conn, path string, size int64, bs int) (DiskCheck, error) {
	f, err := os.Open(path)
	if err != nil {
		return DiskCheck{}, fmt.Errorf("verify: target disk: %w", err)
	}
	defer f.Close()
	var res DiskCheck
	res.Blocks = (size + int64(bs) - 1) / int64(bs)
	buf := make([]byte, bs)
	next := int64(0)
	for {
		typ, p, err := c.Recv()
		if err != nil {
			return res, err
		}
		if typ == tVerifyEnd {
			if next != res.Blocks {
				return res, fmt.Errorf("verify: %d of %d block hashes received", next, res.Blocks)
			}
			return res, nil
		}
		if typ != tVerifyHashes || len(p) < 8 || (len(p)-8)%8 != 0 {
			return res, fmt.Errorf("verify: unexpected frame %d", typ)
		}
		first := int64(binary.BigEndian.Uint64(p))
		if first != next {
			return res, fmt.Errorf("verify: hashes from block %d, expected %d", first, next)
		}
		for q := p[8:]; len(q) >= 8; q = q[8:] {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if next >= res.Blocks {
				return res, errors.New("verify: more hashes than blocks")
			}
			off := next * int64(bs)
			n := int(min(int64(bs), size-off))
			m, rerr := f.ReadAt(buf[:n], off)
			if m < n || (rerr != nil && !errors.Is(rerr, io.EOF)) || blockHash(buf[:n]) != binary.BigEndian.Uint64(q) {
				res.Different++
				if len(res.Offsets) < 16 {
					res.Offsets = append(res.Offsets, off)
				}
			}
			next++
		}
	}
}
