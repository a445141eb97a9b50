package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/smsflow/smsflow/internal/sms"
)

// SubTask is one step of a task as the API shows it (table "SubTask").
type SubTask struct {
	ID           int64       `json:"id"`
	Name         sms.Subtask `json:"name"`
	Progress     int32       `json:"progress"`
	StartDate    *int64      `json:"start_date,omitempty"`
	EndDate      *int64      `json:"end_date,omitempty"`
	MigrateSpeed *float64    `json:"migrate_speed,omitempty"`
	UserOp       *string     `json:"user_op,omitempty"`
	ProcessTrace *string     `json:"process_trace,omitempty"`
}

// TargetDisk is a disk of the task's target server.
type TargetDisk struct {
	ID              *int64                 `json:"id,omitempty"`
	DeviceUse       *string                `json:"device_use,omitempty"`
	DiskID          *string                `json:"disk_id,omitempty"`
	Name            *string                `json:"name,omitempty"`
	PhysicalVolumes []TargetPhysicalVolume `json:"physical_volumes"`
	Size            *int64                 `json:"size,omitempty"`
	UsedSize        *int64                 `json:"used_size,omitempty"`
	DiskIndex       *string                `json:"disk_index,omitempty"`
	OSDisk          *bool                  `json:"os_disk,omitempty"`
	PartitionStyle  *string                `json:"partition_style,omitempty"`
	RelationName    *string                `json:"relation_name,omitempty"`
}

// TargetPhysicalVolume is a partition of a target disk.
type TargetPhysicalVolume struct {
	ID           *int64  `json:"id,omitempty"`
	DeviceUse    *string `json:"device_use,omitempty"`
	FileSystem   *string `json:"file_system,omitempty"`
	Index        *int32  `json:"index,omitempty"`
	MountPoint   *string `json:"mount_point,omitempty"`
	Name         *string `json:"name,omitempty"`
	Size         *int64  `json:"size,omitempty"`
	UsedSize     *int64  `json:"used_size,omitempty"`
	UUID         *string `json:"uuid,omitempty"`
	RelationName *string `json:"relation_name,omitempty"`
	FreeSize     *int64  `json:"free_size,omitempty"`
	InodeSize    *int64  `json:"inode_size,omitempty"`
}

// TargetServer is the task's target (TaskTargetServer). BtrfsList holds
// names: the SDK declares it an array of strings.
type TargetServer struct {
	ID                   string        `json:"id"`
	VMID                 string        `json:"vm_id"`
	Name                 string        `json:"name"`
	IP                   string        `json:"ip"`
	OSType               sms.OSType    `json:"os_type"`
	OSVersion            string        `json:"os_version"`
	SystemDir            string        `json:"system_dir"`
	Disks                []TargetDisk  `json:"disks"`
	VolumeGroups         []VolumeGroup `json:"volume_groups"`
	BtrfsList            []string      `json:"btrfs_list"`
	ImageDiskID          string        `json:"image_disk_id"`
	CutoveredSnapshotIDs string        `json:"cutovered_snapshot_ids"`
	// TargetDiskIDs and SnapshotIDs are PUT /v3/tasks/{id}'s
	// target_disk_ids and snapshot_ids (comma-separated): the existing
	// server's disks that receive the copy, and the target's snapshots.
	TargetDiskIDs string `json:"target_disk_ids,omitempty"`
	SnapshotIDs   string `json:"snapshot_ids,omitempty"`
	Flavor        string `json:"flavor,omitempty"`
	// Where the provider put it (a folder for the local provider).
	Location string `json:"location,omitempty"`
}

// CloneServer is the clone made by clone_test.
type CloneServer struct {
	VMID       string `json:"vm_id"`
	Name       string `json:"name"`
	CloneError string `json:"clone_error"`
	CloneState string `json:"clone_state"`
	ErrorMsg   string `json:"error_msg"`
}

// SpeedRule is one window of a task's speed limit (§4.2.10).
type SpeedRule struct {
	Start              string   `json:"start"`
	End                string   `json:"end"`
	Speed              *int32   `json:"speed,omitempty"`
	OverSpeedThreshold *float64 `json:"over_speed_threshold,omitempty"`
}

// NetworkCheckInfo is the agent's network quality report.
type NetworkCheckInfo struct {
	DomainConnectivity      *bool   `json:"domain_connectivity,omitempty"`
	DestinationConnectivity *bool   `json:"destination_connectivity,omitempty"`
	NetworkDelay            float64 `json:"network_delay"`
	NetworkJitter           float64 `json:"network_jitter"`
	MigrationSpeed          float64 `json:"migration_speed"`
	LossPercentage          float64 `json:"loss_percentage"`
	CPUUsage                float64 `json:"cpu_usage"`
	MemUsage                float64 `json:"mem_usage"`
	EvaluationResult        string  `json:"evaluation_result"`
}

// ConfigItem is a special configuration of a task (configuration-setting).
type ConfigItem struct {
	ConfigKey    string  `json:"config_key"`
	ConfigValue  string  `json:"config_value"`
	ConfigStatus *string `json:"config_status,omitempty"`
}

// ConsistencyResult is one file system's verification result.
type ConsistencyResult struct {
	DirCheck           string `json:"dir_check"`
	NumTotalFiles      int32  `json:"num_total_files"`
	NumDifferentFiles  int32  `json:"num_different_files"`
	NumTargetMissFiles int32  `json:"num_target_miss_files"`
	NumTargetMoreFiles int32  `json:"num_target_more_files"`
}

// Task is a migration task (§4.2), driven by its MigrationWorkflow.
type Task struct {
	ID           string `gorm:"primaryKey;size:64"`
	DomainID     string `gorm:"size:64;not null"`
	SourceID     string `gorm:"size:64;not null"`
	MigProjectID string `gorm:"size:64;not null"`

	Name       string        `gorm:"size:255;not null"`
	Type       sms.TaskType  `gorm:"size:32;not null"`
	OSType     sms.OSType    `gorm:"column:os_type;size:16;not null"`
	State      sms.TaskState `gorm:"size:32;not null"`
	Priority   int32         `gorm:"not null"`
	SpeedLimit int32         `gorm:"not null"`
	// CurrentLimit and CurrentThreshold are the limit in force now (speed
	// windows over SpeedLimit), as the workflow last computed it; progress
	// reports over it reach the workflow at once.
	CurrentLimit           int32   `gorm:"not null"`
	CurrentThreshold       float64 `gorm:"not null"`
	OverSpeedThreshold     float64 `gorm:"not null"`
	StartTargetServer      bool    `gorm:"not null"`
	AutoStart              bool    `gorm:"not null"`
	MigrationIP            string  `gorm:"column:migration_ip;size:255;not null"`
	RegionName             string  `gorm:"size:255;not null"`
	RegionID               string  `gorm:"size:255;not null"`
	ProjectName            string  `gorm:"size:255;not null"`
	ProjectID              string  `gorm:"size:255;not null"`
	VMTemplateID           string  `gorm:"column:vm_template_id;size:255;not null"`
	CloneVMTemplateID      string  `gorm:"column:clone_vm_template_id;size:255;not null"`
	UsePublicIP            bool    `gorm:"column:use_public_ip;not null"`
	UseIPv6                bool    `gorm:"column:use_ipv6;not null"`
	Syncing                bool    `gorm:"not null"`
	ExistServer            bool    `gorm:"not null"`
	StartNetworkCheck      bool    `gorm:"not null"`
	IsNeedConsistencyCheck bool    `gorm:"not null"`
	NeedMigrationTest      bool    `gorm:"not null"`
	EnterpriseProjectID    string  `gorm:"size:255;not null"`

	// Times are epoch milliseconds, as the API answers them.
	CreateDate           int64  `gorm:"not null"`
	StartDate            int64  `gorm:"not null"`
	FinishDate           int64  `gorm:"not null"`
	EstimateCompleteTime int64  `gorm:"not null"`
	RemainSeconds        int64  `gorm:"not null"`
	TotalTime            int64  `gorm:"not null"`
	LastProgressAt       int64  `gorm:"not null"`
	AgentTime            string `gorm:"size:64;not null"`

	MigrateSpeed  float64 `gorm:"not null"`
	CompressRate  float64 `gorm:"not null"`
	Replicatesize int64   `gorm:"not null"`
	Totalsize     int64   `gorm:"not null"`
	TotalCPUUsage float64 `gorm:"column:total_cpu_usage;not null"`
	AgentCPUUsage float64 `gorm:"column:agent_cpu_usage;not null"`
	TotalMemUsage float64 `gorm:"not null"`
	AgentMemUsage float64 `gorm:"not null"`
	TotalDiskIO   float64 `gorm:"column:total_disk_io;not null"`
	AgentDiskIO   float64 `gorm:"column:agent_disk_io;not null"`

	ErrorJSON        string               `gorm:"column:error_json;type:longtext"`
	LogCollectStatus sms.LogCollectStatus `gorm:"size:32;not null"`
	SubtaskInfo      string               `gorm:"type:longtext"`
	// FailedStep is where a failed run stopped: start/restart resume there.
	FailedStep    sms.Step `gorm:"size:64;not null"`
	TargetStarted bool     `gorm:"not null"`
	WorkflowID    string   `gorm:"size:255;not null"`

	TargetServer       *TargetServer       `gorm:"type:longtext;serializer:json"`
	CloneServer        *CloneServer        `gorm:"type:longtext;serializer:json"`
	SubTasks           []SubTask           `gorm:"type:longtext;serializer:json"`
	SpeedRules         []SpeedRule         `gorm:"type:longtext;serializer:json"`
	NetworkCheckInfo   *NetworkCheckInfo   `gorm:"type:longtext;serializer:json"`
	SpecialConfig      []ConfigItem        `gorm:"type:longtext;serializer:json"`
	ConsistencyResults []ConsistencyResult `gorm:"type:longtext;serializer:json"`
	// TLS material for the agent ↔ receiver link (SSL_CONFIG): the key and
	// passphrase sealed with the secret key.
	CertPEM       string `gorm:"type:longtext"`
	KeyPEMEnc     string `gorm:"type:longtext"`
	CAPEM         string `gorm:"type:longtext"`
	PassphraseEnc string `gorm:"size:1024;not null"`

	// WaveID is the wave the task was created for (nil for a task of its
	// own): its workflow is then a child of the wave's.
	WaveID *string `gorm:"size:64"`

	UpdatedAt time.Time `gorm:"not null"`
}

// ErrSourceBusy: the source already has a task.
var ErrSourceBusy = errors.New("store: source has a task")

// SourceBusyError names the task a source already has.
type SourceBusyError struct{ TaskID string }

func (e *SourceBusyError) Error() string        { return "store: source already has task " + e.TaskID }
func (e *SourceBusyError) Is(target error) bool { return target == ErrSourceBusy }

// CreateTask inserts a task and makes it its source's current task, in one
// transaction: a source has one task at a time.
func (s *Store) CreateTask(ctx context.Context, t Tenant, task *Task) error {
	task.DomainID = t.DomainID
	return s.tx(ctx, func(tx *gorm.DB) error {
		var src Source
		q := s.forUpdate(tx.Select("id", "current_task_id", "mig_project_id").Where("domain_id = ? AND id = ?", t.DomainID, task.SourceID))
		if err := q.First(&src).Error; err != nil {
			return fmt.Errorf("source %s: %w", task.SourceID, notFound(err))
		}
		if src.CurrentTaskID != nil && *src.CurrentTaskID != "" {
			return &SourceBusyError{TaskID: *src.CurrentTaskID}
		}
		task.MigProjectID = src.MigProjectID
		if err := tx.Create(task).Error; err != nil {
			return fmt.Errorf("create task: %w", err)
		}
		res := tx.Model(&Source{}).Where("domain_id = ? AND id = ? AND current_task_id IS NULL", t.DomainID, task.SourceID).
			Update("current_task_id", task.ID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return &SourceBusyError{}
		}
		return nil
	})
}

// Task loads one task of the tenant.
func (s *Store) Task(ctx context.Context, t Tenant, id string) (*Task, error) {
	return first[Task](s.db.WithContext(ctx).Where("domain_id = ? AND id = ?", t.DomainID, id))
}

// TaskFilter holds the list filters of §4.2.2.
type TaskFilter struct {
	State, Name, ID, SourceID, EnterpriseProjectID string
}

// Tasks lists a page of the tenant's tasks, oldest first, and the count.
func (s *Store) Tasks(ctx context.Context, t Tenant, f TaskFilter, pg Page) ([]Task, int64, error) {
	q := s.db.WithContext(ctx).Model(&Task{}).Where("domain_id = ?", t.DomainID)
	q = whereIs(q, "state", f.State)
	q = whereIs(q, "name", f.Name)
	q = whereIs(q, "id", f.ID)
	q = whereIs(q, "source_id", f.SourceID)
	q = whereIs(q, "enterprise_project_id", f.EnterpriseProjectID)
	return listPage[Task](q, "create_date, id", pg, "tasks")
}

// UpdateTask loads a task in a transaction, lets fn change it, and saves it
// whole.
func (s *Store) UpdateTask(ctx context.Context, t Tenant, id string, fn func(task *Task) error) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		_, err := s.updateTaskTx(tx, t, id, fn)
		return err
	})
}

// SourceCycleChange moves a task's source to a state within a migration
// cycle at AtMs, stamping the action times of what changes; an empty State
// or Cycle keeps it, a nil ErrorJSON keeps the source's error.
type SourceCycleChange struct {
	State     sms.SourceState
	Cycle     sms.Cycle
	ErrorJSON *string
	AtMs      int64
}

func (c SourceCycleChange) isZero() bool { return c.State == "" && c.Cycle == "" && c.ErrorJSON == nil }

// TransitionTask is UpdateTask that also applies change to the task's
// source in the same transaction (the workflow's transitions move both;
// nothing happens to the source when change is zero). The caller checks the
// source's state matrix (sourcestate.Check) first.
func (s *Store) TransitionTask(ctx context.Context, t Tenant, id string, fn func(task *Task) error, change SourceCycleChange) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		task, err := s.updateTaskTx(tx, t, id, fn)
		if err != nil || change.isZero() {
			return err
		}
		return setSourceCycle(tx, t, task.SourceID, change)
	})
}

// SetConsistencyResults replaces a task's consistency check results and
// sets its source's is_consistency_result_exist flag to match, in one
// transaction.
func (s *Store) SetConsistencyResults(ctx context.Context, t Tenant, taskID string, results []ConsistencyResult) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		task, err := s.updateTaskTx(tx, t, taskID, func(task *Task) error {
			task.ConsistencyResults = results
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Model(&Source{}).Where("domain_id = ? AND id = ?", t.DomainID, task.SourceID).
			Update("is_consistency_result_exist", len(results) > 0).Error
	})
}

// UpdateTaskProgress is UpdateTask that also copies the task's replicated
// and total sizes, as fn leaves them, to its source in the same transaction
// (the sources list shows them).
func (s *Store) UpdateTaskProgress(ctx context.Context, t Tenant, id string, fn func(task *Task) error) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		task, err := s.updateTaskTx(tx, t, id, fn)
		if err != nil {
			return err
		}
		// The report's own time (the API's clock), so samples follow it.
		at := task.LastProgressAt
		if at == 0 {
			at = time.Now().UnixMilli()
		}
		if err := addSpeedSample(tx, task, at); err != nil {
			return err
		}
		return tx.Model(&Source{}).Where("domain_id = ? AND id = ?", t.DomainID, task.SourceID).
			Updates(map[string]any{"replicatesize": task.Replicatesize, "totalsize": task.Totalsize}).Error
	})
}

// updateTaskTx loads a task (locked on MySQL), lets fn change it and saves
// it whole within tx.
func (s *Store) updateTaskTx(tx *gorm.DB, t Tenant, id string, fn func(task *Task) error) (*Task, error) {
	task, err := first[Task](s.forUpdate(tx.Where("domain_id = ? AND id = ?", t.DomainID, id)))
	if err != nil {
		return nil, err
	}
	if err := fn(task); err != nil {
		return nil, err
	}
	task.UpdatedAt = time.Now().UTC()
	err = tx.Model(&Task{}).Where("domain_id = ? AND id = ?", t.DomainID, id).Select("*").Omit("id", "domain_id").Updates(task).Error
	return task, err
}

// DeleteTask removes a task and frees its source.
func (s *Store) DeleteTask(ctx context.Context, t Tenant, id string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var task Task
		if err := tx.Select("id", "source_id").Where("domain_id = ? AND id = ?", t.DomainID, id).First(&task).Error; err != nil {
			return notFound(err)
		}
		if err := tx.Where("domain_id = ? AND id = ?", t.DomainID, id).Delete(&Task{}).Error; err != nil {
			return err
		}
		if err := tx.Where("domain_id = ? AND task_id = ?", t.DomainID, id).Delete(&AgentLog{}).Error; err != nil {
			return err
		}
		if err := tx.Where("domain_id = ? AND task_id = ?", t.DomainID, id).Delete(&SpeedSample{}).Error; err != nil {
			return err
		}
		return tx.Model(&Source{}).Where("domain_id = ? AND id = ? AND current_task_id = ?", t.DomainID, task.SourceID, id).
			Update("current_task_id", nil).Error
	})
}

// setSourceCycle applies a SourceCycleChange to a source within tx.
func setSourceCycle(tx *gorm.DB, t Tenant, sourceID string, c SourceCycleChange) error {
	var src Source
	if err := tx.Select("id", "state", "migration_cycle").Where("domain_id = ? AND id = ?", t.DomainID, sourceID).First(&src).Error; err != nil {
		return notFound(err)
	}
	upd := map[string]any{"updated_at": time.Now().UTC()}
	if c.State != "" && src.State != c.State {
		upd["state"], upd["state_action_time"] = c.State, c.AtMs
	}
	if c.Cycle != "" && src.MigrationCycle != c.Cycle {
		upd["migration_cycle"], upd["stage_action_time"] = c.Cycle, c.AtMs
	}
	if c.ErrorJSON != nil {
		upd["error_json"] = *c.ErrorJSON
	}
	return tx.Model(&Source{}).Where("domain_id = ? AND id = ?", t.DomainID, sourceID).Updates(upd).Error
}

// TaskSummary is a task as the sources list shows it (current_task).
type TaskSummary struct {
	ID, Name, Type, State, ProjectName, ProjectID, RegionID, VMTemplateID, LogCollectStatus string
	EstimateCompleteTime, StartDate, RemainSeconds                                          int64
	SpeedLimit                                                                              int32
	MigrateSpeed, CompressRate                                                              float64
	StartTargetServer, ExistServer, UsePublicIP                                             bool
	TargetServer                                                                            *TargetServer `gorm:"serializer:json"`
	CloneServer                                                                             *CloneServer  `gorm:"serializer:json"`
	SubtaskInfo                                                                             string
	// LogBucket and LogUploadTime (epoch ms) describe the task's newest
	// agent log upload; LogUploadTime is 0 when there is none.
	LogBucket     string `gorm:"-"`
	LogUploadTime int64  `gorm:"-"`
}

// TaskSummaries reads the current tasks of a page of sources in one query.
func (s *Store) TaskSummaries(ctx context.Context, t Tenant, ids []string) (map[string]TaskSummary, error) {
	out := map[string]TaskSummary{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []TaskSummary
	err := s.db.WithContext(ctx).Model(&Task{}).
		Select("id", "name", "type", "state", "project_name", "project_id", "region_id", "vm_template_id",
			"log_collect_status", "estimate_complete_time", "start_date", "remain_seconds", "speed_limit",
			"migrate_speed", "compress_rate", "start_target_server", "exist_server", "use_public_ip",
			"target_server", "clone_server", "subtask_info").
		Where("domain_id = ? AND id IN ?", t.DomainID, ids).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("task summaries: %w", err)
	}
	for _, r := range rows {
		out[r.ID] = r
	}
	// The newest upload of each task (a task keeps KeepAgentLogs), without
	// the logs themselves.
	var logs []struct {
		TaskID    string
		Bucket    string
		CreatedAt time.Time
	}
	err = s.db.WithContext(ctx).Model(&AgentLog{}).Select("task_id", "bucket", "created_at").
		Where("domain_id = ? AND task_id IN ?", t.DomainID, ids).Order("id").Find(&logs).Error
	if err != nil {
		return nil, fmt.Errorf("task summaries: agent logs: %w", err)
	}
	for _, l := range logs {
		if r, found := out[l.TaskID]; found {
			r.LogBucket, r.LogUploadTime = l.Bucket, l.CreatedAt.UnixMilli()
			out[l.TaskID] = r
		}
	}
	return out, nil
}

// TargetVMInUse tells whether another task of the tenant already targets
// the VM (SMS.7605).
func (s *Store) TargetVMInUse(ctx context.Context, t Tenant, vmID, exceptTask string) (bool, error) {
	var tasks []struct {
		ID           string
		TargetServer *TargetServer `gorm:"serializer:json"`
	}
	if err := s.db.WithContext(ctx).Model(&Task{}).Select("id", "target_server").
		Where("domain_id = ? AND id <> ? AND exist_server = ?", t.DomainID, exceptTask, true).Find(&tasks).Error; err != nil {
		return false, err
	}
	for _, x := range tasks {
		if x.TargetServer != nil && x.TargetServer.VMID == vmID {
			return true, nil
		}
	}
	return false, nil
}
