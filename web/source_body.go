package web

import (
	"fmt"
	"strings"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/layout"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// Request shapes of POST /v3/sources (tables 4-8 .. 4-15) and of the disk
// info replacement (§4.1.10). Pointers tell absent from zero.

type physicalVolumeBody struct {
	DeviceUse      *string    `json:"device_use"`
	FileSystem     *string    `json:"file_system"`
	Index          *int32     `json:"index"`
	MountPoint     *string    `json:"mount_point"`
	Name           *string    `json:"name"`
	Size           *int64     `json:"size"`
	UsedSize       *int64     `json:"used_size"`
	InodeSize      *FlexInt64 `json:"inode_size"`
	InodeNums      *int64     `json:"inode_nums"`
	UUID           *string    `json:"uuid"`
	SizePerCluster *int32     `json:"size_per_cluster"`
}

type serverDiskBody struct {
	Name            *string               `json:"name"`
	PartitionStyle  *string               `json:"partition_style"`
	DeviceUse       *string               `json:"device_use"`
	Size            *int64                `json:"size"`
	UsedSize        *int64                `json:"used_size"`
	PhysicalVolumes *[]physicalVolumeBody `json:"physical_volumes"`
	OSDisk          *bool                 `json:"os_disk"`
	RelationName    *string               `json:"relation_name"`
	InodeSize       *FlexInt64            `json:"inode_size"`
}

type btrfsSubvolBody struct {
	UUID            *string `json:"uuid"`
	IsSnapshot      *string `json:"is_snapshot"`
	SubvolID        *string `json:"subvol_id"`
	ParentID        *string `json:"parent_id"`
	SubvolName      *string `json:"subvol_name"`
	SubvolMountPath *string `json:"subvol_mount_path"`
}

type btrfsBody struct {
	Name            *string   `json:"name"`
	Label           *string   `json:"label"`
	UUID            *string   `json:"uuid"`
	Device          *string   `json:"device"`
	Size            *FlexSize `json:"size"`
	Nodesize        *FlexSize `json:"nodesize"`
	Sectorsize      *FlexSize `json:"sectorsize"`
	DataProfile     *string   `json:"data_profile"`
	SystemProfile   *string   `json:"system_profile"`
	MetadataProfile *string   `json:"metadata_profile"`
	GlobalReserve1  *string   `json:"global_reserve1"`
	GVolUsedSize    *FlexSize `json:"g_vol_used_size"`
	// The SDK's key is default_subvolid; the spec's table says
	// default_subvol_id. Both are read.
	DefaultSubvolID        *string            `json:"default_subvolid"`
	DefaultSubvolIDSpec    *string            `json:"default_subvol_id"`
	DefaultSubvolName      *string            `json:"default_subvol_name"`
	DefaultSubvolMountpath *string            `json:"default_subvol_mountpath"`
	Subvolumn              *[]btrfsSubvolBody `json:"subvolumn"`
}

type networkBody struct {
	Name    *string `json:"name"`
	IP      *string `json:"ip"`
	IPv6    *string `json:"ipv6"`
	Netmask *string `json:"netmask"`
	Gateway *string `json:"gateway"`
	MTU     *int32  `json:"mtu"`
	MAC     *string `json:"mac"`
	ID      *string `json:"id"`
}

type logicalVolumeBody struct {
	BlockCount *int32     `json:"block_count"`
	BlockSize  *int64     `json:"block_size"`
	FileSystem *string    `json:"file_system"`
	InodeSize  *FlexInt64 `json:"inode_size"`
	InodeNums  *int64     `json:"inode_nums"`
	DeviceUse  *string    `json:"device_use"`
	MountPoint *string    `json:"mount_point"`
	Name       *string    `json:"name"`
	Size       *int64     `json:"size"`
	UsedSize   *int64     `json:"used_size"`
	FreeSize   *int64     `json:"free_size"`
}

type volumeGroupBody struct {
	Components     *string              `json:"components"`
	FreeSize       *int64               `json:"free_size"`
	LogicalVolumes *[]logicalVolumeBody `json:"logical_volumes"`
	Name           *string              `json:"name"`
	Size           *int64               `json:"size"`
}

// registerBody is POST /v3/sources.
type registerBody struct {
	ID                 *string            `json:"id"`
	IP                 *string            `json:"ip"`
	IPv6               *string            `json:"ipv6"`
	Name               *string            `json:"name"`
	Hostname           *string            `json:"hostname"`
	OSType             *string            `json:"os_type"`
	OSVersion          *string            `json:"os_version"`
	VirtualizationType *string            `json:"virtualization_type"`
	LinuxBlockCheck    *string            `json:"linux_block_check"`
	Firmware           *string            `json:"firmware"`
	CPUQuantity        *int32             `json:"cpu_quantity"`
	Memory             *int64             `json:"memory"`
	Disks              *[]serverDiskBody  `json:"disks"`
	BtrfsList          *[]btrfsBody       `json:"btrfs_list"`
	Networks           *[]networkBody     `json:"networks"`
	DomainID           *string            `json:"domain_id"`
	HasRsync           *bool              `json:"has_rsync"`
	Paravirtualization *bool              `json:"paravirtualization"`
	RawDevices         *string            `json:"raw_devices"`
	DriverFiles        *bool              `json:"driver_files"`
	SystemServices     *bool              `json:"system_services"`
	AccountRights      *bool              `json:"account_rights"`
	BootLoader         *string            `json:"boot_loader"`
	SystemDir          *string            `json:"system_dir"`
	VolumeGroups       *[]volumeGroupBody `json:"volume_groups"`
	AgentVersion       *string            `json:"agent_version"`
	KernelVersion      *string            `json:"kernel_version"`
	MigrationCycle     *string            `json:"migration_cycle"`
	State              *string            `json:"state"`
	OEMSystem          *bool              `json:"oem_system"`
	StartType          *string            `json:"start_type"`
	IOReadWait         *float64           `json:"io_read_wait"`
	HasTc              *bool              `json:"has_tc"`
	Platform           *string            `json:"platform"`
	// Extensions: the migration project to register into (the SDK's body
	// has no such field; the default project is used without it) and a
	// stable machine id (see machineKey).
	MigProjectID *string `json:"migprojectid"`
	MachineID    *string `json:"machine_id"`
}

const maxInt64 = int64(1<<63 - 1)
const maxInt32 = int32(1<<31 - 1)

var (
	osTypes        = names(sms.OSTypes)
	firmwares      = []string{"BIOS", "UEFI"}
	bootLoaders    = []string{"GRUB", "LILO"}
	startTypes     = []string{"MANUAL", "MGC"}
	platforms      = []string{"hw", "ali", "aws", "azure", "gcp", "tencent", "vmware", "hyperv", "other"}
	partitionStyle = []string{"MBR", "GPT"}
	// The spec's enum is BOOT and OS; its own register example also sends
	// NORMAL and VOLUME_GROUP for data disks, which agents do.
	diskUses    = []string{"BOOT", "OS", "NORMAL", "VOLUME_GROUP", "BTRFS"}
	cycleValues = names(sms.Cycles)
	stateValues = names(sms.SourceStates)
)

// validate applies the §4.1.2 rules: fields required for every registration,
// the Linux-only and Windows-only required fields, enums and ranges.
func (b *registerBody) validate() error {
	var v checks
	if b.Name == nil || *b.Name == "" {
		return smsErrName()
	}
	v.str("name", b.Name, required, 1, 255)
	v.str("id", b.ID, optional, 0, 255)
	v.str("ip", b.IP, required, 0, 255)
	v.str("ipv6", b.IPv6, optional, 0, 255)
	// The spec marks hostname required at registration, but its own register
	// example (and agents in the field) omit it; it defaults to empty.
	v.str("hostname", b.Hostname, optional, 0, 255)
	if b.OSType == nil {
		v.required("os_type", false)
	} else if !oneOf(*b.OSType, osTypes) {
		return smsErrOSType(*b.OSType)
	}
	v.str("os_version", b.OSVersion, required, 0, 255)
	v.str("virtualization_type", b.VirtualizationType, optional, 0, 255)
	v.str("linux_block_check", b.LinuxBlockCheck, optional, 0, 1024)
	v.enum("firmware", b.Firmware, optional, firmwares...)
	between(&v, "cpu_quantity", b.CPUQuantity, optional, 0, 65535)
	between(&v, "memory", b.Memory, optional, 0, maxInt64)
	v.str("domain_id", b.DomainID, optional, 0, 255)
	v.str("raw_devices", b.RawDevices, optional, 0, 255)
	v.enumOrEmpty("boot_loader", b.BootLoader, optional, bootLoaders...)
	v.str("system_dir", b.SystemDir, optional, 0, 255)
	v.str("agent_version", b.AgentVersion, optional, 0, 255)
	v.str("kernel_version", b.KernelVersion, optional, 0, 255)
	v.enum("migration_cycle", lower(b.MigrationCycle), optional, cycleValues...)
	v.enum("state", lower(b.State), optional, stateValues...)
	v.enumOrEmpty("start_type", b.StartType, optional, startTypes...)
	if b.IOReadWait != nil && (*b.IOReadWait < 0 || *b.IOReadWait > 10000) {
		v.invalid("io_read_wait", "must be between 0.0 and 10000.0")
	}
	v.enum("platform", b.Platform, optional, platforms...)
	v.str("migprojectid", b.MigProjectID, optional, 0, 255)
	v.str("machine_id", b.MachineID, optional, 1, 128)

	linux := b.OSType != nil && sms.OSType(*b.OSType) == sms.Linux
	windows := b.OSType != nil && sms.OSType(*b.OSType) == sms.Windows
	// Linux-required fields. The spec also marks raw_devices, has_tc and a
	// network's mtu "Linux必选", yet its own Linux register example sends
	// none of them: they stay optional (unknown) so real agents register.
	if linux {
		v.required("btrfs_list", b.BtrfsList != nil)
		v.required("has_rsync", b.HasRsync != nil)
		v.required("paravirtualization", b.Paravirtualization != nil)
		v.required("boot_loader", b.BootLoader != nil)
		v.required("volume_groups", b.VolumeGroups != nil)
	}
	if windows {
		v.required("driver_files", b.DriverFiles != nil)
		v.required("system_services", b.SystemServices != nil)
		v.required("account_rights", b.AccountRights != nil)
		v.required("system_dir", b.SystemDir != nil)
	}
	if b.Disks != nil {
		checkDisks(&v, "disks", *b.Disks, creating)
	}
	if b.BtrfsList != nil {
		checkBtrfs(&v, *b.BtrfsList)
	}
	if b.VolumeGroups != nil {
		checkVolumeGroups(&v, "volume_groups", *b.VolumeGroups)
	}
	if b.Networks != nil {
		for i, n := range *b.Networks {
			f := fmt.Sprintf("networks[%d].", i)
			v.str(f+"name", n.Name, required, 0, 255)
			v.str(f+"ip", n.IP, required, 0, 255)
			v.str(f+"ipv6", n.IPv6, optional, 0, 255)
			v.str(f+"netmask", n.Netmask, required, 0, 255)
			v.str(f+"gateway", n.Gateway, required, 0, 255)
			between(&v, f+"mtu", n.MTU, optional, 0, maxInt32)
			v.str(f+"mac", n.MAC, required, 0, 255)
			v.str(f+"id", n.ID, optional, 0, 255)
		}
	}
	return v.err()
}

func lower(s *string) *string {
	if s == nil {
		return nil
	}
	l := strings.ToLower(*s)
	return &l
}

// names spells a list of the vocabulary's words as strings, for the
// validators and their messages.
func names[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

// joinNames lists the vocabulary's words for an error message.
func joinNames[T ~string](xs []T) string { return strings.Join(names(xs), ", ") }

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

func flexBetween(v *checks, field string, n *FlexInt64, p presence, lo, hi int64) {
	if n == nil {
		if p == required {
			v.absent(field)
		}
		return
	}
	x := int64(*n)
	between(v, field, &x, p, lo, hi)
}

func sizeBetween(v *checks, field string, n *FlexSize, p presence, limit int64) {
	if n == nil {
		if p == required {
			v.absent(field)
		}
		return
	}
	x := int64(*n)
	between(v, field, &x, p, 0, limit)
}

func checkDisks(v *checks, path string, disks []serverDiskBody, use purpose) {
	register := use == creating
	for i, d := range disks {
		f := fmt.Sprintf("%s[%d].", path, i)
		v.str(f+"name", d.Name, required, 0, 255)
		v.enum(f+"partition_style", d.PartitionStyle, requiredIf(register), partitionStyle...)
		v.enum(f+"device_use", d.DeviceUse, required, diskUses...)
		between(v, f+"size", d.Size, required, 0, layout.MaxDiskSize)
		between(v, f+"used_size", d.UsedSize, required, 0, layout.MaxDiskSize)
		if d.Size != nil && d.UsedSize != nil && *d.UsedSize > *d.Size {
			v.invalid(f+"used_size", "must not exceed size")
		}
		v.required(f+"physical_volumes", d.PhysicalVolumes != nil)
		v.str(f+"relation_name", d.RelationName, optional, 0, 255)
		flexBetween(v, f+"inode_size", d.InodeSize, optional, 0, int64(maxInt32))
		if d.PhysicalVolumes == nil {
			continue
		}
		for j, p := range *d.PhysicalVolumes {
			g := fmt.Sprintf("%sphysical_volumes[%d].", f, j)
			v.str(g+"device_use", p.DeviceUse, optional, 0, 255)
			v.str(g+"file_system", p.FileSystem, optional, 0, 255)
			between(v, g+"index", p.Index, optional, 0, maxInt32)
			v.str(g+"mount_point", p.MountPoint, optional, 0, 255)
			v.str(g+"name", p.Name, optional, 0, 255)
			between(v, g+"size", p.Size, optional, 0, layout.MaxDiskSize)
			between(v, g+"used_size", p.UsedSize, optional, 0, layout.MaxDiskSize)
			flexBetween(v, g+"inode_size", p.InodeSize, optional, 0, int64(maxInt32))
			between(v, g+"inode_nums", p.InodeNums, optional, 0, maxInt64)
			v.str(g+"uuid", p.UUID, optional, 0, 255)
			between(v, g+"size_per_cluster", p.SizePerCluster, optional, 0, maxInt32)
		}
	}
}

func checkBtrfs(v *checks, list []btrfsBody) {
	for i, b := range list {
		f := fmt.Sprintf("btrfs_list[%d].", i)
		for _, fs := range []struct {
			name string
			s    *string
		}{{"name", b.Name}, {"label", b.Label}, {"uuid", b.UUID}, {"device", b.Device},
			{"data_profile", b.DataProfile}, {"system_profile", b.SystemProfile}, {"metadata_profile", b.MetadataProfile},
			{"global_reserve1", b.GlobalReserve1}, {"default_subvol_name", b.DefaultSubvolName},
			{"default_subvol_mountpath", b.DefaultSubvolMountpath}} {
			v.str(f+fs.name, fs.s, required, 0, 255)
		}
		if b.DefaultSubvolID == nil && b.DefaultSubvolIDSpec == nil {
			v.required(f+"default_subvolid", false)
		}
		v.str(f+"default_subvolid", firstStr(b.DefaultSubvolID, b.DefaultSubvolIDSpec), optional, 0, 255)
		sizeBetween(v, f+"size", b.Size, required, maxInt64)
		sizeBetween(v, f+"nodesize", b.Nodesize, required, maxInt64)
		sizeBetween(v, f+"sectorsize", b.Sectorsize, required, int64(maxInt32))
		sizeBetween(v, f+"g_vol_used_size", b.GVolUsedSize, required, maxInt64)
		v.required(f+"subvolumn", b.Subvolumn != nil)
		if b.Subvolumn == nil {
			continue
		}
		for j, s := range *b.Subvolumn {
			g := fmt.Sprintf("%ssubvolumn[%d].", f, j)
			v.str(g+"uuid", s.UUID, required, 0, 255)
			v.str(g+"is_snapshot", s.IsSnapshot, required, 0, 255)
			v.str(g+"subvol_id", s.SubvolID, required, 0, 255)
			v.str(g+"parent_id", s.ParentID, required, 0, 255)
			v.str(g+"subvol_name", s.SubvolName, required, 0, 255)
			v.str(g+"subvol_mount_path", s.SubvolMountPath, required, 0, 255)
		}
	}
}

func checkVolumeGroups(v *checks, path string, vgs []volumeGroupBody) {
	for i, g := range vgs {
		f := fmt.Sprintf("%s[%d].", path, i)
		v.str(f+"components", g.Components, optional, 0, 255)
		between(v, f+"free_size", g.FreeSize, optional, 0, maxInt64)
		v.str(f+"name", g.Name, optional, 0, 255)
		between(v, f+"size", g.Size, optional, 0, maxInt64)
		if g.LogicalVolumes == nil {
			continue
		}
		if len(*g.LogicalVolumes) > 255 {
			v.invalid(f+"logical_volumes", "at most 255 logical volumes")
		}
		for j, l := range *g.LogicalVolumes {
			h := fmt.Sprintf("%slogical_volumes[%d].", f, j)
			between(v, h+"block_count", l.BlockCount, optional, 0, maxInt32)
			between(v, h+"block_size", l.BlockSize, optional, 0, 1048576)
			v.str(h+"file_system", l.FileSystem, required, 0, 255)
			flexBetween(v, h+"inode_size", l.InodeSize, required, 0, int64(maxInt32))
			between(v, h+"inode_nums", l.InodeNums, optional, 0, maxInt64)
			v.str(h+"device_use", l.DeviceUse, optional, 0, 255)
			v.str(h+"mount_point", l.MountPoint, required, 0, 256)
			v.str(h+"name", l.Name, required, 0, 1024)
			between(v, h+"size", l.Size, required, 0, maxInt64)
			between(v, h+"used_size", l.UsedSize, required, 0, maxInt64)
			between(v, h+"free_size", l.FreeSize, required, 0, maxInt64)
		}
	}
}

func firstStr(a, b *string) *string {
	if a != nil {
		return a
	}
	return b
}

func flexI32(p *FlexInt64) *int32 {
	if p == nil {
		return nil
	}
	x := int32(*p)
	return &x
}

func sizeI64(p *FlexSize) *int64 {
	if p == nil {
		return nil
	}
	x := int64(*p)
	return &x
}

func sizeI32(p *FlexSize) *int32 {
	if p == nil {
		return nil
	}
	x := int32(*p)
	return &x
}

// Conversions to the stored facts.

func toDisks(in []serverDiskBody) []store.SourceDisk {
	out := make([]store.SourceDisk, len(in))
	for i, d := range in {
		sd := store.SourceDisk{Name: d.Name, PartitionStyle: d.PartitionStyle, DeviceUse: d.DeviceUse, Size: d.Size,
			UsedSize: d.UsedSize, OSDisk: d.OSDisk, RelationName: d.RelationName, InodeSize: flexI32(d.InodeSize),
			PhysicalVolumes: []store.PhysicalVolume{}}
		if d.PhysicalVolumes != nil {
			for _, p := range *d.PhysicalVolumes {
				sd.PhysicalVolumes = append(sd.PhysicalVolumes, store.PhysicalVolume{
					DeviceUse: p.DeviceUse, FileSystem: p.FileSystem, Index: p.Index, MountPoint: p.MountPoint, Name: p.Name,
					Size: p.Size, UsedSize: p.UsedSize, InodeSize: flexI32(p.InodeSize), InodeNums: p.InodeNums, UUID: p.UUID,
					SizePerCluster: p.SizePerCluster,
				})
			}
		}
		out[i] = sd
	}
	return out
}

func toBtrfs(in []btrfsBody) []store.BtrfsFileSystem {
	out := make([]store.BtrfsFileSystem, len(in))
	for i, b := range in {
		fs := store.BtrfsFileSystem{Name: b.Name, Label: b.Label, UUID: b.UUID, Device: b.Device, Size: sizeI64(b.Size),
			Nodesize: sizeI64(b.Nodesize), Sectorsize: sizeI32(b.Sectorsize), DataProfile: b.DataProfile,
			SystemProfile: b.SystemProfile, MetadataProfile: b.MetadataProfile, GlobalReserve1: b.GlobalReserve1,
			GVolUsedSize: sizeI64(b.GVolUsedSize), DefaultSubvolID: firstStr(b.DefaultSubvolID, b.DefaultSubvolIDSpec),
			DefaultSubvolName: b.DefaultSubvolName, DefaultSubvolMountpath: b.DefaultSubvolMountpath,
			Subvolumn: []store.BtrfsSubvolumn{}}
		if b.Subvolumn != nil {
			for _, s := range *b.Subvolumn {
				fs.Subvolumn = append(fs.Subvolumn, store.BtrfsSubvolumn{UUID: s.UUID, IsSnapshot: s.IsSnapshot,
					SubvolID: s.SubvolID, ParentID: s.ParentID, SubvolName: s.SubvolName, SubvolMountPath: s.SubvolMountPath})
			}
		}
		out[i] = fs
	}
	return out
}

func toVolumeGroups(in []volumeGroupBody) []store.VolumeGroup {
	out := make([]store.VolumeGroup, len(in))
	for i, g := range in {
		vg := store.VolumeGroup{Components: g.Components, FreeSize: g.FreeSize, Name: g.Name, Size: g.Size,
			LogicalVolumes: []store.LogicalVolume{}}
		if g.LogicalVolumes != nil {
			for _, l := range *g.LogicalVolumes {
				vg.LogicalVolumes = append(vg.LogicalVolumes, store.LogicalVolume{BlockCount: l.BlockCount,
					BlockSize: l.BlockSize, FileSystem: l.FileSystem, InodeSize: flexI32(l.InodeSize), InodeNums: l.InodeNums,
					DeviceUse: l.DeviceUse, MountPoint: l.MountPoint, Name: l.Name, Size: l.Size, UsedSize: l.UsedSize,
					FreeSize: l.FreeSize})
			}
		}
		out[i] = vg
	}
	return out
}

func toNetworks(in []networkBody) []store.Network {
	out := make([]store.Network, len(in))
	for i, n := range in {
		out[i] = store.Network{Name: n.Name, IP: n.IP, IPv6: n.IPv6, Netmask: n.Netmask, Gateway: n.Gateway, MTU: n.MTU,
			MAC: n.MAC, ID: n.ID}
	}
	return out
}

func smsErrName() error {
	return smserr.New(smserr.SMS6001, "name").WithDetail("name: is required and must not be empty")
}

func smsErrOSType(got string) error {
	return smserr.New(smserr.SMS6601, "os_type").WithDetail("os_type: must be WINDOWS or LINUX, got " + truncate(got, 32))
}
