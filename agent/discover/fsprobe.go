package discover

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// fsInfo is what a superblock tells: the blkid-style type name, UUID, label
// and, for ext and xfs, the inode size.
type fsInfo struct {
	Type      string
	UUID      string
	Label     string
	InodeSize int32
}

// probeFS recognises the file system (or LVM physical volume, swap area) at
// the start of r: ext2/3/4, xfs, btrfs, swap, LVM2_member, vfat, ntfs.
func probeFS(r io.ReaderAt) (fsInfo, bool) {
	for _, p := range []func(io.ReaderAt) (fsInfo, bool){probeLVM, probeSwap, probeXFS, probeExt, probeBtrfs, probeFAT, probeNTFS} {
		if fi, ok := p(r); ok {
			return fi, true
		}
	}
	return fsInfo{}, false
}

// probedTypes are the names probeFS answers.
var probedTypes = map[string]bool{"ext2": true, "ext3": true, "ext4": true, "jbd": true, "xfs": true, "btrfs": true,
	"swap": true, "lvm2_member": true, "vfat": true, "ntfs": true}

// SameFileSystem tells whether the file system found on a disk (got, as
// probeFS names it) is the one a source reported (want). Only what probeFS
// recognises is compared: any other want matches. ext2/3/4 are one family,
// since a mount may name an ext3 file system ext4.
func SameFileSystem(want, got string) bool {
	want, got = strings.ToLower(want), strings.ToLower(got)
	if !probedTypes[want] {
		return true
	}
	family := func(fs string) string {
		if fs == "ext2" || fs == "ext3" || fs == "ext4" {
			return "ext"
		}
		return fs
	}
	return family(want) == family(got)
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(bytes.ToValidUTF8(b, nil)))
}

// uuid formats 16 bytes in RFC 4122 byte order.
func uuid(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func probeExt(r io.ReaderAt) (fsInfo, bool) {
	sb, err := readAt(r, 1024, 256)
	if err != nil || binary.LittleEndian.Uint16(sb[56:]) != 0xef53 {
		return fsInfo{}, false
	}
	compat := binary.LittleEndian.Uint32(sb[92:])
	incompat := binary.LittleEndian.Uint32(sb[96:])
	roCompat := binary.LittleEndian.Uint32(sb[100:])
	typ := "ext2"
	switch {
	case incompat&0x0008 != 0: // a journal device
		typ = "jbd"
	case incompat&0x02c0 != 0 || roCompat&0x0078 != 0: // extents, 64bit, flex_bg; huge_file, gdt_csum, dir_nlink, extra_isize
		typ = "ext4"
	case compat&0x0004 != 0: // has_journal
		typ = "ext3"
	}
	inode := int32(128)
	if binary.LittleEndian.Uint32(sb[76:]) > 0 { // dynamic revision
		inode = int32(binary.LittleEndian.Uint16(sb[88:]))
	}
	return fsInfo{Type: typ, UUID: uuid(sb[104:120]), Label: cstr(sb[120:136]), InodeSize: inode}, true
}

func probeXFS(r io.ReaderAt) (fsInfo, bool) {
	sb, err := readAt(r, 0, 120)
	if err != nil || string(sb[:4]) != "XFSB" {
		return fsInfo{}, false
	}
	return fsInfo{Type: "xfs", UUID: uuid(sb[32:48]), Label: cstr(sb[108:120]),
		InodeSize: int32(binary.BigEndian.Uint16(sb[104:]))}, true
}

func probeBtrfs(r io.ReaderAt) (fsInfo, bool) {
	sb, err := readAt(r, 0x10000, 0x12b+256)
	if err != nil || string(sb[64:72]) != "_BHRfS_M" {
		return fsInfo{}, false
	}
	return fsInfo{Type: "btrfs", UUID: uuid(sb[32:48]), Label: cstr(sb[0x12b : 0x12b+256])}, true
}

func probeSwap(r io.ReaderAt) (fsInfo, bool) {
	for _, page := range []int64{4096, 8192, 16384, 65536} {
		b, err := readAt(r, page-10, 10)
		if err != nil {
			return fsInfo{}, false
		}
		if s := string(b); s == "SWAPSPACE2" || s == "SWAP-SPACE" {
			h, err := readAt(r, 1024, 44)
			if err != nil {
				return fsInfo{Type: "swap"}, true
			}
			return fsInfo{Type: "swap", UUID: uuid(h[12:28]), Label: cstr(h[28:44])}, true
		}
	}
	return fsInfo{}, false
}

func probeLVM(r io.ReaderAt) (fsInfo, bool) {
	for s := int64(0); s < 4; s++ {
		b, err := readAt(r, s*512, 64)
		if err != nil {
			return fsInfo{}, false
		}
		if string(b[:8]) == "LABELONE" && string(b[24:32]) == "LVM2 001" {
			id := string(b[32:64])
			return fsInfo{Type: "LVM2_member", UUID: id[0:6] + "-" + id[6:10] + "-" + id[10:14] + "-" + id[14:18] + "-" +
				id[18:22] + "-" + id[22:26] + "-" + id[26:32]}, true
		}
	}
	return fsInfo{}, false
}

func probeFAT(r io.ReaderAt) (fsInfo, bool) {
	b, err := readAt(r, 0, 512)
	if err != nil || b[510] != 0x55 || b[511] != 0xaa {
		return fsInfo{}, false
	}
	switch {
	case string(b[82:90]) == "FAT32   ":
		id := binary.LittleEndian.Uint32(b[67:])
		return fsInfo{Type: "vfat", UUID: fmt.Sprintf("%04X-%04X", id>>16, id&0xffff), Label: cstr(b[71:82])}, true
	case string(b[54:62]) == "FAT16   " || string(b[54:62]) == "FAT12   ":
		id := binary.LittleEndian.Uint32(b[39:])
		return fsInfo{Type: "vfat", UUID: fmt.Sprintf("%04X-%04X", id>>16, id&0xffff), Label: cstr(b[43:54])}, true
	}
	return fsInfo{}, false
}

func probeNTFS(r io.ReaderAt) (fsInfo, bool) {
	b, err := readAt(r, 0, 80)
	if err != nil || string(b[3:11]) != "NTFS    " {
		return fsInfo{}, false
	}
	return fsInfo{Type: "ntfs", UUID: fmt.Sprintf("%016X", binary.LittleEndian.Uint64(b[72:]))}, true
}
