package discover

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Test-side writers of disk images: sparse files with a partition table
// and, optionally, superblocks.

type testPart struct {
	typ           byte   // MBR type
	status        byte   // 0x80 active
	lba, sectors  uint32 // in 512-byte sectors
	gptType, name string // GPT
}

func newImage(t *testing.T, size int64) (*os.File, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(size))
	t.Cleanup(func() { f.Close() })
	return f, p
}

func mbrSector(parts []testPart) []byte {
	s := make([]byte, 512)
	for i, p := range parts {
		e := s[446+16*i:]
		e[0], e[4] = p.status, p.typ
		binary.LittleEndian.PutUint32(e[8:], p.lba)
		binary.LittleEndian.PutUint32(e[12:], p.sectors)
	}
	s[510], s[511] = 0x55, 0xaa
	return s
}

func writeAt(t *testing.T, f *os.File, off int64, b []byte) {
	t.Helper()
	_, err := f.WriteAt(b, off)
	require.NoError(t, err)
}

// guidBytes encodes a textual GUID the GPT way (first three fields
// little-endian).
func guidBytes(s string) []byte {
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

// writeGPT writes a protective MBR, the primary GPT header at LBA 1 and 128
// entries at LBA 2, with their CRCs.
func writeGPT(t *testing.T, f *os.File, size int64, parts []testPart, uuids []string) {
	t.Helper()
	last := uint64(size/512 - 1)
	writeAt(t, f, 0, mbrSector([]testPart{{typ: 0xee, lba: 1, sectors: uint32(min(last, 0xffffffff))}}))
	ents := make([]byte, 128*128)
	for i, p := range parts {
		e := ents[i*128:]
		copy(e[0:], guidBytes(p.gptType))
		copy(e[16:], guidBytes(uuids[i]))
		binary.LittleEndian.PutUint64(e[32:], uint64(p.lba))
		binary.LittleEndian.PutUint64(e[40:], uint64(p.lba)+uint64(p.sectors)-1)
		for j, c := range utf16.Encode([]rune(p.name)) {
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
	copy(h[56:], guidBytes("11111111-2222-3333-4444-555555555555"))
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))
	writeAt(t, f, 512, h)
	writeAt(t, f, 1024, ents)
}

// extSuperblock is the start of an ext4 superblock (at offset 1024 of its
// partition) with inode size 256.
func extSuperblock(uuid []byte, label string) []byte {
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

func lvmLabel() []byte {
	b := make([]byte, 64)
	copy(b, "LABELONE")
	copy(b[24:], "LVM2 001")
	copy(b[32:], "abcdefghijklmnopqrstuvwxyz012345")
	return b
}

const (
	linuxFS  = "0fc63daf-8483-4772-8e79-3d69d8477de4"
	linuxLVM = "e6d6d379-f507-44c2-a23c-238f2a3df928"
)

func TestDiskImages(t *testing.T) {
	const size = 64 * MiB
	ctx := context.Background()
	extUUID := []byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 0x42, 2, 0x83, 3, 4, 5, 6, 7, 8, 9}

	t.Run("MBR with two partitions", func(t *testing.T) {
		f, p := newImage(t, size)
		writeAt(t, f, 0, mbrSector([]testPart{
			{typ: 0x83, status: 0x80, lba: 2048, sectors: 16 * 2048}, // 16 MiB at 1 MiB
			{typ: 0x8e, lba: 17 * 2048, sectors: 47*2048 - 1},        // the rest but one sector
		}))
		writeAt(t, f, MiB+1024, extSuperblock(extUUID, "boot"))
		writeAt(t, f, 17*MiB+512, lvmLabel())
		s, err := Discover(ctx, Options{Root: "testdata/centos79", DiskImages: map[string]string{"/dev/vdx": p}, OnlyImages: true})
		require.NoError(t, err)
		require.Len(t, s.Disks, 1)
		assert.Equal(t, Disk{Name: "/dev/vdx", PartitionStyle: "MBR", DeviceUse: "BOOT", OSDisk: true, Size: size,
			UsedSize: 16*MiB + 47*MiB - 512, HasPartitionTable: true, Image: p, SectorSize: 512,
			PhysicalVolumes: []PhysicalVolume{
				{Name: "/dev/vdx1", Index: 1, Size: 16 * MiB, UsedSize: 16 * MiB, Start: MiB, FileSystem: "ext4",
					InodeSize: 256, UUID: "deadbeef-0001-4202-8303-040506070809", DeviceUse: "NORMAL"},
				{Name: "/dev/vdx2", Index: 2, Size: 47*MiB - 512, UsedSize: 47*MiB - 512, Start: 17 * MiB,
					FileSystem: "LVM2_member", UUID: "abcdef-ghij-klmn-opqr-stuv-wxyz-012345", DeviceUse: "VOLUME_GROUP"},
			}}, s.Disks[0])
		assert.Empty(t, s.VolumeGroups)
		assert.Empty(t, s.BtrfsList)
		assert.Nil(t, s.IOReadWait)
		body, _ := json.Marshal(s)
		checkRegisterBody(t, body)
	})

	t.Run("GPT on a disk whose name ends in a digit", func(t *testing.T) {
		f, p := newImage(t, size)
		writeGPT(t, f, size, []testPart{
			{lba: 2048, sectors: 8 * 2048, gptType: linuxFS, name: "root"},
			{lba: 10 * 2048, sectors: 20 * 2048, gptType: linuxLVM, name: "lvm"},
		}, []string{"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "01234567-89ab-cdef-0123-456789abcdef"})
		s, err := Discover(ctx, Options{Root: "testdata/centos79", DiskImages: map[string]string{"nvme9n1": p}, OnlyImages: true})
		require.NoError(t, err)
		require.Len(t, s.Disks, 1)
		d := s.Disks[0]
		assert.Equal(t, "/dev/nvme9n1", d.Name)
		assert.Equal(t, "GPT", d.PartitionStyle)
		assert.True(t, d.HasPartitionTable)
		assert.Equal(t, []PhysicalVolume{
			{Name: "/dev/nvme9n1p1", Index: 1, Size: 8 * MiB, UsedSize: 8 * MiB, Start: MiB, UUID: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", DeviceUse: "NORMAL"},
			{Name: "/dev/nvme9n1p2", Index: 2, Size: 20 * MiB, UsedSize: 20 * MiB, Start: 10 * MiB, UUID: "01234567-89ab-cdef-0123-456789abcdef", DeviceUse: "NORMAL"},
		}, d.PhysicalVolumes)
		assert.Equal(t, int64(28*MiB), d.UsedSize)
	})

	t.Run("no partition table", func(t *testing.T) {
		_, p := newImage(t, size)
		s, err := Discover(ctx, Options{Root: "testdata/centos79", DiskImages: map[string]string{"/dev/vdy": p}, OnlyImages: true})
		require.NoError(t, err)
		require.Len(t, s.Disks, 1)
		assert.Equal(t, Disk{Name: "/dev/vdy", PartitionStyle: "MBR", HasPartitionTable: false, DeviceUse: "BOOT", OSDisk: true,
			Size: size, UsedSize: size, Image: p, SectorSize: 512, PhysicalVolumes: []PhysicalVolume{}}, s.Disks[0])
		body, _ := json.Marshal(s)
		checkRegisterBody(t, body)
	})

	t.Run("images beside the machine's disks", func(t *testing.T) {
		_, small := newImage(t, 3*MiB)
		_, extra := newImage(t, 5*MiB)
		s, err := Discover(ctx, Options{Root: "testdata/centos79", statfs: fakeStatfs(centos79Statfs),
			DiskImages: map[string]string{"/dev/vdb": small, "/dev/vdz": extra}})
		require.NoError(t, err)
		var names []string
		for _, d := range s.Disks {
			names = append(names, d.Name)
		}
		assert.Equal(t, []string{"/dev/vda", "/dev/vdb", "/dev/vdc", "/dev/vdz"}, names)
		assert.Equal(t, "BOOT", s.Disks[0].DeviceUse)  // the machine's boot disk is still found
		assert.Equal(t, int64(3*MiB), s.Disks[1].Size) // the image replaces the real vdb
		assert.Equal(t, small, s.Disks[1].Image)
		assert.Empty(t, s.Disks[1].PhysicalVolumes)
		assert.Equal(t, "NORMAL", s.Disks[1].DeviceUse)
		assert.Equal(t, int64(5*MiB), s.Disks[3].Size)
		assert.Equal(t, "NORMAL", s.Disks[3].DeviceUse)
		assert.False(t, s.Disks[3].OSDisk)
	})

	t.Run("OnlyImages leaves the machine's storage out", func(t *testing.T) {
		_, a := newImage(t, 2*MiB)
		_, b := newImage(t, 4*MiB)
		s, err := Discover(ctx, Options{Root: "testdata/ubuntu2204", OnlyImages: true,
			DiskImages: map[string]string{"/dev/vdc": b, "/dev/vdb": a}})
		require.NoError(t, err)
		require.Len(t, s.Disks, 2)
		assert.Equal(t, "/dev/vdb", s.Disks[0].Name)
		assert.Equal(t, "BOOT", s.Disks[0].DeviceUse)
		assert.Equal(t, "/dev/vdc", s.Disks[1].Name)
		assert.Equal(t, "NORMAL", s.Disks[1].DeviceUse)
		assert.Empty(t, s.VolumeGroups)
		assert.Empty(t, s.BtrfsList)
		assert.Equal(t, "UBUNTU_22_4_64BIT", s.OSVersion) // the rest is still the machine's
	})
}
