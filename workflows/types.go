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
