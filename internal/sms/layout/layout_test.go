package layout

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/smsflow/smsflow/internal/store"
)

func TestRecommend(t *testing.T) {
	disks := []store.SourceDisk{
		{Name: new("/dev/vda"), DeviceUse: new("BOOT"), Size: new(int64(20 * GiB)), UsedSize: new(int64(5 * GiB)),
			PhysicalVolumes: []store.PhysicalVolume{
				{Name: new("/dev/vda1"), Size: new(int64(GiB)), FileSystem: new("ext4"), MountPoint: new("/boot"), Index: new(int32(1))},
				{Name: new("/dev/vda2"), Size: new(int64(19 * GiB)), FileSystem: new("xfs"), MountPoint: new("/"), AdjustSize: new(int64(30 * GiB))},
			}},
		{Name: new("/dev/vdb"), DeviceUse: new("VOLUME_GROUP"), Size: new(int64(100*GiB + 1)), UsedSize: new(int64(GiB)), RelationName: new("/dev/vdc")},
		{Name: new("/dev/vdd"), DeviceUse: new("NORMAL"), Size: new(int64(GiB)), NeedMigration: new(false), UsedSize: new(int64(GiB))},
		{Name: new("/dev/vde"), DeviceUse: new("NORMAL"), Size: new(int64(10 * GiB)), AdjustSize: new(int64(50 * GiB)), UsedSize: new(int64(3))},
	}
	vgs := []store.VolumeGroup{
		{Name: new("vg1"), Size: new(int64(100 * GiB)), LogicalVolumes: []store.LogicalVolume{
			{Name: new("lv1"), Size: new(int64(10 * GiB)), AdjustSize: new(int64(20 * GiB))},
			{Name: new("lv2"), Size: new(int64(10 * GiB)), NeedMigration: new(false)},
		}},
		{Name: new("vg2"), NeedMigration: new(false)},
	}
	got := Recommend(disks, vgs)
	assert.Len(t, got.Disks, 3, "excluded disk left out")
	assert.Equal(t, Disk{Name: "/dev/vda", Size: MinSystemDisk, DeviceUse: "BOOT", UsedSize: 5 * GiB, PhysicalVolumes: []PhysicalVolume{
		{Name: "/dev/vda1", Size: GiB, FileSystem: "ext4", MountPoint: "/boot", Index: 1},
		{Name: "/dev/vda2", Size: 30 * GiB, FileSystem: "xfs", MountPoint: "/"},
	}}, got.Disks[0], "system disk raised to the minimum; adjusted partition")
	assert.Equal(t, "/dev/vdc", got.Disks[1].Name, "relation name")
	assert.Equal(t, 101*GiB, got.Disks[1].Size, "rounded up to GiB")
	assert.Equal(t, "NORMAL", got.Disks[1].DeviceUse)
	assert.Equal(t, 50*GiB, got.Disks[2].Size, "adjusted size")
	assert.Len(t, got.VolumeGroups, 1)
	assert.Len(t, got.VolumeGroups[0].LogicalVolumes, 1)
	assert.Equal(t, int64(20*GiB), *got.VolumeGroups[0].LogicalVolumes[0].Size)
	assert.Nil(t, got.VolumeGroups[0].LogicalVolumes[0].AdjustSize)
	assert.Equal(t, int64(5*GiB+GiB+3), TotalSize(disks))

	empty := Recommend(nil, nil)
	assert.NotNil(t, empty.Disks)
	assert.NotNil(t, empty.VolumeGroups)
}

// Sizes near 2^63 saturate instead of wrapping (issue 8, finding 5: a disk
// of 2^63-1 bytes was recommended a 40 GiB target).
func TestRecommendSaturates(t *testing.T) {
	const maxInt64 = int64(1<<63 - 1)
	disks := []store.SourceDisk{
		{Name: new("/dev/vda"), DeviceUse: new("BOOT"), Size: new(maxInt64), UsedSize: new(maxInt64)},
		{Name: new("/dev/vdb"), DeviceUse: new("NORMAL"), Size: new(maxInt64 - GiB), UsedSize: new(maxInt64)},
	}
	got := Recommend(disks, nil)
	for i, d := range got.Disks {
		assert.Equal(t, maxInt64/GiB*GiB, d.Size, "disk %d", i)
	}
	assert.Equal(t, maxInt64, TotalSize(disks))
}
