package discover

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// Partition tables: the MBR (with the extended partition's chain of EBRs)
// and the GPT (header at LBA 1, checked by its CRCs).

var errNoTable = errors.New("no partition table")

// partEntry is one partition of a table.
type partEntry struct {
	Number   int    // 1-4 primary, 5.. logical (MBR); index+1 (GPT)
	Start    int64  // bytes from the disk's start
	Size     int64  // bytes
	Type     string // MBR: "0x83"; GPT: type GUID
	UUID     string // GPT: unique partition GUID
	Name     string // GPT: partition name
	Extended bool   // an MBR extended partition (a container, not data)
	Bootable bool   // MBR: active flag
}

// partTable is a disk's partition table.
type partTable struct {
	Style    string // MBR or GPT
	DiskGUID string // GPT
	Parts    []partEntry
}

const (
	maxGPTEntries = 1024
	maxLogical    = 128
)

// readPartitionTable reads the table of a disk of size bytes (0 when
// unknown) with the given logical sector size (0: try 512, then 4096). It
// answers errNoTable when the disk has neither a GPT nor an MBR.
func readPartitionTable(r io.ReaderAt, size int64, sectorSize int) (*partTable, error) {
	sizes := []int{512, 4096}
	if sectorSize == 512 || sectorSize == 4096 {
		sizes = []int{sectorSize}
	}
	for _, ss := range sizes {
		if t, err := readGPT(r, size, ss); err == nil {
			return t, nil
		}
	}
	ss := 512
	if sectorSize > 0 {
		ss = sectorSize
	}
	t, err := readMBR(r, size, ss)
	if err != nil {
		return nil, err
	}
	for _, p := range t.Parts {
		if p.Type == "0xee" {
			// A protective MBR whose GPT could not be read.
			return &partTable{Style: "GPT"}, nil
		}
	}
	return t, nil
}

func readAt(r io.ReaderAt, off int64, n int) ([]byte, error) {
	if off < 0 {
		return nil, errNoTable
	}
	b := make([]byte, n)
	m, err := r.ReadAt(b, off)
	if m == n {
		return b, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

type mbrEntry struct {
	status  byte
	typ     byte
	lba     uint32
	sectors uint32
}

func mbrEntries(sector []byte) [4]mbrEntry {
	var es [4]mbrEntry
	for i := range es {
		b := sector[446+16*i : 446+16*(i+1)]
		es[i] = mbrEntry{status: b[0], typ: b[4], lba: binary.LittleEndian.Uint32(b[8:]),
			sectors: binary.LittleEndian.Uint32(b[12:])}
	}
	return es
}

func isExtended(t byte) bool { return t == 0x05 || t == 0x0f || t == 0x85 }

func readMBR(r io.ReaderAt, size int64, ss int) (*partTable, error) {
	sec, err := readAt(r, 0, 512)
	if err != nil {
		return nil, err
	}
	if sec[510] != 0x55 || sec[511] != 0xaa {
		return nil, errNoTable
	}
	es := mbrEntries(sec)
	t := &partTable{Style: "MBR"}
	used := 0
	for i, e := range es {
		// A boot sector of a file system (FAT, NTFS) also ends in 55AA:
		// its "entries" are code, which fails these checks.
		if e.status != 0 && e.status != 0x80 {
			return nil, errNoTable
		}
		if e.typ == 0 {
			continue
		}
		if e.lba == 0 || e.sectors == 0 {
			return nil, errNoTable
		}
		start := int64(e.lba) * int64(ss)
		if size > 0 && start >= size {
			return nil, errNoTable
		}
		used++
		t.Parts = append(t.Parts, partEntry{Number: i + 1, Start: start, Size: int64(e.sectors) * int64(ss),
			Type: fmt.Sprintf("0x%02x", e.typ), Extended: isExtended(e.typ), Bootable: e.status == 0x80})
	}
	if used == 0 {
		// An empty table is still a table (a freshly labelled disk).
		return t, nil
	}
	for _, p := range t.Parts {
		if p.Extended {
			t.Parts = append(t.Parts, logicals(r, size, ss, p.Start/int64(ss))...)
			break
		}
	}
	return t, nil
}

// logicals follows the chain of EBRs of an extended partition starting at
// LBA base. Each EBR's first entry is a logical partition relative to that
// EBR; its second points at the next EBR, relative to base.
func logicals(r io.ReaderAt, size int64, ss int, base int64) []partEntry {
	var out []partEntry
	seen := map[int64]bool{}
	cur := base
	for n := 5; n < 5+maxLogical; n++ {
		if seen[cur] {
			break
		}
		seen[cur] = true
		sec, err := readAt(r, cur*int64(ss), 512)
		if err != nil || sec[510] != 0x55 || sec[511] != 0xaa {
			break
		}
		es := mbrEntries(sec)
		if es[0].typ != 0 && es[0].sectors > 0 {
			start := (cur + int64(es[0].lba)) * int64(ss)
			if size <= 0 || start < size {
				out = append(out, partEntry{Number: n, Start: start, Size: int64(es[0].sectors) * int64(ss),
					Type: fmt.Sprintf("0x%02x", es[0].typ), Bootable: es[0].status == 0x80})
			}
		}
		if !isExtended(es[1].typ) || es[1].lba == 0 {
			break
		}
		cur = base + int64(es[1].lba)
	}
	return out
}

func readGPT(r io.ReaderAt, size int64, ss int) (*partTable, error) {
	hdr, err := readAt(r, int64(ss), ss)
	if err != nil {
		return nil, err
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, errNoTable
	}
	hs := binary.LittleEndian.Uint32(hdr[12:])
	if hs < 92 || int(hs) > ss {
		return nil, errNoTable
	}
	want := binary.LittleEndian.Uint32(hdr[16:])
	h := append([]byte(nil), hdr[:hs]...)
	copy(h[16:20], []byte{0, 0, 0, 0})
	if crc32.ChecksumIEEE(h) != want {
		return nil, errNoTable
	}
	entLBA := binary.LittleEndian.Uint64(hdr[72:])
	num := binary.LittleEndian.Uint32(hdr[80:])
	esz := binary.LittleEndian.Uint32(hdr[84:])
	if num > maxGPTEntries || esz < 128 || esz > 4096 || esz%8 != 0 || entLBA > 1<<40 {
		return nil, errNoTable
	}
	off := int64(entLBA) * int64(ss)
	n := int(num) * int(esz)
	if size > 0 && off+int64(n) > size {
		return nil, errNoTable
	}
	ents, err := readAt(r, off, n)
	if err != nil {
		return nil, err
	}
	if crc32.ChecksumIEEE(ents) != binary.LittleEndian.Uint32(hdr[88:]) {
		return nil, errNoTable
	}
	t := &partTable{Style: "GPT", DiskGUID: guid(hdr[56:72])}
	var zero [16]byte
	for i := 0; i < int(num); i++ {
		e := ents[i*int(esz) : (i+1)*int(esz)]
		if bytes.Equal(e[:16], zero[:]) {
			continue
		}
		first := binary.LittleEndian.Uint64(e[32:])
		last := binary.LittleEndian.Uint64(e[40:])
		if first < 1 || last < first || last >= 1<<50 || (size > 0 && int64(first)*int64(ss) >= size) {
			continue
		}
		t.Parts = append(t.Parts, partEntry{Number: i + 1, Start: int64(first) * int64(ss),
			Size: int64(last-first+1) * int64(ss), Type: guid(e[:16]), UUID: guid(e[16:32]), Name: utf16Name(e[56:128])})
	}
	return t, nil
}

// guid formats a GPT GUID (its first three fields are little-endian).
func guid(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
