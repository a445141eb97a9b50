package sms

// TaskState is a migration task's state (the SDK's task state enum).
type TaskState string

// Task states. The spec names READY to DELETING; the hosted service and the
// SDK add the SYNC_* outcomes of a finished task's sync, SKIPPING (the
// consistency check skipped, the run finishing) and RESETING (a failed
// sync rolled back).
const (
	TaskReady          TaskState = "READY"
	TaskRunning        TaskState = "RUNNING"
	TaskSyncing        TaskState = "SYNCING"
	TaskMigrateSuccess TaskState = "MIGRATE_SUCCESS"
	TaskSyncSuccess    TaskState = "SYNC_SUCCESS"
	TaskMigrateFail    TaskState = "MIGRATE_FAIL"
	TaskSyncFail       TaskState = "SYNC_FAIL"
	TaskAborting       TaskState = "ABORTING"
	TaskAbort          TaskState = "ABORT"
	TaskSkipping       TaskState = "SKIPPING"
	TaskDeleting       TaskState = "DELETING"
	TaskReseting       TaskState = "RESETING" // the SDK's spelling
)

// TaskStates lists every task state smsflow sets, for validation.
var TaskStates = []TaskState{TaskReady, TaskRunning, TaskSyncing, TaskMigrateSuccess, TaskSyncSuccess,
	TaskMigrateFail, TaskSyncFail, TaskAborting, TaskAbort, TaskSkipping, TaskDeleting, TaskReseting}

// FilterState reads ListTasks' state filter: the SDK's ListTasksRequest
// still names the rollback SYNC_F_ROLLBACKING, which is RESETING here;
// every other word is itself.
func FilterState(s string) string {
	if s == "SYNC_F_ROLLBACKING" {
		return string(TaskReseting)
	}
	return s
}

// Finished tells whether a task in state s has launched its target and
// may be synchronized again (SMS.7715): a migration or a later sync that
// succeeded, or a sync that failed.
func (s TaskState) Finished() bool {
	return s == TaskMigrateSuccess || s == TaskSyncSuccess || s == TaskSyncFail
}

// Valid tells whether s is one of TaskStates.
func (s TaskState) Valid() bool { return contains(TaskStates, s) }

// TaskType is a task's migration type.
type TaskType string

// Task types.
const (
	MigrateBlock TaskType = "MIGRATE_BLOCK"
	MigrateFile  TaskType = "MIGRATE_FILE"
)

// TaskTypes lists the task types.
var TaskTypes = []TaskType{MigrateBlock, MigrateFile}

// Valid tells whether t is one of TaskTypes.
func (t TaskType) Valid() bool { return contains(TaskTypes, t) }

// MigrateType is a task's kind as configuration-setting names it (the
// SDK's ShowConfigSettingResponse migrate_type enum): OS and type together.
type MigrateType string

// Migrate types.
const (
	WindowsMigrateBlock MigrateType = "WINDOWS_MIGRATE_BLOCK"
	LinuxMigrateFile    MigrateType = "LINUX_MIGRATE_FILE"
	LinuxMigrateBlock   MigrateType = "LINUX_MIGRATE_BLOCK"
)

// MigrateTypeOf is the migrate_type of a task of type t on OS o. A Windows
// task copies blocks whatever its type says (the SDK has no Windows file
// kind, and SubtaskName runs Windows tasks on the block sub-tasks).
func MigrateTypeOf(t TaskType, o OSType) MigrateType {
	switch {
	case o == Windows:
		return WindowsMigrateBlock
	case t == MigrateFile:
		return LinuxMigrateFile
	}
	return LinuxMigrateBlock
}

// OSType is a source's (and a task's) operating system family.
type OSType string

// OS types.
const (
	Linux   OSType = "LINUX"
	Windows OSType = "WINDOWS"
)

// OSTypes lists the OS types.
var OSTypes = []OSType{Linux, Windows}

// Valid tells whether o is one of OSTypes.
func (o OSType) Valid() bool { return contains(OSTypes, o) }

// Action is an operation of POST /v3/tasks/{id}/action.
type Action string

// Task actions: the SDK's UpdateTaskStatusReq operations, and the older
// API's sync_failed_rollback, the one word for the rollback the spec's
// §4.2.7 names (the current enum has none).
const (
	ActionStart        Action = "start" // on a finished task: synchronize it again
	ActionStop         Action = "stop"
	ActionTest         Action = "test"       // launch the target: final sync and cutover
	ActionCloneTest    Action = "clone_test" // clone the target to test it; sync goes on
	ActionRestart      Action = "restart"
	ActionNetworkCheck Action = "network_check"
	ActionClear        Action = "clear"          // drop the target's snapshot of a finished task
	ActionSkip         Action = "skip"           // skip the consistency check sub-task
	ActionMigrationTst Action = "migration_test" // a drill: clone and boot the target; sync goes on
	ActionRollback     Action = "sync_failed_rollback"
)

// Actions lists the task actions smsflow accepts.
var Actions = []Action{ActionStart, ActionStop, ActionTest, ActionCloneTest, ActionRestart, ActionNetworkCheck,
	ActionClear, ActionSkip, ActionMigrationTst, ActionRollback}

// Valid tells whether a is one of Actions.
func (a Action) Valid() bool { return contains(Actions, a) }

// LogCollectStatus is a task's log_collect_status.
type LogCollectStatus string

// Log collection states.
const (
	LogInit       LogCollectStatus = "INIT"
	LogUploading  LogCollectStatus = "UPLOADING"
	LogUploaded   LogCollectStatus = "UPLOADED"
	LogUploadFail LogCollectStatus = "UPLOAD_FAIL"
)

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// CloneState is a clone_test clone's clone_state (the SDK's
// CloneServerCloneState enum).
type CloneState string

// Clone states. smsflow sets CREATING while it copies, then FINISHED or
// ERROR; the others are the hosted service's, accepted on update.
const (
	CloneNotReady  CloneState = "NOT_READY"
	CloneReady     CloneState = "READY"
	ClonePreparing CloneState = "PREPARING"
	CloneCreating  CloneState = "CREATING"
	CloneError     CloneState = "ERROR"
	CloneFinished  CloneState = "FINISHED"
)

// CloneStates lists the clone states.
var CloneStates = []CloneState{CloneNotReady, CloneReady, ClonePreparing, CloneCreating, CloneError, CloneFinished}

// Valid tells whether c is one of CloneStates.
func (c CloneState) Valid() bool { return contains(CloneStates, c) }
