package web

import (
	"encoding/json"
	"time"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/store"
)

// currentTask is TaskByServerSources (table 4-23): a source's task as the
// sources list and show answer it.
func currentTask(ts store.TaskSummary) map[string]any {
	out := map[string]any{
		"id": ts.ID, "name": ts.Name, "type": ts.Type, "state": ts.State,
		"estimate_complete_time": ts.EstimateCompleteTime, "start_date": ts.StartDate, "speed_limit": ts.SpeedLimit,
		"migrate_speed": ts.MigrateSpeed, "compress_rate": ts.CompressRate, "start_target_server": ts.StartTargetServer,
		"vm_template_id": ts.VMTemplateID, "region_id": ts.RegionID, "project_name": ts.ProjectName,
		"project_id": ts.ProjectID, "log_collect_status": ts.LogCollectStatus, "exist_server": ts.ExistServer,
		"use_public_ip": ts.UsePublicIP, "remain_seconds": ts.RemainSeconds, "clone_server": ts.CloneServer,
		"subtask_info": ts.SubtaskInfo,
	}
	// The newest agent log: its name (the spec's bucket), when it came and
	// where to download it. log_expire stays out: the link needs the
	// caller's credentials and does not expire (an upload goes when five
	// newer ones came), so no validity in 300–64800 s would be true.
	if ts.LogUploadTime > 0 {
		out["log_bucket"], out["log_upload_time"] = ts.LogBucket, ts.LogUploadTime
		out["log_share_url"] = "/v3/tasks/" + ts.ID + "/agent-log"
	}
	if ts.TargetServer != nil {
		out["target_server"] = map[string]string{"vm_id": ts.TargetServer.VMID, "name": ts.TargetServer.Name}
	}
	return out
}

// sourceListJSON is SourceServersResponseBody (table 4-22) but for checks
// and init_target_server, which list appends from their stored JSON.
type sourceListJSON struct {
	ID                       string          `json:"id"`
	IP                       string          `json:"ip"`
	Name                     string          `json:"name"`
	EnterpriseProjectID      string          `json:"enterprise_project_id"`
	AddDate                  int64           `json:"add_date"`
	OSType                   sms.OSType      `json:"os_type"`
	OSVersion                string          `json:"os_version"`
	OEMSystem                *bool           `json:"oem_system"`
	State                    sms.SourceState `json:"state"`
	Connected                bool            `json:"connected"`
	CPUQuantity              *int32          `json:"cpu_quantity"`
	Memory                   *int64          `json:"memory"`
	CurrentTask              any             `json:"current_task"`
	Replicatesize            int64           `json:"replicatesize"`
	StageActionTime          int64           `json:"stage_action_time"`
	Totalsize                int64           `json:"totalsize"`
	LastVisitTime            int64           `json:"last_visit_time"`
	MigrationCycle           sms.Cycle       `json:"migration_cycle"`
	StateActionTime          int64           `json:"state_action_time"`
	IsConsistencyResultExist bool            `json:"is_consistency_result_exist"`
	HasTc                    *bool           `json:"has_tc"`
	StartType                *string         `json:"start_type"`
}

func rawOr(s, def string) json.RawMessage {
	if s == "" || s == "null" {
		return json.RawMessage(def)
	}
	return json.RawMessage(s)
}

// sourceJSON is ShowServerResponse (table 4-63) plus every registered fact,
// so what an agent registered reads back unchanged.
type sourceJSON struct {
	ID                       string                   `json:"id"`
	IP                       string                   `json:"ip"`
	IPv6                     *string                  `json:"ipv6,omitempty"`
	Name                     string                   `json:"name"`
	Hostname                 string                   `json:"hostname"`
	EnterpriseProjectID      string                   `json:"enterprise_project_id"`
	MigProjectID             string                   `json:"migprojectid"`
	AddDate                  int64                    `json:"add_date"`
	OSType                   sms.OSType               `json:"os_type"`
	OSVersion                string                   `json:"os_version"`
	OEMSystem                *bool                    `json:"oem_system"`
	State                    sms.SourceState          `json:"state"`
	Connected                bool                     `json:"connected"`
	Firmware                 *string                  `json:"firmware"`
	InitTargetServer         json.RawMessage          `json:"init_target_server"`
	CPUQuantity              *int32                   `json:"cpu_quantity"`
	Memory                   *int64                   `json:"memory"`
	CurrentTask              any                      `json:"current_task"`
	Disks                    []store.SourceDisk       `json:"disks"`
	VolumeGroups             []store.VolumeGroup      `json:"volume_groups"`
	BtrfsList                []store.BtrfsFileSystem  `json:"btrfs_list"`
	Networks                 []store.Network          `json:"networks"`
	Checks                   []store.EnvironmentCheck `json:"checks"`
	MigrationCycle           sms.Cycle                `json:"migration_cycle"`
	StateActionTime          int64                    `json:"state_action_time"`
	Replicatesize            int64                    `json:"replicatesize"`
	Totalsize                int64                    `json:"totalsize"`
	LastVisitTime            int64                    `json:"last_visit_time"`
	StageActionTime          int64                    `json:"stage_action_time"`
	AgentVersion             string                   `json:"agent_version"`
	HasTc                    *bool                    `json:"has_tc"`
	StartType                *string                  `json:"start_type"`
	IsConsistencyResultExist bool                     `json:"is_consistency_result_exist"`
	// Registered facts beyond table 4-63.
	VirtualizationType *string  `json:"virtualization_type,omitempty"`
	LinuxBlockCheck    *string  `json:"linux_block_check,omitempty"`
	KernelVersion      *string  `json:"kernel_version,omitempty"`
	HasRsync           *bool    `json:"has_rsync,omitempty"`
	Paravirtualization *bool    `json:"paravirtualization,omitempty"`
	RawDevices         *string  `json:"raw_devices,omitempty"`
	DriverFiles        *bool    `json:"driver_files,omitempty"`
	SystemServices     *bool    `json:"system_services,omitempty"`
	AccountRights      *bool    `json:"account_rights,omitempty"`
	BootLoader         *string  `json:"boot_loader,omitempty"`
	SystemDir          *string  `json:"system_dir,omitempty"`
	IOReadWait         *float64 `json:"io_read_wait,omitempty"`
	Platform           *string  `json:"platform,omitempty"`
	ErrorJSON          string   `json:"error_json,omitempty"`
}

func (h sourceHandlers) toJSON(s *store.Source, now time.Time) sourceJSON {
	nz := func(x []store.EnvironmentCheck) []store.EnvironmentCheck {
		if x == nil {
			return []store.EnvironmentCheck{}
		}
		return x
	}
	out := sourceJSON{
		ID: s.ID, IP: s.IP, IPv6: s.IPv6, Name: s.Name, Hostname: s.Hostname, EnterpriseProjectID: s.EnterpriseProjectID,
		MigProjectID: s.MigProjectID, AddDate: s.AddDate, OSType: s.OSType, OSVersion: s.OSVersion,
		OEMSystem: s.OEMSystem, State: s.State, Connected: s.LastVisitTime >= h.connectedSince(now), Firmware: s.Firmware,
		InitTargetServer: rawOr(s.InitTargetServer, `{"disks":[],"volume_groups":[]}`), CPUQuantity: s.CPUQuantity,
		Memory: s.Memory, Disks: s.Disks, VolumeGroups: s.VolumeGroups, BtrfsList: s.BtrfsList, Networks: s.Networks,
		Checks: nz(s.Checks), MigrationCycle: s.MigrationCycle, StateActionTime: s.StateActionTime,
		Replicatesize: s.Replicatesize, Totalsize: s.Totalsize, LastVisitTime: s.LastVisitTime,
		StageActionTime: s.StageActionTime, AgentVersion: s.AgentVersion, HasTc: s.HasTc, StartType: s.StartType,
		IsConsistencyResultExist: s.IsConsistencyResultExist, VirtualizationType: s.VirtualizationType,
		LinuxBlockCheck: s.LinuxBlockCheck, KernelVersion: s.KernelVersion, HasRsync: s.HasRsync,
		Paravirtualization: s.Paravirtualization, RawDevices: s.RawDevices, DriverFiles: s.DriverFiles,
		SystemServices: s.SystemServices, AccountRights: s.AccountRights, BootLoader: s.BootLoader,
		SystemDir: s.SystemDir, IOReadWait: s.IOReadWait, Platform: s.Platform, ErrorJSON: s.ErrorJSON,
	}
	if out.Disks == nil {
		out.Disks = []store.SourceDisk{}
	}
	if out.VolumeGroups == nil {
		out.VolumeGroups = []store.VolumeGroup{}
	}
	if out.BtrfsList == nil {
		out.BtrfsList = []store.BtrfsFileSystem{}
	}
	if out.Networks == nil {
		out.Networks = []store.Network{}
	}
	return out
}
