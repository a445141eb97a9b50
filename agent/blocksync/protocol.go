// Package blocksync copies disks block by block from a source's agent to the
// target's receiver (MIGRATE_BLOCK), and then only the blocks that changed
// (SYNC).
//
// The sender reads each disk in fixed blocks (256 KiB), hashes every block
// (xxhash64), skips blocks of zeros, compresses the others with s2 when that
// helps, and streams them over a transport.Conn while the next blocks are
// read and compressed (a reader, a pool of compressors, one writer: the disk
// and the network are busy at once). The receiver writes each block at its
// offset in the target disk and, at every checkpoint, syncs the disk and
// acknowledges: the sender then records the block hashes and the offset
// reached (state.go), so a stopped or restarted agent resumes a full copy
// where it was. A sync pass reads every block again and sends only those
// whose hash differs from the one recorded.
//
// Wire format (big endian), sender → receiver:
//
//	diskBegin  index u32 | size u64 | blockSize u32 | from u64
//	block      offset u64 | rawLen u32 | flags u8 | data      (flags&1: s2-compressed)
//	zero       offset u64 | len u32                            (write zeros / punch a hole)
//	checkpoint offset u64                                      (sync the disk, then ack)
//	diskEnd    size u64                                        (sync, ack)
//	done
//
// receiver → sender: ack disk u32 | offset u64, and finally doneOK.
package blocksync

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	tDiskBegin  uint8 = 1
	tBlock      uint8 = 2
	tZero       uint8 = 3
	tCheckpoint uint8 = 4
	tDiskEnd    uint8 = 5
	tDone       uint8 = 6
	tAck        uint8 = 16
	tDoneOK     uint8 = 17

	// Verification (KindVerify): the sender sends its block hashes, the
	// receiver answers the blocks that differ.
	tVerifyDisk   uint8 = 32 // index u32 | size u64 | blockSize u32
	tVerifyHashes uint8 = 33 // first u64 | n × hash u64
	tVerifyEnd    uint8 = 34
	tVerifyResult uint8 = 35 // index u32 | blocks u64 | different u64 | up to 16 × offset u64
)

const flagS2 = 1

// DefaultBlockSize is the unit of copy, hashing and change detection.
const DefaultBlockSize = 256 << 10

// MaxBlockSize bounds what a peer may announce.
const MaxBlockSize = 4 << 20

var errShort = errors.New("blocksync: short frame")

type diskBegin struct {
	Index     uint32
	Size      uint64
	BlockSize uint32
	From      uint64
}

func (d diskBegin) encode() []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint32(b, d.Index)
	binary.BigEndian.PutUint64(b[4:], d.Size)
	binary.BigEndian.PutUint32(b[12:], d.BlockSize)
	binary.BigEndian.PutUint64(b[16:], d.From)
	return b
}

func decodeDiskBegin(p []byte) (diskBegin, error) {
	if len(p) != 24 {
		return diskBegin{}, errShort
	}
	d := diskBegin{Index: binary.BigEndian.Uint32(p), Size: binary.BigEndian.Uint64(p[4:]),
		BlockSize: binary.BigEndian.Uint32(p[12:]), From: binary.BigEndian.Uint64(p[16:])}
	if d.BlockSize == 0 || d.BlockSize > MaxBlockSize || d.BlockSize%512 != 0 {
		return d, fmt.Errorf("blocksync: bad block size %d", d.BlockSize)
	}
	if d.From > d.Size || d.Size > 1<<50 {
		return d, fmt.Errorf("blocksync: bad disk range %d of %d", d.From, d.Size)
	}
	return d, nil
}

type blockHdr struct {
	Offset uint64
	RawLen uint32
	Flags  uint8
}

const blockHdrLen = 13

func (h blockHdr) put(b []byte) {
	binary.BigEndian.PutUint64(b, h.Offset)
	binary.BigEndian.PutUint32(b[8:], h.RawLen)
	b[12] = h.Flags
}

func decodeBlock(p []byte) (blockHdr, []byte, error) {
	if len(p) < blockHdrLen {
		return blockHdr{}, nil, errShort
	}
	h := blockHdr{Offset: binary.BigEndian.Uint64(p), RawLen: binary.BigEndian.Uint32(p[8:]), Flags: p[12]}
	if h.RawLen == 0 || h.RawLen > MaxBlockSize {
		return h, nil, fmt.Errorf("blocksync: bad block length %d", h.RawLen)
	}
	if h.Flags&^flagS2 != 0 {
		return h, nil, fmt.Errorf("blocksync: unknown block flags %#x", h.Flags)
	}
	return h, p[blockHdrLen:], nil
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func zeroFrame(off uint64, n uint32) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, off)
	binary.BigEndian.PutUint32(b[8:], n)
	return b
}

func decodeZero(p []byte) (uint64, uint32, error) {
	if len(p) != 12 {
		return 0, 0, errShort
	}
	n := binary.BigEndian.Uint32(p[8:])
	if n == 0 || n > MaxBlockSize {
		return 0, 0, fmt.Errorf("blocksync: bad zero run %d", n)
	}
	return binary.BigEndian.Uint64(p), n, nil
}

func ackFrame(disk uint32, off uint64) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint32(b, disk)
	binary.BigEndian.PutUint64(b[4:], off)
	return b
}

func decodeAck(p []byte) (uint32, uint64, error) {
	if len(p) != 12 {
		return 0, 0, errShort
	}
	return binary.BigEndian.Uint32(p), binary.BigEndian.Uint64(p[4:]), nil
}
