// Package layout recommends the target server's disk layout from what a
// source's agent reported (the init_target_server of §4.1.3): the disks and
// volume groups to create, sized to hold the source. It is pure, so the API
// and the migration workflow compute the same answer.
package layout

import (
	"math"

	"github.com/smsflow/smsflow/internal/store"
)

// GiB is the granularity of cloud disk sizes.
const GiB = int64(1) << 30

// MaxDiskSize is the largest disk size the API accepts (64 PiB, far past
// any real disk): sizes near 2^63 would overflow the sums and roundings
// made on them.
const MaxDiskSize = int64(1) << 56

// MaxDisks is the most disks a target may list: with MaxDiskSize that keeps
// any sum of their sizes under 2^62.
const MaxDisks = 64

// MinSystemDisk is the smallest system disk the target cloud accepts
// (ECS: 40 GiB).
const MinSystemDisk = 40 * GiB

// Disk is a recommended target disk (DiskIntargetServer, table 4-28).
type Disk struct {
	Name            string           `json:"name"`
	Size            int64            `json:"size"`
	DeviceUse       string           `json:"device_use"`
	UsedSize        int64            `json:"used_size"`
	PhysicalVolumes []PhysicalVolume `json:"physical_volumes"`
}

// PhysicalVolume is a partition of a target disk (table 4-29).
type PhysicalVolume struct {
	DeviceUse  string `json:"device_use"`
	FileSystem string `json:"file_system"`
	Index      int32  `json:"index"`
	MountPoint string `json:"mount_point"`
	Name       string `json:"name"`
	Size       int64  `json:"size"`
	InodeSize  int64  `json:"inode_size"`
	UsedSize   int64  `json:"used_size"`
	UUID       string `json:"uuid"`
}

// Target is the recommended target server (InitTargetServer, table 4-27).
type Target struct {
	Disks        []Disk              `json:"disks"`
	VolumeGroups []store.VolumeGroup `json:"volume_groups"`
}

func v[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// wanted tells whether an item takes part in the migration.
func wanted(need *bool) bool { return need == nil || *need }

// sized is the operator's adjusted size when set, else the source's.
func sized(size, adjust *int64) int64 {
	if adjust != nil && *adjust > 0 {
		return *adjust
	}
	return v(size)
}

// roundGiB rounds a byte count up to whole GiB, saturating at the largest
// whole GiB an int64 holds (n + GiB - 1 would wrap negative near 2^63).
func roundGiB(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if n > math.MaxInt64-GiB+1 {
		return math.MaxInt64 / GiB * GiB
	}
	return (n + GiB - 1) / GiB * GiB
}

// System tells whether a source disk holds the OS or boots it.
func System(d store.SourceDisk) bool {
	u := v(d.DeviceUse)
	return u == "BOOT" || u == "OS" || v(d.OSDisk)
}

// Recommend computes the target layout: one target disk per migrated source
// disk (named by its relation name when the operator set one), sized to the
// adjusted or source size rounded up to GiB, the system disk at least
// MinSystemDisk; partitions and volume groups carried over with their
// adjusted sizes; items the operator excluded (need_migration=false) left out.
func Recommend(disks []store.SourceDisk, vgs []store.VolumeGroup) Target {
	t := Target{Disks: []Disk{}, VolumeGroups: []store.VolumeGroup{}}
	for _, d := range disks {
		if !wanted(d.NeedMigration) {
			continue
		}
		size := roundGiB(sized(d.Size, d.AdjustSize))
		use := v(d.DeviceUse)
		if System(d) {
			size = max(size, MinSystemDisk)
		} else {
			use = "NORMAL"
		}
		name := v(d.Name)
		if rn := v(d.RelationName); rn != "" {
			name = rn
		}
		td := Disk{Name: name, Size: size, DeviceUse: use, UsedSize: v(d.UsedSize), PhysicalVolumes: []PhysicalVolume{}}
		for _, p := range d.PhysicalVolumes {
			if !wanted(p.NeedMigration) {
				continue
			}
			td.PhysicalVolumes = append(td.PhysicalVolumes, PhysicalVolume{
				DeviceUse: v(p.DeviceUse), FileSystem: v(p.FileSystem), Index: v(p.Index), MountPoint: v(p.MountPoint),
				Name: v(p.Name), Size: sized(p.Size, p.AdjustSize), InodeSize: int64(v(p.InodeSize)),
				UsedSize: v(p.UsedSize), UUID: v(p.UUID),
			})
		}
		t.Disks = append(t.Disks, td)
	}
	for _, g := range vgs {
		if !wanted(g.NeedMigration) {
			continue
		}
		ng := g
		ng.NeedMigration, ng.AdjustSize = nil, nil
		if g.AdjustSize != nil && *g.AdjustSize > 0 {
			ng.Size = g.AdjustSize
		}
		ng.LogicalVolumes = []store.LogicalVolume{}
		for _, l := range g.LogicalVolumes {
			if !wanted(l.NeedMigration) {
				continue
			}
			nl := l
			nl.NeedMigration, nl.AdjustSize = nil, nil
			if l.AdjustSize != nil && *l.AdjustSize > 0 {
				nl.Size = l.AdjustSize
			}
			ng.LogicalVolumes = append(ng.LogicalVolumes, nl)
		}
		t.VolumeGroups = append(t.VolumeGroups, ng)
	}
	return t
}

// TotalSize is the amount of data a migration moves: the used bytes of the
// migrated disks.
func TotalSize(disks []store.SourceDisk) int64 {
	var n int64
	for _, d := range disks {
		if wanted(d.NeedMigration) {
			// Saturates rather than wraps (the API bounds each size).
			if u := v(d.UsedSize); u > 0 {
				n = min(n, math.MaxInt64-u) + u
			}
		}
	}
	return n
}
