// Package workflows holds MigrationWorkflow, one durable run per migration
// task, and the names and types the API, the worker and the tests share.
// Everything here is deterministic: no I/O, no time.Now, no map-order loops.
package workflows

import (
	"time"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/speedlimit"
)

// TaskQueue is where migration workflows and their activities run.
const TaskQueue = "smsflow-migration"

// MigrationWorkflowID names a task's run: "migration/<taskID>".
func MigrationWorkflowID(taskID string) string { return "migration/" + taskID }

// Update, signal and query names.
const (
	UpdateAction    = "action"   // operator actions: start, stop, test, clone_test, restart, network_check
	UpdateDelete    = "delete"   // DELETE /v3/tasks/{id}
	UpdateTarget    = "target"   // PUT /v3/tasks/{id}: the target's binding, disks, snapshots, enterprise project
	SignalProgress  = "progress" // PUT /v3/tasks/{id}/progress from the agent
	SignalSpeed     = "speed"    // speed rules changed (POST speed-limit)
	SignalCommand   = "command"  // an agent's command result
	QueryState      = "state"
	SearchTaskID    = "SmsTaskId"
	SearchSourceID  = "SmsSourceId"
	SearchProject   = "SmsMigProject"
	SearchTaskState = "SmsTaskState"
)

// Input starts a MigrationWorkflow.
type Input struct {
	TaskID            string
	DomainID          string
	ProjectID         string
	SourceID          string
	MigProjectID      string
	Type              sms.TaskType
	OSType            sms.OSType
	AutoStart         bool
	Syncing           bool
	StartTargetServer bool
	ExistServer       bool
	// StartNetworkCheck: the agent checks the network to the target once
	// the target is ready, before the copy (start_network_check).
	StartNetworkCheck bool
	// SkipConsistencyCheck: the agent does not verify the target after
	// its passes and the run does not check the verification
	// (is_need_consistency_check false). Negative so that the zero value,
	// which runs started before the option decode, keeps the check.
	SkipConsistencyCheck bool
	// NeedMigrationTest: the copy keeps syncing until the target has
	// passed a clone test, and launching it before is refused
	// (need_migration_test).
	NeedMigrationTest bool
	// Rules is the revision of the run's rules that change its commands
	// without a version marker (TaskInput sets RulesCurrent; runs started
	// before decode 0 and replay as they ran, a continue-as-new keeps it):
	// 1: a wave's test keeps the need_migration_test rule (the member
	// waits for its clone test) and a skip ends with a failed run.
	Rules int
	// Priority is the task's priority (0 low, 1 normal, 2 high): the run
	// is started with it, so its work goes first or last in a busy queue.
	Priority int32
	// Speed: the default limit and threshold, and time windows over it,
	// read in TimeZone.
	SpeedLimit         int32
	OverSpeedThreshold float64
	SpeedRules         []speedlimit.Rule
	TimeZone           string
	// SyncInterval is the pause between continuous-sync passes.
	SyncInterval time.Duration
	// AgentStepTimeout fails an agent step that reports nothing this long.
	AgentStepTimeout time.Duration
	// HistoryBound overrides the history length at which a run continues
	// as new (0: the package's HistoryBound); the recorded histories of
	// the replay test use a small one.
	HistoryBound int
	// WaveID is the wave the task is a member of ("" for none): the run
	// takes the wave's bandwidth cap and commands and reports its events to
	// the wave (wave_member.go). WaveCap is the cap it starts with.
	WaveID  string
	WaveCap int32
	// WaveSize is the wave's member count when it launched this member
	// (0 in runs started before it was passed): it paces the member's
	// sync passes (syncInterval).
	WaveSize int
	// Resume carries the state across a continue-as-new.
	Resume *RunState
}

// ActionRequest is an operator action.
type ActionRequest struct {
	Operation              sms.Action
	TemplateID             string
	IsNeedConsistencyCheck bool
	// ConsistencyCheck, when set on start or restart, turns the target's
	// verification on or off from then on (is_need_consistency_check as
	// given; absent keeps the task's setting).
	ConsistencyCheck *bool
}

// TargetUpdate is what PUT /v3/tasks/{id} changes in the target a run
// makes or binds (nil: unchanged). The binding (exist_server,
// target_server.vm_id, target_disk_ids) changes only until the run has its
// target; snapshot_ids and enterprise_project until the target is
// launched.
type TargetUpdate struct {
	ExistServer       *bool
	VMID              *string
	TargetDiskIDs     *string
	SnapshotIDs       *string
	EnterpriseProject *string
}

// rebinds tells whether u changes which server or disks the run targets.
func (u TargetUpdate) rebinds() bool {
	return u.ExistServer != nil || u.VMID != nil || u.TargetDiskIDs != nil
}

// Progress is an agent's report, forwarded by the API.
type Progress struct {
	Subtask      sms.Subtask
	Progress     int32
	MigrateSpeed float64 // Mbit/s
	At           time.Time
}

// CommandResult is an agent's answer to a command.
type CommandResult struct {
	Command sms.Command
	Success bool
	Detail  string
}

// SpeedUpdate replaces the task's speed rules.
type SpeedUpdate struct {
	Rules              []speedlimit.Rule
	SpeedLimit         int32
	OverSpeedThreshold float64
}

// Status is what the state query returns (for operators and tests).
type Status struct {
	TaskState  sms.TaskState
	Step       sms.Step
	FailedStep sms.Step
	SyncRounds int
	Limit      speedlimit.Limit
	Deleted    bool
}

// RulesCurrent is the Rules revision new runs start with.
const RulesCurrent = 1

// PriorityKey maps a task's priority (0 low, 1 normal, 2 high) onto
// Temporal's priority keys (1 runs first, 3 is the default, 5 last): the
// API's start and a wave's member launch give a run the same one.
func PriorityKey(p int32) int {
	switch p {
	case 2:
		return 1
	case 0:
		return 5
	}
	return 3
}
