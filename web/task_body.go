package web

import (
	"fmt"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/layout"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// Request shapes of POST /v3/tasks (PostTask) and PUT /v3/tasks/{id}
// (PutTaskReq); pointers tell absent from zero.

type targetPVBody struct {
	DeviceUse  *string `json:"device_use"`
	FileSystem *string `json:"file_system"`
	Index      *int32  `json:"index"`
	MountPoint *string `json:"mount_point"`
	Name       *string `json:"name"`
	Size       *int64  `json:"size"`
	InodeSize  *int64  `json:"inode_size"`
	UsedSize   *int64  `json:"used_size"`
	UUID       *string `json:"uuid"`
}

type targetDiskBody struct {
	DeviceUse       *string         `json:"device_use"`
	DiskID          *string         `json:"disk_id"`
	Name            *string         `json:"name"`
	PhysicalVolumes *[]targetPVBody `json:"physical_volumes"`
	Size            *int64          `json:"size"`
	UsedSize        *int64          `json:"used_size"`
}

type targetServerBody struct {
	VMID         *string            `json:"vm_id"`
	Name         *string            `json:"name"`
	Disks        *[]targetDiskBody  `json:"disks"`
	VolumeGroups *[]volumeGroupBody `json:"volume_groups"`
	BtrfsList    *[]btrfsBody       `json:"btrfs_list"`
}

type createTaskBody struct {
	Name              *string `json:"name"`
	Type              *string `json:"type"`
	StartTargetServer *bool   `json:"start_target_server"`
	AutoStart         *bool   `json:"auto_start"`
	OSType            *string `json:"os_type"`
	SourceServer      *struct {
		ID *string `json:"id"`
	} `json:"source_server"`
	TargetServer           *targetServerBody `json:"target_server"`
	MigrationIP            *string           `json:"migration_ip"`
	RegionName             *string           `json:"region_name"`
	RegionID               *string           `json:"region_id"`
	ProjectName            *string           `json:"project_name"`
	ProjectID              *string           `json:"project_id"`
	Priority               *int32            `json:"priority"`
	VMTemplateID           *string           `json:"vm_template_id"`
	CloneVMTemplateID      *string           `json:"clonevm_template_id"`
	UsePublicIP            *bool             `json:"use_public_ip"`
	UseIPv6                *bool             `json:"use_ipv6"`
	Syncing                *bool             `json:"syncing"`
	ExistServer            *bool             `json:"exist_server"`
	StartNetworkCheck      *bool             `json:"start_network_check"`
	SpeedLimit             *int32            `json:"speed_limit"`
	OverSpeedThreshold     *float64          `json:"over_speed_threshold"`
	IsNeedConsistencyCheck *bool             `json:"is_need_consistency_check"`
	NeedMigrationTest      *bool             `json:"need_migration_test"`
}

var taskTypes = names(sms.TaskTypes)

// validate applies the rules of table 4-117 and its nested tables.
func (b *createTaskBody) validate() error {
	if b.Type != nil && !oneOf(*b.Type, taskTypes) {
		return smserr.New(smserr.SMS7712, "type").WithDetail("type: MIGRATE_BLOCK or MIGRATE_FILE")
	}
	var v checks
	v.str("name", b.Name, required, 0, 255)
	v.required("type", b.Type != nil)
	v.enum("os_type", b.OSType, optional, osTypes...)
	if v.required("source_server", b.SourceServer != nil) {
		v.str("source_server.id", b.SourceServer.ID, required, 0, 255)
	}
	if v.required("target_server", b.TargetServer != nil) {
		ts := b.TargetServer
		v.serverID("target_server.vm_id", ts.VMID)
		v.str("target_server.name", ts.Name, optional, 0, 255)
		if ts.Disks != nil {
			checkTargetDisks(&v, *ts.Disks)
		}
		if ts.VolumeGroups != nil {
			checkVolumeGroups(&v, "target_server.volume_groups", *ts.VolumeGroups)
		}
		if ts.BtrfsList != nil {
			checkBtrfs(&v, *ts.BtrfsList)
		}
	}
	v.str("migration_ip", b.MigrationIP, optional, 0, 255)
	v.str("region_name", b.RegionName, required, 0, 255)
	v.str("region_id", b.RegionID, required, 0, 255)
	v.str("project_name", b.ProjectName, required, 0, 255)
	v.str("project_id", b.ProjectID, required, 0, 255)
	// The spec allows 0..65535; the SDK decodes priority as an enum of
	// 0 (low), 1 (standard), 2 (high), so only those are accepted.
	between(&v, "priority", b.Priority, optional, 0, 2)
	v.str("vm_template_id", b.VMTemplateID, optional, 0, 255)
	v.str("clonevm_template_id", b.CloneVMTemplateID, optional, 0, 255)
	between(&v, "speed_limit", b.SpeedLimit, optional, 0, 10000)
	if b.OverSpeedThreshold != nil && (*b.OverSpeedThreshold < 0 || *b.OverSpeedThreshold > 100) {
		v.invalid("over_speed_threshold", "must be between 0 and 100")
	}
	return v.err()
}

var targetDiskUses = []string{"NORMAL", "OS", "BOOT"}

var cloneStates = names(sms.CloneStates)

// checkTargetDisks bounds a target's disks like a source's: at most
// layout.MaxDisks of them, each at most layout.MaxDiskSize with used_size
// not past size, so that every sum made on them (the local provider's tree
// cap and free-space checks) stays far from overflowing.
func checkTargetDisks(v *checks, disks []targetDiskBody) {
	if len(disks) > layout.MaxDisks {
		v.invalid("target_server.disks", fmt.Sprintf("at most %d disks", layout.MaxDisks))
		return
	}
	for i, d := range disks {
		f := fmt.Sprintf("target_server.disks[%d].", i)
		v.enum(f+"device_use", d.DeviceUse, optional, targetDiskUses...)
		v.str(f+"disk_id", d.DiskID, optional, 0, 255)
		v.str(f+"name", d.Name, required, 0, 255)
		between(v, f+"size", d.Size, required, 0, layout.MaxDiskSize)
		between(v, f+"used_size", d.UsedSize, required, 0, layout.MaxDiskSize)
		if d.Size != nil && d.UsedSize != nil && *d.UsedSize > *d.Size {
			v.invalid(f+"used_size", "must not exceed size")
		}
		v.required(f+"physical_volumes", d.PhysicalVolumes != nil)
		if d.PhysicalVolumes == nil {
			continue
		}
		for j, p := range *d.PhysicalVolumes {
			g := fmt.Sprintf("%sphysical_volumes[%d].", f, j)
			v.enum(g+"device_use", p.DeviceUse, optional, targetDiskUses...)
			v.str(g+"file_system", p.FileSystem, optional, 0, 255)
			between(v, g+"index", p.Index, optional, 0, maxInt32)
			v.str(g+"mount_point", p.MountPoint, optional, 0, 255)
			v.str(g+"name", p.Name, optional, 0, 255)
			between(v, g+"size", p.Size, optional, 0, layout.MaxDiskSize)
			between(v, g+"inode_size", p.InodeSize, optional, 0, maxInt64)
			between(v, g+"used_size", p.UsedSize, optional, 0, layout.MaxDiskSize)
			v.str(g+"uuid", p.UUID, optional, 0, 255)
		}
	}
}

func toTargetDisks(in []targetDiskBody) []store.TargetDisk {
	out := make([]store.TargetDisk, len(in))
	for i, d := range in {
		td := store.TargetDisk{DeviceUse: d.DeviceUse, DiskID: d.DiskID, Name: d.Name, Size: d.Size, UsedSize: d.UsedSize,
			PhysicalVolumes: []store.TargetPhysicalVolume{}}
		id := int64(i + 1)
		td.ID = &id
		if d.PhysicalVolumes != nil {
			for j, p := range *d.PhysicalVolumes {
				pid := int64(j + 1)
				td.PhysicalVolumes = append(td.PhysicalVolumes, store.TargetPhysicalVolume{ID: &pid, DeviceUse: p.DeviceUse,
					FileSystem: p.FileSystem, Index: p.Index, MountPoint: p.MountPoint, Name: p.Name, Size: p.Size,
					UsedSize: p.UsedSize, UUID: p.UUID, InodeSize: p.InodeSize})
			}
		}
		out[i] = td
	}
	return out
}

// updateTaskBody is PUT /v3/tasks/{id} (PutTaskReq): absent fields keep
// their value.
type updateTaskBody struct {
	Name                 *string            `json:"name"`
	Type                 *string            `json:"type"`
	RegionID             *string            `json:"region_id"`
	RegionName           *string            `json:"region_name"`
	ExistServer          *bool              `json:"exist_server"`
	MigrationIP          *string            `json:"migration_ip"`
	UseIPv6              *bool              `json:"use_ipv6"`
	UsePublicIP          *bool              `json:"use_public_ip"`
	SpeedLimit           *int32             `json:"speed_limit"`
	ProjectName          *string            `json:"project_name"`
	ProjectID            *string            `json:"project_id"`
	EnterpriseProject    *string            `json:"enterprise_project"`
	ImageDiskID          *string            `json:"image_disk_id"`
	VMTemplateID         *string            `json:"vm_template_id"`
	TargetDiskIDs        *string            `json:"target_disk_ids"`
	SnapshotIDs          *string            `json:"snapshot_ids"`
	CutoveredSnapshotIDs *string            `json:"cutovered_snapshot_ids"`
	TargetServer         *json2TargetBody   `json:"target_server"`
	CloneServer          *store.CloneServer `json:"clone_server"`
}

// json2TargetBody is the TargetServer of an update: the target's identity
// and disks.
type json2TargetBody struct {
	VMID      *string           `json:"vm_id"`
	Name      *string           `json:"name"`
	IP        *string           `json:"ip"`
	OSType    *string           `json:"os_type"`
	OSVersion *string           `json:"os_version"`
	Flavor    *string           `json:"flavor"`
	Disks     *[]targetDiskBody `json:"disks"`
}

func (b *updateTaskBody) validate() error {
	if b.Type != nil && !oneOf(*b.Type, taskTypes) {
		return smserr.New(smserr.SMS7712, "type").WithDetail("type: MIGRATE_BLOCK or MIGRATE_FILE")
	}
	var v checks
	for _, f := range []struct {
		name string
		s    *string
	}{{"name", b.Name}, {"region_id", b.RegionID}, {"region_name", b.RegionName}, {"migration_ip", b.MigrationIP},
		{"project_name", b.ProjectName}, {"project_id", b.ProjectID}, {"enterprise_project", b.EnterpriseProject},
		{"image_disk_id", b.ImageDiskID}, {"vm_template_id", b.VMTemplateID}, {"target_disk_ids", b.TargetDiskIDs},
		{"snapshot_ids", b.SnapshotIDs}, {"cutovered_snapshot_ids", b.CutoveredSnapshotIDs}} {
		v.str(f.name, f.s, optional, 0, 255)
	}
	between(&v, "speed_limit", b.SpeedLimit, optional, 0, 10000)
	if cs := b.CloneServer; cs != nil {
		// The SDK decodes clone_state as its enum: nothing else is kept.
		state := cs.CloneState
		v.enumOrEmpty("clone_server.clone_state", &state, optional, cloneStates...)
		for _, f := range []struct{ name, s string }{{"vm_id", cs.VMID}, {"name", cs.Name},
			{"clone_error", cs.CloneError}, {"error_msg", cs.ErrorMsg}} {
			v.str("clone_server."+f.name, &f.s, optional, 0, 255)
		}
	}
	if ts := b.TargetServer; ts != nil {
		v.serverID("target_server.vm_id", ts.VMID)
		v.str("target_server.name", ts.Name, optional, 0, 255)
		v.str("target_server.ip", ts.IP, optional, 0, 255)
		v.enumOrEmpty("target_server.os_type", ts.OSType, optional, osTypes...)
		v.str("target_server.os_version", ts.OSVersion, optional, 0, 255)
		v.str("target_server.flavor", ts.Flavor, optional, 0, 255)
		if ts.Disks != nil {
			checkTargetDisks(&v, *ts.Disks)
		}
	}
	return v.err()
}

// progressBody is PUT /v3/tasks/{id}/progress (table 4-153).
type progressBody struct {
	SubtaskName       *string  `json:"subtask_name"`
	Progress          *int32   `json:"progress"`
	Replicatesize     *int64   `json:"replicatesize"`
	Totalsize         *int64   `json:"totalsize"`
	ProcessTrace      *string  `json:"process_trace"`
	MigrateSpeed      *float64 `json:"migrate_speed"`
	CompressRate      *float64 `json:"compress_rate"`
	RemainTime        *int64   `json:"remain_time"`
	TotalCPUUsage     *float64 `json:"total_cpu_usage"`
	AgentCPUUsage     *float64 `json:"agent_cpu_usage"`
	TotalMemUsage     *float64 `json:"total_mem_usage"`
	AgentMemUsage     *float64 `json:"agent_mem_usage"`
	TotalDiskIO       *float64 `json:"total_disk_io"`
	AgentDiskIO       *float64 `json:"agent_disk_io"`
	NeedMigrationTest *bool    `json:"need_migration_test"`
	AgentTime         *string  `json:"agent_time"`
}

func floatBetween(v *checks, field string, x *float64, lo, hi float64) {
	if x != nil && (*x < lo || *x > hi) {
		v.invalid(field, fmt.Sprintf("must be between %g and %g", lo, hi))
	}
}

func (b *progressBody) validate() error {
	if b.Progress != nil && (*b.Progress < 0 || *b.Progress > 100) {
		return smserr.New(smserr.SMS6101, "progress").WithDetail("progress: an integer from 0 to 100")
	}
	// A name outside the SDK's enum is refused before the task is read
	// (SMS.6004, the spec's code for it), whatever the task's state. The
	// spec's DETACH_AGENT_IMAGE is accepted too: the spec spells it so,
	// the SDK DETTACH_AGENT_IMAGE, and an agent written from either sends
	// its own (ParseSubtask stores the SDK's).
	if b.SubtaskName != nil && !sms.ParseSubtask(*b.SubtaskName).Valid() {
		return smserr.New(smserr.SMS6004, "subtask_name").WithDetail(
			fmt.Sprintf("subtask_name: %q is not a sub-task name of the API", *b.SubtaskName))
	}
	var v checks
	v.str("subtask_name", b.SubtaskName, required, 0, 255)
	v.required("progress", b.Progress != nil)
	between(&v, "replicatesize", b.Replicatesize, required, 0, maxInt64)
	between(&v, "totalsize", b.Totalsize, required, 0, maxInt64)
	v.str("process_trace", b.ProcessTrace, required, 0, 2048)
	floatBetween(&v, "migrate_speed", b.MigrateSpeed, 0, 10000)
	floatBetween(&v, "compress_rate", b.CompressRate, 0, 10000)
	between(&v, "remain_time", b.RemainTime, optional, 0, int64(maxInt32))
	floatBetween(&v, "total_cpu_usage", b.TotalCPUUsage, 0, 100)
	floatBetween(&v, "agent_cpu_usage", b.AgentCPUUsage, 0, 100)
	floatBetween(&v, "total_mem_usage", b.TotalMemUsage, 0, 1048576)
	floatBetween(&v, "agent_mem_usage", b.AgentMemUsage, 0, 1048576)
	floatBetween(&v, "total_disk_io", b.TotalDiskIO, 0, 10000)
	floatBetween(&v, "agent_disk_io", b.AgentDiskIO, 0, 10000)
	v.str("agent_time", b.AgentTime, optional, 0, 30)
	return v.err()
}
