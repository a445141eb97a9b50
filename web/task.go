package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/layout"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/workflows"
)

// TaskStore is what the task handlers need of the database.
type TaskStore interface {
	CreateTask(ctx context.Context, t store.Tenant, task *store.Task) error
	Task(ctx context.Context, t store.Tenant, id string) (*store.Task, error)
	Tasks(ctx context.Context, t store.Tenant, f store.TaskFilter, pg store.Page) ([]store.Task, int64, error)
	UpdateTask(ctx context.Context, t store.Tenant, id string, fn func(task *store.Task) error) error
	UpdateTaskProgress(ctx context.Context, t store.Tenant, id string, fn func(task *store.Task) error) error
	SetConsistencyResults(ctx context.Context, t store.Tenant, taskID string, results []store.ConsistencyResult) error
	DeleteTask(ctx context.Context, t store.Tenant, id string) error
	TaskSummaries(ctx context.Context, t store.Tenant, ids []string) (map[string]store.TaskSummary, error)
	TargetVMInUse(ctx context.Context, t store.Tenant, vmID, exceptTask string) (bool, error)
	SaveAgentLog(ctx context.Context, t store.Tenant, taskID, bucket string, text []byte) (*store.AgentLog, error)
	LatestAgentLog(ctx context.Context, t store.Tenant, taskID string) (*store.AgentLog, error)
	// SpeedSamples feeds the console's speed chart.
	SpeedSamples(ctx context.Context, t store.Tenant, taskID string, limit int) ([]store.SpeedSample, error)
}

// TaskEngine runs tasks as workflows (engine.Engine).
type TaskEngine interface {
	Start(ctx context.Context, in workflows.Input) error
	Action(ctx context.Context, taskID string, req workflows.ActionRequest) error
	Delete(ctx context.Context, taskID string) error
	Progress(ctx context.Context, taskID string, p workflows.Progress) error
	CommandResult(ctx context.Context, taskID string, r workflows.CommandResult) error
	SpeedRules(ctx context.Context, taskID string, u workflows.SpeedUpdate) error
	// Target hands PUT /v3/tasks/{id}'s target changes to the running
	// workflow, whose validator may refuse them (SMS.7706).
	Target(ctx context.Context, taskID string, u workflows.TargetUpdate) error
	RunURL(taskID string) string
}

// TaskOptions tune how tasks run.
type TaskOptions struct {
	TimeZone         string
	SyncInterval     time.Duration
	AgentStepTimeout time.Duration
}

type taskHandlers struct {
	store        Store
	engine       TaskEngine
	targets      provider.Binder
	log          *slog.Logger
	opts         TaskOptions
	agentTimeout time.Duration
	now          func() time.Time
	throttle     *progressThrottle
}

func taskNotFound(id string) error { return notFound(smserr.SMS7703, id) }

func taskError(err error, id string) error {
	var busy *store.SourceBusyError
	switch {
	case errors.As(err, &busy):
		return smserr.New(smserr.SMS6005, "source_server.id").
			WithDetail("the source already has task " + busy.TaskID + ": delete it before creating another")
	case errors.Is(err, store.ErrNotFound):
		return taskNotFound(id)
	}
	return err
}

// create: POST /v3/tasks → 200 {"id"}. The task and its workflow start
// together; if the workflow cannot start, the task is not kept.
func (h taskHandlers) create(c *gin.Context) {
	var b createTaskBody
	if err := bindValid(c, &b); err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	t := mustPrincipal(c).Tenant()
	// The run reads its speed windows in an IANA zone named now: never
	// "Local", which each worker would read as its own.
	zone, err := wave.ResolveZone(h.opts.TimeZone)
	if err != nil {
		fail(c, wave.ErrTimeZone.New(h.opts.TimeZone).WithDetail(err.Error()))
		return
	}
	task, src, err := h.buildTask(ctx, t, &b)
	if err != nil {
		fail(c, err)
		return
	}
	if err := h.store.CreateTask(ctx, t, task); err != nil {
		fail(c, taskError(err, ""))
		return
	}
	if err := h.engine.Start(ctx, h.input(task, t, zone)); err != nil {
		// No workflow, no task: nothing is left half made.
		if derr := h.store.DeleteTask(context.WithoutCancel(ctx), t, task.ID); derr != nil {
			logFor(c).ErrorContext(ctx, "cannot remove a task whose workflow did not start", "task", task.ID, "err", derr)
		}
		fail(c, fmt.Errorf("start the task's workflow: %w", err))
		return
	}
	logFor(c).InfoContext(ctx, "task created", "task", task.ID, "source", src.ID, "type", task.Type)
	ok(c, gin.H{"id": task.ID})
}

// checkBind refuses an existing server the tenant may not bind: one another
// task of the tenant targets (SMS.7605), one that does not exist or
// belongs to another domain (answered alike, SMS.0412 404: ids of other
// tenants' targets do not leak). taskID is the task to bind ("" on create).
func (h taskHandlers) checkBind(ctx context.Context, t store.Tenant, vmID, taskID string) error {
	used, err := h.store.TargetVMInUse(ctx, t, vmID, taskID)
	if err != nil {
		return err
	}
	if used {
		return smserr.New(smserr.SMS7605, "target_server.vm_id")
	}
	if h.targets == nil {
		return notFound(smserr.SMS0412, vmID)
	}
	err = h.targets.CheckBind(ctx, t.DomainID, vmID, taskID)
	switch {
	case errors.Is(err, provider.ErrNotFound):
		return notFound(smserr.SMS0412, vmID)
	case errors.Is(err, provider.ErrInUse):
		return smserr.New(smserr.SMS7605, "target_server.vm_id")
	case err != nil:
		return fmt.Errorf("check the existing server: %w", err)
	}
	return nil
}

// buildTask checks a create body against the source, its migration
// project and the template, and makes the task row (not stored): the one
// path POST /v3/tasks and a wave's member tasks share.
func (h taskHandlers) buildTask(ctx context.Context, t store.Tenant, b *createTaskBody) (*store.Task, *store.Source, error) {
	src, err := h.store.Source(ctx, t, *b.SourceServer.ID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, notFound(smserr.SMS7602, *b.SourceServer.ID)
		}
		return nil, nil, err
	}
	osType := src.OSType
	if b.OSType != nil {
		if sms.OSType(*b.OSType) != src.OSType {
			return nil, nil, smserr.New(smserr.SMS6610, "os_type").WithDetail("os_type " + *b.OSType + " but the source runs " + string(src.OSType))
		}
		osType = sms.OSType(*b.OSType)
	}
	if osType == sms.Windows && sms.TaskType(*b.Type) == sms.MigrateFile {
		return nil, nil, smserr.New(smserr.SMS7712, "type").WithDetail("file-level migration is for Linux sources")
	}
	if src.State == sms.SourceUnavailable {
		return nil, nil, smserr.New(smserr.SMS6005, "source_server.id").WithDetail("the source failed its environment checks; see its checks")
	}
	mp, err := h.store.MigProject(ctx, t, src.MigProjectID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	task := h.newTask(b, src, mp, osType)
	if err := checkRoute(task.MigrationIP, task.UseIPv6); err != nil {
		return nil, nil, err
	}
	if id := ptr.Deref(b.CloneVMTemplateID); id != "" {
		// The template clone tests use when they name none: checked like
		// vm_template_id.
		if _, err := h.store.Template(ctx, t, id); err != nil {
			return nil, nil, templateError(err, id)
		}
	}
	if b.VMTemplateID != nil && *b.VMTemplateID != "" {
		tpl, err := h.store.Template(ctx, t, *b.VMTemplateID)
		if err != nil {
			return nil, nil, templateError(err, *b.VMTemplateID)
		}
		if tpl.Region != "" && mp != nil && mp.Region != "" && tpl.Region != mp.Region {
			return nil, nil, smserr.New(smserr.SMS7321, "vm_template_id").WithDetail("template region " + tpl.Region + ", project region " + mp.Region)
		}
		// The template names the target unless the request does (newTask
		// already filled in "<source>-target" as the last resort).
		if ptr.Deref(b.TargetServer.Name) == "" && tpl.TargetServerName != "" {
			task.TargetServer.Name = tpl.TargetServerName
		}
		task.TargetServer.Flavor = tpl.Flavor
	}
	if task.ExistServer && task.TargetServer.VMID != "" {
		if err := h.checkBind(ctx, t, task.TargetServer.VMID, ""); err != nil {
			return nil, nil, err
		}
	}
	return task, src, nil
}

// newTask applies the request over the migration project's defaults.
func (h taskHandlers) newTask(b *createTaskBody, src *store.Source, mp *store.MigProject, osType sms.OSType) *store.Task {
	now := h.now().UnixMilli()
	task := &store.Task{
		ID: uuid.NewString(), SourceID: src.ID, Name: *b.Name, Type: sms.TaskType(*b.Type), OSType: osType, State: sms.TaskReady,
		// auto_start has no default in the spec: absent, the task starts at
		// once, as the hosted service's console does. The target is
		// verified unless the request says not to (README, Tasks).
		Priority: 1, StartTargetServer: true, UsePublicIP: true, AutoStart: true, IsNeedConsistencyCheck: true,
		RegionName: *b.RegionName, RegionID: *b.RegionID, ProjectName: *b.ProjectName, ProjectID: *b.ProjectID,
		EnterpriseProjectID: src.EnterpriseProjectID, CreateDate: now, LogCollectStatus: sms.LogInit, UpdatedAt: h.now().UTC(),
	}
	if mp != nil {
		task.StartTargetServer, task.UsePublicIP, task.ExistServer = mp.StartTargetServer, mp.UsePublicIP, mp.ExistServer
		task.Syncing, task.StartNetworkCheck, task.SpeedLimit = mp.Syncing, mp.StartNetworkCheck, mp.SpeedLimit
	}
	set(&task.StartTargetServer, b.StartTargetServer)
	set(&task.AutoStart, b.AutoStart)
	set(&task.UsePublicIP, b.UsePublicIP)
	set(&task.UseIPv6, b.UseIPv6)
	set(&task.Syncing, b.Syncing)
	set(&task.ExistServer, b.ExistServer)
	set(&task.StartNetworkCheck, b.StartNetworkCheck)
	set(&task.SpeedLimit, b.SpeedLimit)
	set(&task.OverSpeedThreshold, b.OverSpeedThreshold)
	set(&task.IsNeedConsistencyCheck, b.IsNeedConsistencyCheck)
	set(&task.NeedMigrationTest, b.NeedMigrationTest)
	set(&task.Priority, b.Priority)
	set(&task.MigrationIP, b.MigrationIP)
	set(&task.VMTemplateID, b.VMTemplateID)
	set(&task.CloneVMTemplateID, b.CloneVMTemplateID)

	ts := &store.TargetServer{OSType: osType, OSVersion: src.OSVersion, SystemDir: ptr.Deref(src.SystemDir),
		Disks: []store.TargetDisk{}, VolumeGroups: []store.VolumeGroup{}, BtrfsList: []string{}}
	tb := b.TargetServer
	ts.VMID, ts.Name = ptr.Deref(tb.VMID), ptr.Deref(tb.Name)
	if ts.Name == "" {
		ts.Name = src.Name + "-target"
	}
	if tb.Disks != nil && len(*tb.Disks) > 0 {
		ts.Disks = toTargetDisks(*tb.Disks)
	} else {
		// No disks given: the recommended layout of the source.
		rec := layout.Recommend(src.Disks, src.VolumeGroups)
		for i, d := range rec.Disks {
			id := int64(i + 1)
			name, size, used, use := d.Name, d.Size, d.UsedSize, d.DeviceUse
			td := store.TargetDisk{ID: &id, Name: &name, Size: &size, UsedSize: &used, DeviceUse: &use,
				PhysicalVolumes: []store.TargetPhysicalVolume{}}
			for j, p := range d.PhysicalVolumes {
				pid := int64(j + 1)
				pv := p
				td.PhysicalVolumes = append(td.PhysicalVolumes, store.TargetPhysicalVolume{ID: &pid, Name: &pv.Name,
					Size: &pv.Size, UsedSize: &pv.UsedSize, FileSystem: &pv.FileSystem, MountPoint: &pv.MountPoint,
					Index: &pv.Index, UUID: &pv.UUID, DeviceUse: &pv.DeviceUse})
			}
			ts.Disks = append(ts.Disks, td)
		}
		ts.VolumeGroups = rec.VolumeGroups
	}
	if tb.VolumeGroups != nil {
		ts.VolumeGroups = toVolumeGroups(*tb.VolumeGroups)
	}
	if tb.BtrfsList != nil {
		for _, fs := range toBtrfs(*tb.BtrfsList) {
			ts.BtrfsList = append(ts.BtrfsList, ptr.Deref(fs.Name))
		}
	}
	task.TargetServer = ts
	for i, name := range sms.Subtasks(task.Type, task.OSType) {
		task.SubTasks = append(task.SubTasks, store.SubTask{ID: int64(i + 1), Name: name})
	}
	return task
}

// input is the task's MigrationWorkflow input, built the one way a wave
// member's is (activities.TaskSpecOf, then workflows.TaskInput): a task
// setting added there reaches both. zone is the resolved IANA zone.
func (h taskHandlers) input(task *store.Task, t store.Tenant, zone string) workflows.Input {
	return workflows.TaskInput(activities.TaskSpecOf(task, t.DomainID, activities.MemberOptions{
		TimeZone: zone, SyncInterval: h.opts.SyncInterval, AgentStepTimeout: h.opts.AgentStepTimeout}))
}

// list: GET /v3/tasks.
func (h taskHandlers) list(c *gin.Context) {
	var v checks
	f := store.TaskFilter{State: sms.FilterState(queryString(c, &v, "state", 255)), Name: queryString(c, &v, "name", 255),
		ID: queryString(c, &v, "id", 255), SourceID: queryString(c, &v, "source_server_id", 255),
		EnterpriseProjectID: queryString(c, &v, "enterprise_project_id", 255)}
	pg := v.page(c, 100, 200)
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	t := mustPrincipal(c).Tenant()
	rows, total, err := h.store.Tasks(ctx, t, f, pg)
	if err != nil {
		fail(c, err)
		return
	}
	srcIDs := make([]string, len(rows))
	for i, r := range rows {
		srcIDs[i] = r.SourceID
	}
	sources, err := h.sourceBriefs(ctx, t, srcIDs)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]gin.H, len(rows))
	for i := range rows {
		out[i] = h.toJSON(&rows[i], sources[rows[i].SourceID], false)
	}
	ok(c, gin.H{"count": total, "tasks": out})
}

type sourceBrief struct {
	ID, IP, Name, OSVersion string
	OSType                  sms.OSType
	State                   sms.SourceState
	MigrationCycle          sms.Cycle
	OEMSystem               *bool
	LastVisitTime           int64
}

// sourceBriefs reads the sources of a page of tasks in one query.
func (h taskHandlers) sourceBriefs(ctx context.Context, t store.Tenant, ids []string) (map[string]sourceBrief, error) {
	out := map[string]sourceBrief{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := h.store.SourcesByID(ctx, t, dedupeStrings(ids))
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ID] = sourceBrief{ID: r.ID, IP: r.IP, Name: r.Name, OSType: r.OSType, OSVersion: r.OSVersion,
			State: r.State, MigrationCycle: r.MigrationCycle, OEMSystem: r.OEMSystem, LastVisitTime: r.LastVisitTime}
	}
	return out, nil
}

func dedupeStrings(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// toJSON answers a task (ShowTaskResponse; the list's TasksResponseBody is
// the same shape with fewer fields, and the SDK ignores the extra ones).
func (h taskHandlers) toJSON(task *store.Task, src sourceBrief, full bool) gin.H {
	subs := task.SubTasks
	if subs == nil {
		subs = []store.SubTask{}
	}
	connected := src.LastVisitTime >= h.now().Add(-h.agentTimeout).UnixMilli()
	out := gin.H{
		"id": task.ID, "name": task.Name, "type": task.Type, "os_type": task.OSType, "state": task.State,
		"priority": task.Priority, "speed_limit": task.SpeedLimit, "region_id": task.RegionID,
		"region_name": task.RegionName, "project_name": task.ProjectName, "project_id": task.ProjectID,
		"start_target_server": task.StartTargetServer, "enterprise_project_id": task.EnterpriseProjectID,
		"migration_ip": task.MigrationIP, "vm_template_id": task.VMTemplateID,
		"estimate_complete_time": task.EstimateCompleteTime, "create_date": task.CreateDate,
		"start_date": task.StartDate, "finish_date": task.FinishDate, "migrate_speed": task.MigrateSpeed,
		"compress_rate": task.CompressRate, "error_json": task.ErrorJSON, "total_time": task.TotalTime,
		"remain_seconds": task.RemainSeconds, "sub_tasks": subs, "syncing": task.Syncing,
		"log_collect_status": task.LogCollectStatus, "subtask_info": task.SubtaskInfo,
		"total_cpu_usage": task.TotalCPUUsage, "agent_cpu_usage": task.AgentCPUUsage,
		"total_mem_usage": task.TotalMemUsage, "agent_mem_usage": task.AgentMemUsage,
		"total_disk_io": task.TotalDiskIO, "agent_disk_io": task.AgentDiskIO,
		"need_migration_test": task.NeedMigrationTest, "connected": connected,
		"replicatesize": task.Replicatesize, "totalsize": task.Totalsize, "auto_start": task.AutoStart,
		"exist_server": task.ExistServer, "use_public_ip": task.UsePublicIP,
		"is_need_consistency_check": task.IsNeedConsistencyCheck,
		"source_server": gin.H{"id": src.ID, "ip": src.IP, "name": src.Name, "os_type": src.OSType,
			"os_version": src.OSVersion, "oem_system": src.OEMSystem, "state": src.State,
			"migration_cycle": src.MigrationCycle},
		"clone_server": task.CloneServer, "network_check_info": task.NetworkCheckInfo,
		"special_config": nonNilConfig(task.SpecialConfig),
	}
	if ts := task.TargetServer; ts != nil {
		out["target_server"] = ts
	} else {
		out["target_server"] = gin.H{"disks": []any{}}
	}
	// float_ip is what older agents read as the target's address: the one
	// the agent reaches the target on (migration_ip when set, else the
	// target's own), null until there is one, as in the spec's example.
	out["float_ip"] = nil
	if task.MigrationIP != "" {
		out["float_ip"] = task.MigrationIP
	} else if ts := task.TargetServer; ts != nil && ts.IP != "" {
		out["float_ip"] = ts.IP
	}
	// target_snapshot_id: the snapshot of the target taken before a
	// finished task's last sync pass (what sync_failed_rollback restores),
	// or as PUT snapshot_ids named it.
	out["target_snapshot_id"] = nil
	if ts := task.TargetServer; ts != nil && ts.SnapshotIDs != "" {
		out["target_snapshot_id"] = ts.SnapshotIDs
	}
	if u := h.engine.RunURL(task.ID); u != "" {
		out["workflow_url"] = u // smsflow: the task's run in the Temporal UI
	}
	return out
}

func nonNilConfig(c []store.ConfigItem) []store.ConfigItem {
	if c == nil {
		return []store.ConfigItem{}
	}
	return c
}

// show: GET /v3/tasks/{id}.
func (h taskHandlers) show(c *gin.Context, r request) {
	ctx := c.Request.Context()
	t := r.tenant
	task, err := h.store.Task(ctx, t, r.id)
	if err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	srcs, err := h.sourceBriefs(ctx, t, []string{task.SourceID})
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, h.toJSON(task, srcs[task.SourceID], true))
}

// update: PUT /v3/tasks/{id} (§4.2.6); answers {} (the SDK decodes an object).
func (h taskHandlers) update(c *gin.Context, r request) {
	var b updateTaskBody
	if err := bindValid(c, &b); err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	if err := h.checkUpdate(ctx, r.tenant, r.id, &b); err != nil {
		fail(c, err)
		return
	}
	// The target's binding, disks, snapshots and enterprise project reach
	// the running workflow first: it refuses them once its target is made
	// (SMS.7706), and then nothing is written.
	tu := workflows.TargetUpdate{ExistServer: b.ExistServer, TargetDiskIDs: b.TargetDiskIDs, SnapshotIDs: b.SnapshotIDs,
		EnterpriseProject: b.EnterpriseProject}
	if b.TargetServer != nil {
		tu.VMID = b.TargetServer.VMID
	}
	if tu != (workflows.TargetUpdate{}) {
		task, err := h.store.Task(ctx, r.tenant, r.id)
		if err != nil {
			fail(c, taskError(err, r.id)) // another tenant's run hears nothing
			return
		}
		if err := updateRefusal(task, &b); err != nil {
			fail(c, err) // refused below anyway: the run must not take it either
			return
		}
		if err := h.engine.Target(ctx, r.id, tu); err != nil && !errors.Is(err, engine.ErrNoRun) {
			fail(c, err)
			return
		}
	}
	var speed *workflows.SpeedUpdate
	err := h.store.UpdateTask(ctx, r.tenant, r.id, func(task *store.Task) error {
		if err := updateRefusal(task, &b); err != nil {
			return err
		}
		set(&task.Name, b.Name)
		if b.Type != nil {
			task.Type = sms.TaskType(*b.Type)
		}
		set(&task.RegionID, b.RegionID)
		set(&task.RegionName, b.RegionName)
		set(&task.ExistServer, b.ExistServer)
		set(&task.MigrationIP, b.MigrationIP)
		set(&task.UseIPv6, b.UseIPv6)
		set(&task.UsePublicIP, b.UsePublicIP)
		set(&task.SpeedLimit, b.SpeedLimit)
		set(&task.ProjectName, b.ProjectName)
		set(&task.ProjectID, b.ProjectID)
		set(&task.VMTemplateID, b.VMTemplateID)
		set(&task.EnterpriseProjectID, b.EnterpriseProject)
		if err := checkRoute(task.MigrationIP, task.UseIPv6); err != nil {
			return err
		}
		if task.TargetServer == nil {
			task.TargetServer = &store.TargetServer{Disks: []store.TargetDisk{}}
		}
		set(&task.TargetServer.TargetDiskIDs, b.TargetDiskIDs)
		set(&task.TargetServer.SnapshotIDs, b.SnapshotIDs)
		set(&task.TargetServer.ImageDiskID, b.ImageDiskID)
		set(&task.TargetServer.CutoveredSnapshotIDs, b.CutoveredSnapshotIDs)
		if ts := b.TargetServer; ts != nil {
			set(&task.TargetServer.VMID, ts.VMID)
			set(&task.TargetServer.Name, ts.Name)
			set(&task.TargetServer.IP, ts.IP)
			if ts.OSType != nil {
				task.TargetServer.OSType = sms.OSType(*ts.OSType)
			}
			set(&task.TargetServer.OSVersion, ts.OSVersion)
			set(&task.TargetServer.Flavor, ts.Flavor)
			if ts.Disks != nil {
				task.TargetServer.Disks = toTargetDisks(*ts.Disks)
			}
		}
		if b.CloneServer != nil {
			task.CloneServer = b.CloneServer
		}
		if b.SpeedLimit != nil {
			speed = &workflows.SpeedUpdate{Rules: activities.SpeedRulesOf(task.SpeedRules), SpeedLimit: task.SpeedLimit,
				OverSpeedThreshold: task.OverSpeedThreshold}
		}
		return nil
	})
	if err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	// A new default limit applies at once, like new speed windows do.
	if speed != nil {
		if err := h.engine.SpeedRules(ctx, r.id, *speed); err != nil && !errors.Is(err, engine.ErrNoRun) {
			fail(c, err)
			return
		}
	}
	okEmpty(c)
}

// updateRefusal applies the rules on the task's state an update must meet:
// its type and target disks change only before it starts.
func updateRefusal(task *store.Task, b *updateTaskBody) error {
	if b.Type != nil && sms.TaskType(*b.Type) != task.Type && task.State != sms.TaskReady {
		return smserr.New(smserr.SMS7712, "type").WithDetail("the type can change only before the task starts")
	}
	if b.TargetServer != nil && b.TargetServer.Disks != nil && task.State != sms.TaskReady {
		return smserr.New(smserr.SMS8106, "target_server.disks").WithDetail("target disks can change only before the task starts")
	}
	return nil
}

// checkRoute refuses a migration_ip that is not an IP address, or not an
// IPv6 one on a task that uses IPv6 (SMS.6602): it is the address the
// agent dials.
func checkRoute(migrationIP string, ipv6 bool) error {
	if migrationIP == "" {
		return nil
	}
	ip := net.ParseIP(migrationIP)
	switch {
	case ip == nil:
		return smserr.New(smserr.SMS6602, "migration_ip").WithDetail("migration_ip: " + migrationIP + " is not an IP address")
	case ipv6 && ip.To4() != nil:
		return smserr.New(smserr.SMS6602, "migration_ip").WithDetail("migration_ip: use_ipv6 is set, but " + migrationIP + " is an IPv4 address")
	}
	return nil
}

// checkUpdate applies create's rules on references to what an update
// changes: the template must be the tenant's (SMS.7101) and a newly bound
// existing server must be one the task may bind (checkBind).
func (h taskHandlers) checkUpdate(ctx context.Context, t store.Tenant, id string, b *updateTaskBody) error {
	if b.MigrationIP != nil || b.UseIPv6 != nil {
		task, err := h.store.Task(ctx, t, id)
		if err != nil {
			return taskError(err, id)
		}
		ip, v6 := task.MigrationIP, task.UseIPv6
		set(&ip, b.MigrationIP)
		set(&v6, b.UseIPv6)
		if err := checkRoute(ip, v6); err != nil {
			return err
		}
	}
	if b.VMTemplateID != nil && *b.VMTemplateID != "" {
		if _, err := h.store.Template(ctx, t, *b.VMTemplateID); err != nil {
			return templateError(err, *b.VMTemplateID)
		}
	}
	if b.ExistServer == nil && (b.TargetServer == nil || b.TargetServer.VMID == nil) {
		return nil
	}
	task, err := h.store.Task(ctx, t, id)
	if err != nil {
		return taskError(err, id)
	}
	exist, vm := task.ExistServer, ""
	if task.TargetServer != nil {
		vm = task.TargetServer.VMID
	}
	before := exist && vm != ""
	oldVM := vm
	set(&exist, b.ExistServer)
	if b.TargetServer != nil {
		set(&vm, b.TargetServer.VMID)
	}
	if !exist || vm == "" || (before && vm == oldVM) {
		return nil // nothing newly bound
	}
	return h.checkBind(ctx, t, vm, id)
}

// delete: DELETE /v3/tasks/{id}. A task with a run is stopped and cleaned
// up by its workflow (a connected agent is told to stop, a disconnected one
// is not waited for); a task without a running workflow is removed at once.
func (h taskHandlers) delete(c *gin.Context, r request) {
	if err := h.deleteOne(c.Request.Context(), r.tenant, r.id); err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	okEmpty(c)
}

func (h taskHandlers) deletable(ctx context.Context, t store.Tenant, id string) (*store.Task, error) {
	task, err := h.store.Task(ctx, t, id)
	if err != nil {
		return nil, err
	}
	if err := workflows.ValidateDelete(task.State); err != nil {
		return nil, smserr.New(smserr.SMS7719, id).WithDetail("task " + id + " is already being deleted")
	}
	if task.WaveID != nil {
		// A running wave's member task is the wave's: deleting it would
		// break the wave's bookkeeping (SMS.8505, cancel the wave first).
		w, err := h.store.Wave(ctx, t, *task.WaveID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if w != nil && w.State.Running() {
			return nil, wave.ErrRunning.New(w.ID).WithDetail("task " + id + " belongs to wave " + w.ID + " (" + string(w.State) + ")")
		}
	}
	// §4.2.3/§4.2.4 allow a delete when the agent is disconnected or the
	// source is in check-failed, ready, finished, error or paused: the
	// first is the case of a source server that died mid-copy, whose run
	// is told to delete and cleans up without waiting for the agent. The
	// spec refuses the rest (agent connected, copying); smsflow accepts it
	// too and stops the agent first, through the run.
	return task, nil
}

func (h taskHandlers) deleteOne(ctx context.Context, t store.Tenant, id string) error {
	task, err := h.deletable(ctx, t, id)
	if err != nil {
		return err
	}
	err = h.engine.Delete(ctx, id)
	if errors.Is(err, engine.ErrNoRun) {
		if err := h.store.DeleteTask(ctx, t, id); err != nil {
			return err
		}
		// No run to clean up (it was ended from the Temporal UI): what the
		// run's delete would do is done here, or it is left orphaned. A
		// bound existing server is released (its receiver stops); a target
		// the task created goes with it.
		if h.targets == nil || task.TargetServer == nil || task.TargetServer.Location == "" {
			return nil
		}
		tg := provider.Target{VMID: task.TargetServer.VMID, Location: task.TargetServer.Location}
		if task.ExistServer {
			if err := h.targets.Release(ctx, tg, id); err != nil {
				h.log.WarnContext(ctx, "bound target not released", "task", id, "err", err)
			}
		} else if d, ok := h.targets.(targetDeleter); ok {
			if err := d.Delete(ctx, tg); err != nil {
				h.log.WarnContext(ctx, "created target not removed", "task", id, "err", err)
			}
		}
		return nil
	}
	return err
}

// targetDeleter removes a target a task created (provider.Provider's
// Delete; it refuses an existing server).
type targetDeleter interface {
	Delete(ctx context.Context, t provider.Target) error
}

// batchDelete: POST /v3/tasks/delete {"ids"}: every task is checked first,
// so a refusal deletes none.
func (h taskHandlers) batchDelete(c *gin.Context) {
	ids, err := bindIDs(c)
	if err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	t := mustPrincipal(c).Tenant()
	ids = dedupeStrings(ids)
	for _, id := range ids {
		if _, err := h.deletable(ctx, t, id); err != nil {
			fail(c, taskError(err, id))
			return
		}
	}
	for _, id := range ids {
		if err := h.deleteOne(ctx, t, id); err != nil {
			fail(c, taskError(err, id))
			return
		}
	}
	okEmpty(c)
}
