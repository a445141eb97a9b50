package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/sms/envcheck"
	"github.com/smsflow/smsflow/internal/sms/layout"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/sms/sourcestate"
	"github.com/smsflow/smsflow/internal/store"
)

// SourceStore is what the source handlers need.
type SourceStore interface {
	RegisterSource(ctx context.Context, t store.Tenant, r store.Registration) (string, bool, error)
	Source(ctx context.Context, t store.Tenant, id string) (*store.Source, error)
	Sources(ctx context.Context, t store.Tenant, f store.SourceFilter, pg store.Page) ([]store.SourceListRow, int64, error)
	UpdateSource(ctx context.Context, t store.Tenant, id string, fn func(tx *gorm.DB, src *store.Source) error) error
	DeleteSources(ctx context.Context, t store.Tenant, ids []string, isBusy func(state string) bool) error
	SourceOverview(ctx context.Context, t store.Tenant) ([]store.SourceStateCount, error)
	TouchSource(ctx context.Context, t store.Tenant, id string, nowMs, minAgeMs int64) error
	SourceExists(ctx context.Context, t store.Tenant, id string) (bool, error)
	SourcesByID(ctx context.Context, t store.Tenant, ids []string) ([]store.SourceListRow, error)
	TaskSummaries(ctx context.Context, t store.Tenant, ids []string) (map[string]store.TaskSummary, error)
}

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
	}
	if ts.TargetServer != nil {
		out["target_server"] = map[string]string{"vm_id": ts.TargetServer.VMID, "name": ts.TargetServer.Name}
	}
	return out
}

// HeaderMachineID lets an agent name its machine explicitly (our agent sends
// /etc/machine-id); without it the identity is derived (see machineKey).
const HeaderMachineID = "X-Smsflow-Machine-Id"

type sourceHandlers struct {
	store SourceStore
	// agentTimeout: a source whose agent has not polled for this long shows
	// connected=false.
	agentTimeout time.Duration
	now          func() time.Time
}

func nowMs(t time.Time) int64 { return t.UnixMilli() }

// machineKey decides which registrations are the same machine, so an agent
// that restarts or is re-installed gets its source back instead of a
// duplicate. In order: an explicit machine id (header or body "machine_id");
// else the OS type, host name (or the registered name when the agent sends
// no host name) and sorted MAC addresses, which survive agent
// re-installs but differ between clones of a VM (new MACs). Without a host
// name and a MAC nothing identifies the machine and each registration is new.
func machineKey(header string, b *registerBody) *string {
	id := strings.TrimSpace(header)
	if id == "" && b.MachineID != nil {
		id = strings.TrimSpace(*b.MachineID)
	}
	var raw string
	if id != "" {
		raw = "machine-id:" + id
	} else {
		var macs []string
		if b.Networks != nil {
			for _, n := range *b.Networks {
				if n.MAC != nil && *n.MAC != "" {
					macs = append(macs, strings.ToLower(*n.MAC))
				}
			}
		}
		// Agents that omit the host name (the spec's own example does) send
		// their name, which is the host name by default.
		host := strings.ToLower(ptr.Deref(b.Hostname))
		if host == "" {
			host = strings.ToLower(ptr.Deref(b.Name))
		}
		if host == "" || len(macs) == 0 {
			return nil
		}
		sort.Strings(macs)
		raw = "facts:" + ptr.Deref(b.OSType) + "|" + host + "|" + strings.Join(macs, ",")
	}
	h := sha256.Sum256([]byte(raw))
	k := hex.EncodeToString(h[:])
	return &k
}

func sourceNotFound(id string) error { return notFound(smserr.SMS7602, id) }

func sourceError(err error, id string) error {
	var miss *store.MissingError
	var busy *store.BusyError
	switch {
	case errors.As(err, &miss):
		e := smserr.New(smserr.SMS7602, miss.IDs...).WithStatus(http.StatusNotFound)
		for _, m := range miss.IDs {
			e = e.WithDetail("no such source server: " + m)
		}
		return e
	case errors.As(err, &busy):
		e := smserr.New(smserr.SMS7601, busy.IDs...)
		for _, b := range busy.IDs {
			e = e.WithDetail("a migration task is running on source " + b + ": stop or delete the task first")
		}
		return e
	case errors.Is(err, store.ErrNotFound):
		return sourceNotFound(id)
	}
	return err
}

// facts turns a validated register body into a source row (without ids).
func (h sourceHandlers) facts(b *registerBody) *store.Source {
	src := &store.Source{
		Name: ptr.Deref(b.Name), Hostname: ptr.Deref(b.Hostname), IP: ptr.Deref(b.IP), IPv6: b.IPv6,
		OSType: ptr.Deref(b.OSType), OSVersion: ptr.Deref(b.OSVersion), VirtualizationType: b.VirtualizationType,
		LinuxBlockCheck: b.LinuxBlockCheck, Firmware: b.Firmware, CPUQuantity: b.CPUQuantity, Memory: b.Memory,
		HasRsync: b.HasRsync, Paravirtualization: b.Paravirtualization, RawDevices: b.RawDevices,
		DriverFiles: b.DriverFiles, SystemServices: b.SystemServices, AccountRights: b.AccountRights,
		BootLoader: b.BootLoader, SystemDir: b.SystemDir, AgentVersion: ptr.Deref(b.AgentVersion),
		KernelVersion: b.KernelVersion, OEMSystem: b.OEMSystem, StartType: b.StartType, IOReadWait: b.IOReadWait,
		HasTc: b.HasTc, Platform: b.Platform, EnterpriseProjectID: "0",
		Disks: []store.SourceDisk{}, VolumeGroups: []store.VolumeGroup{}, BtrfsList: []store.BtrfsFileSystem{},
		Networks: []store.Network{},
	}
	if b.Disks != nil {
		src.Disks = toDisks(*b.Disks)
	}
	if b.VolumeGroups != nil {
		src.VolumeGroups = toVolumeGroups(*b.VolumeGroups)
	}
	if b.BtrfsList != nil {
		src.BtrfsList = toBtrfs(*b.BtrfsList)
	}
	if b.Networks != nil {
		src.Networks = toNetworks(*b.Networks)
	}
	return src
}

// refreshDerived recomputes what follows from the facts: the recommended
// target, the total size and the environment checks.
func refreshDerived(src *store.Source) {
	t := layout.Recommend(src.Disks, src.VolumeGroups)
	b, _ := json.Marshal(t)
	src.InitTargetServer = string(b)
	src.Totalsize = layout.TotalSize(src.Disks)
	src.Checks = envcheck.Run(envcheck.Facts{
		OSType: src.OSType, LinuxBlockCheck: ptr.Deref(src.LinuxBlockCheck), Firmware: ptr.Deref(src.Firmware),
		HasRsync: src.HasRsync, HasTc: src.HasTc, Disks: src.Disks,
	})
}

// register: POST /v3/sources → 200 {"id"}. Registering the same machine
// again refreshes its facts and returns the same id.
func (h sourceHandlers) register(c *gin.Context) {
	var b registerBody
	if err := bindValid(c, &b); err != nil {
		fail(c, err)
		return
	}
	now := h.now()
	src := h.facts(&b)
	src.MachineKey = machineKey(c.GetHeader(HeaderMachineID), &b)
	src.State, src.MigrationCycle = string(sourcestate.Waiting), string(sourcestate.Checking)
	if b.MigrationCycle != nil || b.State != nil {
		cyc, okC := sourcestate.ParseCycle(ptr.Deref(b.MigrationCycle))
		st, okS := sourcestate.ParseState(ptr.Deref(b.State))
		if !okC || !okS {
			fail(c, smserr.New(smserr.SMS7727).WithDetail("state and migration_cycle must be sent together"))
			return
		}
		if err := sourcestate.Check(cyc, st); err != nil {
			fail(c, smserr.New(smserr.SMS7728).WithDetail(err.Error()))
			return
		}
		src.State, src.MigrationCycle = string(st), string(cyc)
	}
	refreshDerived(src)
	if envcheck.Failed(src.Checks) && src.State == string(sourcestate.Waiting) {
		src.State = string(sourcestate.Unavailable)
	}
	ms := nowMs(now)
	src.AddDate, src.StateActionTime, src.StageActionTime, src.LastVisitTime = ms, ms, ms, ms
	src.UpdatedAt = now.UTC()
	t := mustPrincipal(c).Tenant()
	id, created, err := h.store.RegisterSource(c.Request.Context(), t, store.Registration{
		Source: src, BodyID: ptr.Deref(b.ID), MigProjectID: ptr.Deref(b.MigProjectID), NewID: uuid.NewString,
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			fail(c, notFound(smserr.SMS7301, ptr.Deref(b.MigProjectID)))
			return
		}
		fail(c, err)
		return
	}
	logFor(c).InfoContext(c.Request.Context(), "source registered", "source", id, "created", created, "hostname", src.Hostname)
	ok(c, gin.H{"id": id})
}

// sourceListJSON is SourceServersResponseBody (table 4-22) but for checks
// and init_target_server, which list appends from their stored JSON.
type sourceListJSON struct {
	ID                       string  `json:"id"`
	IP                       string  `json:"ip"`
	Name                     string  `json:"name"`
	EnterpriseProjectID      string  `json:"enterprise_project_id"`
	AddDate                  int64   `json:"add_date"`
	OSType                   string  `json:"os_type"`
	OSVersion                string  `json:"os_version"`
	OEMSystem                *bool   `json:"oem_system"`
	State                    string  `json:"state"`
	Connected                bool    `json:"connected"`
	CPUQuantity              *int32  `json:"cpu_quantity"`
	Memory                   *int64  `json:"memory"`
	CurrentTask              any     `json:"current_task"`
	Replicatesize            int64   `json:"replicatesize"`
	StageActionTime          int64   `json:"stage_action_time"`
	Totalsize                int64   `json:"totalsize"`
	LastVisitTime            int64   `json:"last_visit_time"`
	MigrationCycle           string  `json:"migration_cycle"`
	StateActionTime          int64   `json:"state_action_time"`
	IsConsistencyResultExist bool    `json:"is_consistency_result_exist"`
	HasTc                    *bool   `json:"has_tc"`
	StartType                *string `json:"start_type"`
}

func rawOr(s, def string) json.RawMessage {
	if s == "" || s == "null" {
		return json.RawMessage(def)
	}
	return json.RawMessage(s)
}

func (h sourceHandlers) connectedSince(now time.Time) int64 {
	return nowMs(now.Add(-h.agentTimeout))
}

// list: GET /v3/sources with the filters of table 4-19.
func (h sourceHandlers) list(c *gin.Context) {
	var v checks
	f := store.SourceFilter{
		ID: queryString(c, &v, "id", 255), Name: queryString(c, &v, "name", 255), IP: queryString(c, &v, "ip", 255),
		MigProjectID: queryString(c, &v, "migproject", 255), EnterpriseProjectID: queryString(c, &v, "enterprise_project_id", 255),
	}
	if s := c.Query("state"); s != "" {
		if st, ok := sourcestate.ParseState(s); ok && st != sourcestate.Unconnected {
			f.State = string(st)
		} else {
			v.add("state", "must be one of "+strings.Join(stateValues, ", "), false)
		}
	}
	if s := c.Query("migration_cycle"); s != "" {
		if cyc, ok := sourcestate.ParseCycle(s); ok {
			f.MigrationCycle = string(cyc)
		} else {
			v.add("migration_cycle", "must be one of "+strings.Join(cycleValues, ", "), false)
		}
	}
	f.Connected = queryBool(c, &v, "connected")
	f.IsConsistencyResultExist = queryBool(c, &v, "is_consistency_result_exist")
	limit := queryInt(c, &v, "limit", 200, 0, 200)
	if limit == 0 {
		limit = 200 // the spec: 0 means the default, 200
	}
	offset := queryInt(c, &v, "offset", 0, 0, 65535)
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	now := h.now()
	f.ConnectedSince = h.connectedSince(now)
	rows, total, err := h.store.Sources(c.Request.Context(), mustPrincipal(c).Tenant(), f, store.Page{Limit: limit, Offset: offset})
	if err != nil {
		fail(c, err)
		return
	}
	// The page is written by hand: checks and init_target_server are stored
	// as JSON text made by this server, and splicing them in avoids the
	// re-validation encoding/json does on every json.RawMessage (half the
	// time of a 200-row page).
	var taskIDs []string
	for _, r := range rows {
		if r.CurrentTaskID != nil {
			taskIDs = append(taskIDs, *r.CurrentTaskID)
		}
	}
	tasks, err := h.store.TaskSummaries(c.Request.Context(), mustPrincipal(c).Tenant(), taskIDs)
	if err != nil {
		fail(c, err)
		return
	}
	buf := make([]byte, 0, 64+len(rows)*3072)
	buf = append(buf, `{"count":`...)
	buf = strconv.AppendInt(buf, total, 10)
	buf = append(buf, `,"source_servers":[`...)
	for i, r := range rows {
		if i > 0 {
			buf = append(buf, ',')
		}
		var cur any
		if r.CurrentTaskID != nil {
			if ts, found := tasks[*r.CurrentTaskID]; found {
				cur = currentTask(ts)
			}
		}
		row, err := json.Marshal(sourceListJSON{
			CurrentTask: cur, ID: r.ID, IP: r.IP, Name: r.Name, EnterpriseProjectID: r.EnterpriseProjectID, AddDate: r.AddDate,
			OSType: r.OSType, OSVersion: r.OSVersion, OEMSystem: r.OEMSystem, State: r.State,
			Connected: r.LastVisitTime >= f.ConnectedSince, CPUQuantity: r.CPUQuantity, Memory: r.Memory,
			Replicatesize: r.Replicatesize, StageActionTime: r.StageActionTime, Totalsize: r.Totalsize,
			LastVisitTime: r.LastVisitTime, MigrationCycle: r.MigrationCycle, StateActionTime: r.StateActionTime,
			IsConsistencyResultExist: r.IsConsistencyResultExist, HasTc: r.HasTc, StartType: r.StartType,
		})
		if err != nil {
			fail(c, err)
			return
		}
		buf = append(buf, row[:len(row)-1]...) // drop the closing brace
		buf = append(buf, `,"checks":`...)
		buf = append(buf, rawOr(r.Checks, "[]")...)
		buf = append(buf, `,"init_target_server":`...)
		buf = append(buf, rawOr(r.InitTargetServer, `{"disks":[],"volume_groups":[]}`)...)
		buf = append(buf, '}')
	}
	buf = append(buf, "]}"...)
	c.Data(http.StatusOK, "application/json; charset=utf-8", buf)
}

func queryBool(c *gin.Context, v *checks, name string) *bool {
	raw, present := c.GetQuery(name)
	if !present || raw == "" {
		return nil
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		v.add(name, "must be true or false", false)
		return nil
	}
	return &b
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
	OSType                   string                   `json:"os_type"`
	OSVersion                string                   `json:"os_version"`
	OEMSystem                *bool                    `json:"oem_system"`
	State                    string                   `json:"state"`
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
	MigrationCycle           string                   `json:"migration_cycle"`
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

// show: GET /v3/sources/{id}.
func (h sourceHandlers) show(c *gin.Context) {
	id, err := pathID(c, "source_id")
	if err != nil {
		fail(c, err)
		return
	}
	t := mustPrincipal(c).Tenant()
	src, err := h.store.Source(c.Request.Context(), t, id)
	if err != nil {
		fail(c, sourceError(err, id))
		return
	}
	out := h.toJSON(src, h.now())
	if src.CurrentTaskID != nil {
		tasks, err := h.store.TaskSummaries(c.Request.Context(), t, []string{*src.CurrentTaskID})
		if err != nil {
			fail(c, err)
			return
		}
		if ts, found := tasks[*src.CurrentTaskID]; found {
			out.CurrentTask = currentTask(ts)
		}
	}
	ok(c, out)
}

// putVolumeBody is the update body (table 4-42). The spec names the volume group list
// "volume_group_s", the SDK "volume_groups": both are read. relation_name
// on a disk is our extension (the target disk a source disk maps to).
type putVolumeBody struct {
	ID            *string `json:"id"`
	NeedMigration *bool   `json:"need_migration"`
	AdjustSize    *int64  `json:"adjust_size"`
}

type putDiskBody struct {
	ID              *string          `json:"id"`
	NeedMigration   *bool            `json:"need_migration"`
	AdjustSize      *int64           `json:"adjust_size"`
	RelationName    *string          `json:"relation_name"`
	PhysicalVolumes *[]putVolumeBody `json:"physical_volumes"`
}

type putVolumeGroupBody struct {
	ID             *string          `json:"id"`
	NeedMigration  *bool            `json:"need_migration"`
	AdjustSize     *int64           `json:"adjust_size"`
	LogicalVolumes *[]putVolumeBody `json:"logical_volumes"`
}

type updateSourceBody struct {
	Name             *string               `json:"name"`
	MigProjectID     *string               `json:"migprojectid"`
	Disks            *[]putDiskBody        `json:"disks"`
	VolumeGroups     *[]putVolumeGroupBody `json:"volume_groups"`
	VolumeGroupsSpec *[]putVolumeGroupBody `json:"volume_group_s"`
}

func (b *updateSourceBody) validate() error {
	var v checks
	v.str("name", b.Name, false, 0, 255)
	v.str("migprojectid", b.MigProjectID, false, 0, 255)
	vol := func(path string, x putVolumeBody, idRequired bool) {
		v.str(path+"id", x.ID, idRequired, 0, 255)
		between(&v, path+"adjust_size", x.AdjustSize, false, 0, layout.MaxDiskSize)
	}
	if b.Disks != nil {
		for i, d := range *b.Disks {
			f := fmt.Sprintf("disks[%d].", i)
			v.str(f+"id", d.ID, true, 0, 255)
			between(&v, f+"adjust_size", d.AdjustSize, false, 0, layout.MaxDiskSize)
			v.str(f+"relation_name", d.RelationName, false, 0, 255)
			if d.PhysicalVolumes != nil {
				for j, p := range *d.PhysicalVolumes {
					vol(fmt.Sprintf("%sphysical_volumes[%d].", f, j), p, false)
				}
			}
		}
	}
	for _, vgs := range []*[]putVolumeGroupBody{b.VolumeGroups, b.VolumeGroupsSpec} {
		if vgs == nil {
			continue
		}
		for i, g := range *vgs {
			f := fmt.Sprintf("volume_groups[%d].", i)
			v.str(f+"id", g.ID, true, 0, 255)
			between(&v, f+"adjust_size", g.AdjustSize, false, 0, layout.MaxDiskSize)
			if g.LogicalVolumes != nil {
				for j, l := range *g.LogicalVolumes {
					vol(fmt.Sprintf("%slogical_volumes[%d].", f, j), l, true)
				}
			}
		}
	}
	return v.err()
}

// apply writes the operator's choices onto the stored facts; an id that
// names nothing of this source is a 400 naming it.
func (b *updateSourceBody) apply(src *store.Source) error {
	if b.Name != nil {
		src.Name = *b.Name
	}
	disks := map[string]*store.SourceDisk{}
	pvs := map[string]*store.PhysicalVolume{}
	for i := range src.Disks {
		d := &src.Disks[i]
		disks[ptr.Deref(d.ID)] = d
		for j := range d.PhysicalVolumes {
			pvs[ptr.Deref(d.PhysicalVolumes[j].ID)] = &d.PhysicalVolumes[j]
		}
	}
	var unknown []string
	if b.Disks != nil {
		for _, pd := range *b.Disks {
			d := disks[ptr.Deref(pd.ID)]
			if d == nil {
				unknown = append(unknown, "disks.id="+ptr.Deref(pd.ID))
				continue
			}
			d.NeedMigration = firstPtr(pd.NeedMigration, d.NeedMigration)
			d.AdjustSize = firstPtr(pd.AdjustSize, d.AdjustSize)
			d.RelationName = firstPtr(pd.RelationName, d.RelationName)
			if pd.PhysicalVolumes != nil {
				for _, pv := range *pd.PhysicalVolumes {
					p := pvs[ptr.Deref(pv.ID)]
					if p == nil {
						unknown = append(unknown, "physical_volumes.id="+ptr.Deref(pv.ID))
						continue
					}
					p.NeedMigration = firstPtr(pv.NeedMigration, p.NeedMigration)
					p.AdjustSize = firstPtr(pv.AdjustSize, p.AdjustSize)
				}
			}
		}
	}
	vgs := map[string]*store.VolumeGroup{}
	lvs := map[string]*store.LogicalVolume{}
	for i := range src.VolumeGroups {
		g := &src.VolumeGroups[i]
		vgs[ptr.Deref(g.ID)] = g
		for j := range g.LogicalVolumes {
			lvs[ptr.Deref(g.LogicalVolumes[j].ID)] = &g.LogicalVolumes[j]
		}
	}
	for _, list := range []*[]putVolumeGroupBody{b.VolumeGroups, b.VolumeGroupsSpec} {
		if list == nil {
			continue
		}
		for _, pg := range *list {
			g := vgs[ptr.Deref(pg.ID)]
			if g == nil {
				unknown = append(unknown, "volume_groups.id="+ptr.Deref(pg.ID))
				continue
			}
			g.NeedMigration = firstPtr(pg.NeedMigration, g.NeedMigration)
			g.AdjustSize = firstPtr(pg.AdjustSize, g.AdjustSize)
			if pg.LogicalVolumes != nil {
				for _, pl := range *pg.LogicalVolumes {
					l := lvs[ptr.Deref(pl.ID)]
					if l == nil {
						unknown = append(unknown, "logical_volumes.id="+ptr.Deref(pl.ID))
						continue
					}
					l.NeedMigration = firstPtr(pl.NeedMigration, l.NeedMigration)
					l.AdjustSize = firstPtr(pl.AdjustSize, l.AdjustSize)
				}
			}
		}
	}
	if len(unknown) > 0 {
		e := smserr.New(smserr.SMS9001, unknown...)
		for _, u := range unknown {
			e = e.WithDetail(u + ": no such item on this source (ids are in GET /v3/sources/{id})")
		}
		return e
	}
	return nil
}

func firstPtr[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// update: PUT /v3/sources/{id}.
func (h sourceHandlers) update(c *gin.Context) {
	id, err := pathID(c, "source_id")
	if err != nil {
		fail(c, err)
		return
	}
	var b updateSourceBody
	if err := bindValid(c, &b); err != nil {
		fail(c, err)
		return
	}
	t := mustPrincipal(c).Tenant()
	err = h.store.UpdateSource(c.Request.Context(), t, id, func(tx *gorm.DB, src *store.Source) error {
		if b.MigProjectID != nil && *b.MigProjectID != src.MigProjectID {
			exists, err := store.MigProjectExists(tx, t, *b.MigProjectID)
			if err != nil {
				return err
			}
			if !exists {
				return notFound(smserr.SMS7301, *b.MigProjectID)
			}
			src.MigProjectID = *b.MigProjectID
		}
		if err := b.apply(src); err != nil {
			return err
		}
		refreshDerived(src)
		return nil
	})
	if err != nil {
		fail(c, sourceError(err, id))
		return
	}
	okEmpty(c)
}

// diskInfoBody is the body of PUT /v3/sources/{id}/diskinfo, which replaces the disks, volume groups
// and btrfs file systems (§4.1.10). The SDK names the volume groups
// "volumegroups"; "volume_groups" is read too.
type diskInfoBody struct {
	Disks            *[]serverDiskBody  `json:"disks"`
	VolumeGroups     *[]volumeGroupBody `json:"volumegroups"`
	VolumeGroupsSnak *[]volumeGroupBody `json:"volume_groups"`
	BtrfsList        *[]btrfsBody       `json:"btrfs_list"`
}

func (h sourceHandlers) diskInfo(c *gin.Context) {
	id, err := pathID(c, "source_id")
	if err != nil {
		fail(c, err)
		return
	}
	var b diskInfoBody
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	vgs := firstPtr(b.VolumeGroups, b.VolumeGroupsSnak)
	var v checks
	if b.Disks != nil {
		checkDisks(&v, "disks", *b.Disks, false)
	}
	if vgs != nil {
		checkVolumeGroups(&v, "volumegroups", *vgs)
	}
	if b.BtrfsList != nil {
		checkBtrfs(&v, *b.BtrfsList)
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	err = h.store.UpdateSource(c.Request.Context(), mustPrincipal(c).Tenant(), id, func(_ *gorm.DB, src *store.Source) error {
		prevDisks, prevVGs := src.Disks, src.VolumeGroups
		src.Disks, src.VolumeGroups, src.BtrfsList = []store.SourceDisk{}, []store.VolumeGroup{}, []store.BtrfsFileSystem{}
		if b.Disks != nil {
			src.Disks = toDisks(*b.Disks)
		}
		if vgs != nil {
			src.VolumeGroups = toVolumeGroups(*vgs)
		}
		if b.BtrfsList != nil {
			src.BtrfsList = toBtrfs(*b.BtrfsList)
		}
		store.AssignFactIDs(src.Disks, src.VolumeGroups, prevDisks, prevVGs, uuid.NewString)
		refreshDerived(src)
		return nil
	})
	if err != nil {
		fail(c, sourceError(err, id))
		return
	}
	okEmpty(c)
}

// changeState: PUT /v3/sources/{id}/changestate (§4.1.6). The pair must be
// allowed by the SMS.7728 matrix; each change stamps its action time.
func (h sourceHandlers) changeState(c *gin.Context) {
	id, err := pathID(c, "source_id")
	if err != nil {
		fail(c, err)
		return
	}
	var b struct {
		CopyState      *string `json:"copystate"`
		MigrationCycle *string `json:"migrationcycle"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	if b.CopyState == nil || b.MigrationCycle == nil {
		fail(c, smserr.New(smserr.SMS7726))
		return
	}
	if *b.CopyState == "" || *b.MigrationCycle == "" {
		fail(c, smserr.New(smserr.SMS7727))
		return
	}
	st, okS := sourcestate.ParseState(*b.CopyState)
	cyc, okC := sourcestate.ParseCycle(*b.MigrationCycle)
	var v checks
	if !okS {
		v.add("copystate", "unknown state "+truncate(*b.CopyState, 32), false)
	}
	if !okC {
		v.add("migrationcycle", "unknown migration cycle "+truncate(*b.MigrationCycle, 32), false)
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	if err := sourcestate.Check(cyc, st); err != nil {
		fail(c, smserr.New(smserr.SMS7728).WithDetail(err.Error()))
		return
	}
	now := nowMs(h.now())
	err = h.store.UpdateSource(c.Request.Context(), mustPrincipal(c).Tenant(), id, func(_ *gorm.DB, src *store.Source) error {
		if src.State != string(st) {
			src.State, src.StateActionTime = string(st), now
		}
		if src.MigrationCycle != string(cyc) {
			src.MigrationCycle, src.StageActionTime = string(cyc), now
		}
		return nil
	})
	if err != nil {
		fail(c, sourceError(err, id))
		return
	}
	okEmpty(c)
}

func busy(state string) bool { return sourcestate.Busy(sourcestate.State(state)) }

// delete: DELETE /v3/sources/{id}.
func (h sourceHandlers) delete(c *gin.Context) {
	id, err := pathID(c, "source_id")
	if err != nil {
		fail(c, err)
		return
	}
	if err := h.store.DeleteSources(c.Request.Context(), mustPrincipal(c).Tenant(), []string{id}, busy); err != nil {
		fail(c, sourceError(err, id))
		return
	}
	okEmpty(c)
}

// batchDelete: POST /v3/sources/delete {"ids"}; all or nothing.
func (h sourceHandlers) batchDelete(c *gin.Context) {
	ids, err := bindIDs(c)
	if err != nil {
		fail(c, err)
		return
	}
	if err := h.store.DeleteSources(c.Request.Context(), mustPrincipal(c).Tenant(), ids, busy); err != nil {
		fail(c, sourceError(err, ""))
		return
	}
	okEmpty(c)
}

// overview: GET /v3/sources/overview — sources per state; those without a
// task count as "unconfigured".
func (h sourceHandlers) overview(c *gin.Context) {
	rows, err := h.store.SourceOverview(c.Request.Context(), mustPrincipal(c).Tenant())
	if err != nil {
		fail(c, err)
		return
	}
	out := map[string]int64{"unconfigured": 0, "skipping": 0}
	for _, s := range sourcestate.States {
		out[string(s)] = 0
	}
	for _, r := range rows {
		if !r.Configured {
			out["unconfigured"] += r.N
			continue
		}
		out[r.State] += r.N
	}
	ok(c, out)
}

// errors: GET /v3/errors — sources whose migration failed, with error_json.
func (h sourceHandlers) errors(c *gin.Context) {
	var v checks
	f := store.SourceFilter{ErrorsOnly: true,
		MigProjectID:        queryString(c, &v, "migproject", 255),
		EnterpriseProjectID: queryString(c, &v, "enterprise_project_id", 255)}
	limit := queryInt(c, &v, "limit", 50, 0, 100)
	offset := queryInt(c, &v, "offset", 0, 0, 65535)
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	rows, total, err := h.store.Sources(c.Request.Context(), mustPrincipal(c).Tenant(), f, store.Page{Limit: limit, Offset: offset})
	if err != nil {
		fail(c, err)
		return
	}
	type migrationError struct {
		ErrorJSON string  `json:"error_json"`
		HostName  *string `json:"host_name"`
		Name      string  `json:"name"`
		SourceID  string  `json:"source_id"`
		SourceIP  string  `json:"source_ip"`
		TargetIP  *string `json:"target_ip"`
	}
	out := make([]migrationError, len(rows))
	for i, r := range rows {
		host := r.Hostname
		out[i] = migrationError{ErrorJSON: r.ErrorJSON, HostName: &host, Name: r.Name, SourceID: r.ID, SourceIP: r.IP}
	}
	ok(c, gin.H{"count": total, "migration_errors": out})
}
