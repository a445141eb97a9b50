package store

import "github.com/smsflow/smsflow/internal/ptr"

// What an agent reports about its machine (§4.1.2), kept as JSON columns of
// the source. Every field is a pointer with omitempty, so a field the agent
// did not send stays absent and "" stays "": show returns what was
// registered. The server adds an "id" to disks, partitions, volume groups and
// logical volumes (PUT /v3/sources/{id} addresses them by it) and keeps it
// across re-registrations by matching names.

type SourceDisk struct {
	ID              *string          `json:"id,omitempty"`
	Name            *string          `json:"name,omitempty"`
	PartitionStyle  *string          `json:"partition_style,omitempty"`
	DeviceUse       *string          `json:"device_use,omitempty"`
	Size            *int64           `json:"size,omitempty"`
	UsedSize        *int64           `json:"used_size,omitempty"`
	PhysicalVolumes []PhysicalVolume `json:"physical_volumes"`
	OSDisk          *bool            `json:"os_disk,omitempty"`
	RelationName    *string          `json:"relation_name,omitempty"`
	InodeSize       *int32           `json:"inode_size,omitempty"`
	// Operator choices (PUT /v3/sources/{id}).
	NeedMigration *bool  `json:"need_migration,omitempty"`
	AdjustSize    *int64 `json:"adjust_size,omitempty"`
}

type PhysicalVolume struct {
	ID             *string `json:"id,omitempty"`
	DeviceUse      *string `json:"device_use,omitempty"`
	FileSystem     *string `json:"file_system,omitempty"`
	Index          *int32  `json:"index,omitempty"`
	MountPoint     *string `json:"mount_point,omitempty"`
	Name           *string `json:"name,omitempty"`
	Size           *int64  `json:"size,omitempty"`
	UsedSize       *int64  `json:"used_size,omitempty"`
	InodeSize      *int32  `json:"inode_size,omitempty"`
	InodeNums      *int64  `json:"inode_nums,omitempty"`
	UUID           *string `json:"uuid,omitempty"`
	SizePerCluster *int32  `json:"size_per_cluster,omitempty"`
	NeedMigration  *bool   `json:"need_migration,omitempty"`
	AdjustSize     *int64  `json:"adjust_size,omitempty"`
}

type BtrfsFileSystem struct {
	Name                   *string          `json:"name,omitempty"`
	Label                  *string          `json:"label,omitempty"`
	UUID                   *string          `json:"uuid,omitempty"`
	Device                 *string          `json:"device,omitempty"`
	Size                   *int64           `json:"size,omitempty"`
	Nodesize               *int64           `json:"nodesize,omitempty"`
	Sectorsize             *int32           `json:"sectorsize,omitempty"`
	DataProfile            *string          `json:"data_profile,omitempty"`
	SystemProfile          *string          `json:"system_profile,omitempty"`
	MetadataProfile        *string          `json:"metadata_profile,omitempty"`
	GlobalReserve1         *string          `json:"global_reserve1,omitempty"`
	GVolUsedSize           *int64           `json:"g_vol_used_size,omitempty"`
	DefaultSubvolID        *string          `json:"default_subvolid,omitempty"`
	DefaultSubvolName      *string          `json:"default_subvol_name,omitempty"`
	DefaultSubvolMountpath *string          `json:"default_subvol_mountpath,omitempty"`
	Subvolumn              []BtrfsSubvolumn `json:"subvolumn"`
}

type BtrfsSubvolumn struct {
	UUID            *string `json:"uuid,omitempty"`
	IsSnapshot      *string `json:"is_snapshot,omitempty"`
	SubvolID        *string `json:"subvol_id,omitempty"`
	ParentID        *string `json:"parent_id,omitempty"`
	SubvolName      *string `json:"subvol_name,omitempty"`
	SubvolMountPath *string `json:"subvol_mount_path,omitempty"`
}

type Network struct {
	Name    *string `json:"name,omitempty"`
	IP      *string `json:"ip,omitempty"`
	IPv6    *string `json:"ipv6,omitempty"`
	Netmask *string `json:"netmask,omitempty"`
	Gateway *string `json:"gateway,omitempty"`
	MTU     *int32  `json:"mtu,omitempty"`
	MAC     *string `json:"mac,omitempty"`
	ID      *string `json:"id,omitempty"`
}

type VolumeGroup struct {
	ID             *string         `json:"id,omitempty"`
	Components     *string         `json:"components,omitempty"`
	FreeSize       *int64          `json:"free_size,omitempty"`
	LogicalVolumes []LogicalVolume `json:"logical_volumes"`
	Name           *string         `json:"name,omitempty"`
	Size           *int64          `json:"size,omitempty"`
	NeedMigration  *bool           `json:"need_migration,omitempty"`
	AdjustSize     *int64          `json:"adjust_size,omitempty"`
}

type LogicalVolume struct {
	ID            *string `json:"id,omitempty"`
	BlockCount    *int32  `json:"block_count,omitempty"`
	BlockSize     *int64  `json:"block_size,omitempty"`
	FileSystem    *string `json:"file_system,omitempty"`
	InodeSize     *int32  `json:"inode_size,omitempty"`
	InodeNums     *int64  `json:"inode_nums,omitempty"`
	DeviceUse     *string `json:"device_use,omitempty"`
	MountPoint    *string `json:"mount_point,omitempty"`
	Name          *string `json:"name,omitempty"`
	Size          *int64  `json:"size,omitempty"`
	UsedSize      *int64  `json:"used_size,omitempty"`
	FreeSize      *int64  `json:"free_size,omitempty"`
	NeedMigration *bool   `json:"need_migration,omitempty"`
	AdjustSize    *int64  `json:"adjust_size,omitempty"`
}

// EnvironmentCheck is one environment check result (table 4-26).
type EnvironmentCheck struct {
	ID          int64    `json:"id"`
	Params      []string `json:"params"`
	Name        string   `json:"name"`
	Result      string   `json:"result"`
	ErrorCode   string   `json:"error_code"`
	ErrorOrWarn string   `json:"error_or_warn"`
	ErrorParams string   `json:"error_params"`
}

// AssignFactIDs gives every disk, partition, volume group and logical volume
// without an id one, reusing the id of the same-named item in prev (a
// re-registration keeps the ids an operator's PUT refers to) and carrying over
// the operator's need_migration/adjust_size choices.
func AssignFactIDs(disks []SourceDisk, vgs []VolumeGroup, prevDisks []SourceDisk, prevVGs []VolumeGroup, newID func() string) {
	pd := map[string]*SourceDisk{}
	for i := range prevDisks {
		pd[ptr.Deref(prevDisks[i].Name)] = &prevDisks[i]
	}
	for i := range disks {
		d := &disks[i]
		old := pd[ptr.Deref(d.Name)]
		if old != nil {
			d.ID = firstNonNil(d.ID, old.ID)
			d.NeedMigration = firstNonNil(d.NeedMigration, old.NeedMigration)
			d.AdjustSize = firstNonNil(d.AdjustSize, old.AdjustSize)
			d.RelationName = firstNonNil(d.RelationName, old.RelationName)
		}
		if d.ID == nil {
			d.ID = new(newID())
		}
		pp := map[string]*PhysicalVolume{}
		if old != nil {
			for j := range old.PhysicalVolumes {
				pp[ptr.Deref(old.PhysicalVolumes[j].Name)] = &old.PhysicalVolumes[j]
			}
		}
		if d.PhysicalVolumes == nil {
			d.PhysicalVolumes = []PhysicalVolume{}
		}
		for j := range d.PhysicalVolumes {
			p := &d.PhysicalVolumes[j]
			if o := pp[ptr.Deref(p.Name)]; o != nil {
				p.ID = firstNonNil(p.ID, o.ID)
				p.NeedMigration = firstNonNil(p.NeedMigration, o.NeedMigration)
				p.AdjustSize = firstNonNil(p.AdjustSize, o.AdjustSize)
			}
			if p.ID == nil {
				p.ID = new(newID())
			}
		}
	}
	pv := map[string]*VolumeGroup{}
	for i := range prevVGs {
		pv[ptr.Deref(prevVGs[i].Name)] = &prevVGs[i]
	}
	for i := range vgs {
		g := &vgs[i]
		old := pv[ptr.Deref(g.Name)]
		if old != nil {
			g.ID = firstNonNil(g.ID, old.ID)
			g.NeedMigration = firstNonNil(g.NeedMigration, old.NeedMigration)
			g.AdjustSize = firstNonNil(g.AdjustSize, old.AdjustSize)
		}
		if g.ID == nil {
			g.ID = new(newID())
		}
		pl := map[string]*LogicalVolume{}
		if old != nil {
			for j := range old.LogicalVolumes {
				pl[ptr.Deref(old.LogicalVolumes[j].Name)] = &old.LogicalVolumes[j]
			}
		}
		if g.LogicalVolumes == nil {
			g.LogicalVolumes = []LogicalVolume{}
		}
		for j := range g.LogicalVolumes {
			l := &g.LogicalVolumes[j]
			if o := pl[ptr.Deref(l.Name)]; o != nil {
				l.ID = firstNonNil(l.ID, o.ID)
				l.NeedMigration = firstNonNil(l.NeedMigration, o.NeedMigration)
				l.AdjustSize = firstNonNil(l.AdjustSize, o.AdjustSize)
			}
			if l.ID == nil {
				l.ID = new(newID())
			}
		}
	}
}

func firstNonNil[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}
