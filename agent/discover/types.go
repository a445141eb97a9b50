package discover

import "github.com/smsflow/smsflow/internal/sms"

// The register body of POST /v3/sources (spec §4.1.2, tables 4-8 .. 4-15) as
// an agent on a Linux source fills it. Fields the server requires are always
// present in the JSON (slices marshal as [] even when empty); fields that are
// unknown are omitted. Fields tagged json:"-" are facts for the agent itself
// (which file stands in for a disk, whether a partition table was read) and
// are never sent.

// Source is the body of POST /v3/sources.
type Source struct {
	IP                 string        `json:"ip"`
	IPv6               string        `json:"ipv6,omitempty"`
	Name               string        `json:"name"`
	Hostname           string        `json:"hostname"`
	OSType             sms.OSType    `json:"os_type"`    // always Linux
	OSVersion          string        `json:"os_version"` // e.g. CENTOS_7_9_64BIT, UBUNTU_22_4_64BIT
	VirtualizationType string        `json:"virtualization_type,omitempty"`
	LinuxBlockCheck    string        `json:"linux_block_check"` // JSON text, see BlockCheck
	Firmware           string        `json:"firmware"`          // BIOS or UEFI
	CPUQuantity        int32         `json:"cpu_quantity"`
	Memory             int64         `json:"memory"` // bytes (the spec's own example sends MemTotal in bytes)
	Disks              []Disk        `json:"disks"`
	BtrfsList          []Btrfs       `json:"btrfs_list"`
	Networks           []Network     `json:"networks"`
	HasRsync           bool          `json:"has_rsync"`
	Paravirtualization bool          `json:"paravirtualization"`
	RawDevices         string        `json:"raw_devices"`
	BootLoader         string        `json:"boot_loader"` // GRUB, LILO or "" (unknown)
	VolumeGroups       []VolumeGroup `json:"volume_groups"`
	AgentVersion       string        `json:"agent_version,omitempty"`
	KernelVersion      string        `json:"kernel_version"`
	IOReadWait         *float64      `json:"io_read_wait,omitempty"` // ms per read since boot
	HasTc              bool          `json:"has_tc"`
	Platform           string        `json:"platform"` // hw, ali, aws, azure, gcp, tencent, vmware, hyperv, other
	// MachineID is /etc/machine-id: smsflow's server extension that keeps a
	// re-installed agent on the same source record.
	MachineID string `json:"machine_id,omitempty"`

	// BlockCheck is what LinuxBlockCheck encodes.
	BlockCheck BlockCheck `json:"-"`
}

// BlockCheck is the content of linux_block_check, in the key order of the
// spec's example.
type BlockCheck struct {
	ReleaseType          string `json:"release_type"`          // CENTOS, UBUNTU, SUSE, ...
	ReleaseVersion       string `json:"release_version"`       // 7.9, 22.04, 12.2
	KernelSimplification string `json:"kernel_simplification"` // 3.10.0
	Architecture         string `json:"architecture"`          // x86_64, aarch64
	KernelVersion        string `json:"kernel_version"`        // 3.10.0-1160.el7.x86_64
}

// Disk is a ServerDisk (table 4-9).
type Disk struct {
	Name            string           `json:"name"`            // /dev/vda
	PartitionStyle  string           `json:"partition_style"` // MBR or GPT
	DeviceUse       string           `json:"device_use"`      // BOOT, OS, NORMAL, VOLUME_GROUP
	Size            int64            `json:"size"`            // bytes
	UsedSize        int64            `json:"used_size"`       // bytes a copy has to move (see package doc)
	PhysicalVolumes []PhysicalVolume `json:"physical_volumes"`
	OSDisk          bool             `json:"os_disk"`

	// HasPartitionTable is false when no MBR or GPT was found (or the disk
	// could not be read): PartitionStyle is then a default (MBR), as the
	// server requires one.
	HasPartitionTable bool `json:"-"`
	// Image is the file that stands in for this disk (Options.DiskImages).
	Image string `json:"-"`
	// SectorSize is the logical sector size in bytes.
	SectorSize int `json:"-"`
}

// PhysicalVolume is a partition (table 4-10). A file system made on a whole
// disk and mounted is reported as one PhysicalVolume named like the disk,
// with Index 0.
type PhysicalVolume struct {
	DeviceUse  string `json:"device_use"` // NORMAL, BOOT, OS, VOLUME_GROUP, BTRFS
	FileSystem string `json:"file_system"`
	Index      int32  `json:"index"` // partition number
	MountPoint string `json:"mount_point"`
	Name       string `json:"name"` // /dev/vda1
	Size       int64  `json:"size"`
	UsedSize   int64  `json:"used_size"`
	InodeSize  int32  `json:"inode_size"` // bytes per inode, 0 when unknown
	InodeNums  int64  `json:"inode_nums"` // inodes of the file system, 0 when unknown
	UUID       string `json:"uuid,omitempty"`

	// Start is the partition's offset on its disk in bytes.
	Start int64 `json:"-"`
}

// Btrfs is a BtrfsFileSystem (table 4-11).
type Btrfs struct {
	Name            string `json:"name"`
	Label           string `json:"label"`
	UUID            string `json:"uuid"`
	Device          string `json:"device"`
	Size            int64  `json:"size"`
	Nodesize        int64  `json:"nodesize"`
	Sectorsize      int32  `json:"sectorsize"`
	DataProfile     string `json:"data_profile"`
	SystemProfile   string `json:"system_profile"`
	MetadataProfile string `json:"metadata_profile"`
	GlobalReserve1  string `json:"global_reserve1"`
	GVolUsedSize    int64  `json:"g_vol_used_size"`
	// The SDK's key is default_subvolid, the spec table's default_subvol_id:
	// both are sent with the same value.
	DefaultSubvolID        string        `json:"default_subvolid"`
	DefaultSubvolIDSpec    string        `json:"default_subvol_id"`
	DefaultSubvolName      string        `json:"default_subvol_name"`
	DefaultSubvolMountpath string        `json:"default_subvol_mountpath"`
	Subvolumn              []BtrfsSubvol `json:"subvolumn"`
}

// BtrfsSubvol is a BtrfsSubvolumn (table 4-12).
type BtrfsSubvol struct {
	UUID            string `json:"uuid"`
	IsSnapshot      string `json:"is_snapshot"` // "true" or "false"
	SubvolID        string `json:"subvol_id"`
	ParentID        string `json:"parent_id"`
	SubvolName      string `json:"subvol_name"`
	SubvolMountPath string `json:"subvol_mount_path"`
}

// Network is a NetWork (table 4-13).
type Network struct {
	Name    string `json:"name"`
	IP      string `json:"ip"`
	IPv6    string `json:"ipv6,omitempty"`
	Netmask string `json:"netmask"`
	Gateway string `json:"gateway"`
	MTU     int32  `json:"mtu"`
	MAC     string `json:"mac"`
}

// VolumeGroup is a VolumeGroups object (table 4-14).
type VolumeGroup struct {
	Components     string          `json:"components"` // PVs joined by ";"
	FreeSize       int64           `json:"free_size"`
	LogicalVolumes []LogicalVolume `json:"logical_volumes"`
	Name           string          `json:"name"`
	Size           int64           `json:"size"`
}

// LogicalVolume is a LogicalVolumes object (table 4-15).
type LogicalVolume struct {
	BlockCount int32  `json:"block_count"`
	BlockSize  int64  `json:"block_size"`
	FileSystem string `json:"file_system"`
	InodeSize  int32  `json:"inode_size"`
	InodeNums  int64  `json:"inode_nums"`
	DeviceUse  string `json:"device_use"`
	MountPoint string `json:"mount_point"`
	Name       string `json:"name"` // /dev/mapper/vg-lv
	Size       int64  `json:"size"`
	UsedSize   int64  `json:"used_size"`
	FreeSize   int64  `json:"free_size"`
}

// normalize makes every slice the server requires marshal as [] rather than
// null.
func (s *Source) normalize() {
	if s.Disks == nil {
		s.Disks = []Disk{}
	}
	for i := range s.Disks {
		if s.Disks[i].PhysicalVolumes == nil {
			s.Disks[i].PhysicalVolumes = []PhysicalVolume{}
		}
	}
	if s.BtrfsList == nil {
		s.BtrfsList = []Btrfs{}
	}
	for i := range s.BtrfsList {
		if s.BtrfsList[i].Subvolumn == nil {
			s.BtrfsList[i].Subvolumn = []BtrfsSubvol{}
		}
	}
	if s.Networks == nil {
		s.Networks = []Network{}
	}
	if s.VolumeGroups == nil {
		s.VolumeGroups = []VolumeGroup{}
	}
	for i := range s.VolumeGroups {
		if s.VolumeGroups[i].LogicalVolumes == nil {
			s.VolumeGroups[i].LogicalVolumes = []LogicalVolume{}
		}
	}
}
