// Package diskimage writes disk images for tests and the demo: sparse files
// with an MBR or a GPT (with its CRCs) and the superblocks discovery
// recognises. The agent's discovery tests, the local provider's target
// checks, the end-to-end tests and the demo read the same images, so they
// agree on what a disk holds.
package diskimage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/require"
)

// GPT partition type GUIDs.
const (
	LinuxFS  = "0fc63daf-8483-4772-8e79-3d69d8477de4"
	LinuxLVM = "e6d6d379-f507-44c2-a23c-238f2a3df928"
)

// Part is one partition of a table.
type Part struct {
	Type          byte   // MBR type
	Status        byte   // 0x80 active
	LBA, Sectors  uint32 // in 512-byte sectors
	GPTType, Name string // GPT
}

// New creates a sparse image of size bytes in a test's temp dir.
func New(t testing.TB, size int64) (*os.File, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(size))
	t.Cleanup(func() { f.Close() })
	return f, p
}

// MBR is a boot sector holding up to four entries.
func MBR(parts []Part) []byte {
	s := make([]byte, 512)
	for i, p := range parts {
		e := s[446+16*i:]
		e[0], e[4] = p.Status, p.Type
		binary.LittleEndian.PutUint32(e[8:], p.LBA)
		binary.LittleEndian.PutUint32(e[12:], p.Sectors)
	}
	s[510], s[511] = 0x55, 0xaa
	return s
}

// WriteAt writes b at off.
func WriteAt(t testing.TB, f *os.File, off int64, b []byte) {
	t.Helper()
	_, err := f.WriteAt(b, off)
	require.NoError(t, err)
}

// GUID encodes a textual GUID the GPT way (first three fields
// little-endian).
func GUID(s string) []byte {
	var raw []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			continue
		}
		var v byte
		for _, c := range s[i : i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		raw = append(raw, v)
		i++
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint16(b[4:], binary.BigEndian.Uint16(raw[4:]))
	binary.LittleEndian.PutUint16(b[6:], binary.BigEndian.Uint16(raw[6:]))
	copy(b[8:], raw[8:])
	return b
}

// WriteGPT writes a protective MBR, the primary GPT header at LBA 1 and 128
// entries at LBA 2, with their CRCs.
func WriteGPT(t testing.TB, f *os.File, size int64, parts []Part, uuids []string) {
	t.Helper()
	last := uint64(size/512 - 1)
	WriteAt(t, f, 0, MBR([]Part{{Type: 0xee, LBA: 1, Sectors: uint32(min(last, 0xffffffff))}}))
	ents := make([]byte, 128*128)
	for i, p := range parts {
		e := ents[i*128:]
		copy(e[0:], GUID(p.GPTType))
		copy(e[16:], GUID(uuids[i]))
		binary.LittleEndian.PutUint64(e[32:], uint64(p.LBA))
		binary.LittleEndian.PutUint64(e[40:], uint64(p.LBA)+uint64(p.Sectors)-1)
		for j, c := range utf16.Encode([]rune(p.Name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	h := make([]byte, 92)
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[32:], last)
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], last-33)
	copy(h[56:], GUID("11111111-2222-3333-4444-555555555555"))
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))
	WriteAt(t, f, 512, h)
	WriteAt(t, f, 1024, ents)
}

// ExtSuperblock is the start of an ext4 superblock (at offset 1024 of its
// partition) with inode size 256.
func ExtSuperblock(uuid []byte, label string) []byte {
	sb := make([]byte, 256)
	binary.LittleEndian.PutUint16(sb[56:], 0xef53)
	binary.LittleEndian.PutUint32(sb[76:], 1)   // dynamic revision
	binary.LittleEndian.PutUint16(sb[88:], 256) // inode size
	binary.LittleEndian.PutUint32(sb[92:], 0x4) // has_journal
	binary.LittleEndian.PutUint32(sb[96:], 0x2c2)
	copy(sb[104:], uuid)
	copy(sb[120:], label)
	return sb
}

// LVMLabel is an LVM2 physical volume label (at offset 512 of its
// partition).
func LVMLabel() []byte {
	b := make([]byte, 64)
	copy(b, "LABELONE")
	copy(b[24:], "LVM2 001")
	copy(b[32:], "abcdefghijklmnopqrstuvwxyz012345")
	return b
}

// Source writes a source server's disk of size bytes (at least 2 MiB) at
// path, for the end-to-end tests and the demo: an MBR with one Linux
// partition from 1 MiB to the end, holding an ext4 file system (its
// superblock), so discovery reports it and the target's check after a copy
// finds both; past the first 2 MiB, 1 MiB regions chosen by seed are left
// as holes, or hold text or random bytes, so a copy meets all three.
func Source(path string, size int64, seed uint64) error {
	if size < 2<<20 {
		return fmt.Errorf("diskimage: a source disk of %d bytes is under 2 MiB", size)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeSource(f, size, seed); err != nil {
		f.Close()
		return fmt.Errorf("diskimage: write %s: %w", path, err)
	}
	return f.Close()
}

func writeSource(f *os.File, size int64, seed uint64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(seed, seed))
	buf := make([]byte, 1<<20)
	for off := int64(2 << 20); off < size; off += int64(len(buf)) {
		switch r.IntN(4) {
		case 0: // zeros: left as a hole
			continue
		case 1:
			text := fmt.Appendf(nil, "block %d of a text file; ", off)
			for i := 0; i < len(buf); {
				i += copy(buf[i:], text)
			}
		default:
			for i := range buf {
				buf[i] = byte(r.Uint32())
			}
		}
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), size-off)], off); err != nil {
			return err
		}
	}
	mbr := MBR([]Part{{Type: 0x83, LBA: 2048, Sectors: uint32(min(size/512-2048, 0xffffffff))}})
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	_, err := f.WriteAt(ExtSuperblock(GUID("5e1f0000-0000-4000-8000-00000000d15c"), ""), 1<<20+1024)
	return err
}
