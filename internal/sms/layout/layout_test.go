package layout

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/smsflow/smsflow/internal/store"
)

func p[T any](v T) *T { return &v }

func TestRecommend(t *testing.T) {
	disks := []store.SourceDisk{
		{Name: p("/dev/vda"), DeviceUse: p("BOOT"), Size: p(int64(20 * GiB)), UsedSize: p(int64(5 * GiB)),
			PhysicalVolumes: []store.PhysicalVolume{
				{Name: p("/dev/vda1"), Size: p(int64(GiB)), FileSystem: p("ext4"), MountPoint: p("/boot"), Index: p(int32(1))},
				{Name: p("/dev/vda2"), Size: p(int64(19 * GiB)), FileSystem: p("xfs"), MountPoint: p("/"), AdjustSize: p(int64(30 * GiB))},
			}},
		{Name: p("/dev/vdb"), DeviceUse: p("VOLUME_GROUP"), Size: p(int64(100*GiB + 1)), UsedSize: p(int64(GiB)), RelationName: p("/dev/vdc")},
		{Name: p("/dev/vdd"), DeviceUse: p("NORMAL"), Size: p(int64(GiB)), NeedMigration: p(false), UsedSize: p(int64(GiB))},
		{Name: p("/dev/vde"), DeviceUse: p("NORMAL"), Size: p(int64(10 * GiB)), AdjustSize: p(int64(50 * GiB)), UsedSize: p(int64(3))},
	}
	vgs := []store.VolumeGroup{
		{Name: p("vg1"), Size: p(int64(100 * GiB)), LogicalVolumes: []store.LogicalVolume{
			{Name: p("lv1"), Size: p(int64(10 * GiB)), AdjustSize: p(int64(20 * GiB))},
			{Name: p("lv2"), Size: p(int64(10 * GiB)), NeedMigration: p(false)},
		}},
		{Name: p("vg2"), NeedMigration: p(false)},
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
		{Name: p("/dev/vda"), DeviceUse: p("BOOT"), Size: p(maxInt64), UsedSize: p(maxInt64)},
		{Name: p("/dev/vdb"), DeviceUse: p("NORMAL"), Size: p(maxInt64 - GiB), UsedSize: p(maxInt64)},
	}
	got := Recommend(disks, nil)
	for i, d := range got.Disks {
		assert.Equal(t, maxInt64/GiB*GiB, d.Size, "disk %d", i)
	}
	assert.Equal(t, maxInt64, TotalSize(disks))
}
