package discover

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/testkit/diskimage"
)

func TestDiskImages(t *testing.T) {
	const size = 64 * MiB
	ctx := context.Background()
	extUUID := []byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 0x42, 2, 0x83, 3, 4, 5, 6, 7, 8, 9}

	t.Run("MBR with two partitions", func(t *testing.T) {
		f, p := diskimage.New(t, size)
		diskimage.WriteAt(t, f, 0, diskimage.MBR([]diskimage.Part{
			{Type: 0x83, Status: 0x80, LBA: 2048, Sectors: 16 * 2048}, // 16 MiB at 1 MiB
			{Type: 0x8e, LBA: 17 * 2048, Sectors: 47*2048 - 1},        // the rest but one sector
		}))
		diskimage.WriteAt(t, f, MiB+1024, diskimage.ExtSuperblock(extUUID, "boot"))
		diskimage.WriteAt(t, f, 17*MiB+512, diskimage.LVMLabel())
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
		f, p := diskimage.New(t, size)
		diskimage.WriteGPT(t, f, size, []diskimage.Part{
			{LBA: 2048, Sectors: 8 * 2048, GPTType: diskimage.LinuxFS, Name: "root"},
			{LBA: 10 * 2048, Sectors: 20 * 2048, GPTType: diskimage.LinuxLVM, Name: "lvm"},
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

	// The image the end-to-end tests and the demo copy: one ext4 partition
	// from 1 MiB to the end, and the same bytes for the same seed.
	t.Run("source disk of the end-to-end tests and the demo", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "vda.img")
		require.NoError(t, diskimage.Source(p, size, 7))
		s, err := Discover(ctx, Options{Root: "testdata/centos79", DiskImages: map[string]string{"/dev/vda": p}, OnlyImages: true})
		require.NoError(t, err)
		require.Len(t, s.Disks, 1)
		d := s.Disks[0]
		assert.Equal(t, "MBR", d.PartitionStyle)
		require.Len(t, d.PhysicalVolumes, 1)
		assert.Equal(t, "ext4", d.PhysicalVolumes[0].FileSystem)
		assert.Equal(t, MiB, d.PhysicalVolumes[0].Start)
		assert.Equal(t, size-MiB, d.PhysicalVolumes[0].Size)
		again := filepath.Join(t.TempDir(), "again.img")
		require.NoError(t, diskimage.Source(again, size, 7))
		a, err := os.ReadFile(p)
		require.NoError(t, err)
		b, err := os.ReadFile(again)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(a, b), "the same seed writes the same disk")
		assert.False(t, bytes.Equal(a[2*MiB:], make([]byte, size-2*MiB)), "past 2 MiB the disk holds data")
		assert.Error(t, diskimage.Source(filepath.Join(t.TempDir(), "tiny.img"), MiB, 7), "under 2 MiB is refused")
	})

	t.Run("no partition table", func(t *testing.T) {
		_, p := diskimage.New(t, size)
		s, err := Discover(ctx, Options{Root: "testdata/centos79", DiskImages: map[string]string{"/dev/vdy": p}, OnlyImages: true})
		require.NoError(t, err)
		require.Len(t, s.Disks, 1)
		assert.Equal(t, Disk{Name: "/dev/vdy", PartitionStyle: "MBR", HasPartitionTable: false, DeviceUse: "BOOT", OSDisk: true,
			Size: size, UsedSize: size, Image: p, SectorSize: 512, PhysicalVolumes: []PhysicalVolume{}}, s.Disks[0])
		body, _ := json.Marshal(s)
		checkRegisterBody(t, body)
	})

	t.Run("images beside the machine's disks", func(t *testing.T) {
		_, small := diskimage.New(t, 3*MiB)
		_, extra := diskimage.New(t, 5*MiB)
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
		_, a := diskimage.New(t, 2*MiB)
		_, b := diskimage.New(t, 4*MiB)
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
