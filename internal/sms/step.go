package sms

// Step is one step of a migration run, in the order of Plan. A step shows in
// the API as a sub-task whose name also depends on the task type and OS
// (SubtaskName).
type Step string

// Steps of a migration.
const (
	StepCheck     Step = "CHECK"
	StepCreate    Step = "CREATE_CLOUD_SERVER"
	StepSSL       Step = "SSL_CONFIG"
	StepAttach    Step = "ATTACH_AGENT_IMAGE"
	StepFormat    Step = "FORMAT_DISK"
	StepMigrate   Step = "MIGRATE"
	StepSync      Step = "SYNC"
	StepConfigure Step = "CONFIGURE"
	StepDetach    Step = "DETTACH_AGENT_IMAGE" // the SDK's spelling
	StepStart     Step = "START_TARGET"
)

// Plan is the ordered steps of one run.
var Plan = []Step{StepCheck, StepCreate, StepSSL, StepAttach, StepFormat, StepMigrate, StepSync, StepConfigure, StepDetach, StepStart}

// Index is a step's place in Plan (-1 if unknown).
func (s Step) Index() int {
	for i, p := range Plan {
		if p == s {
			return i
		}
	}
	return -1
}

// Subtask is a sub-task's name as the API shows it (the SDK's subtask enum).
type Subtask string

// SubtaskCloneVM is the sub-task of a clone_test.
const SubtaskCloneVM Subtask = "CLONE_VM"

// SubtaskNames are the sub-task names of the SDK's enum
// (UpdateTaskSpeedReqSubtaskName), the detach step spelled as the SDK spells
// it; ParseSubtask maps the spec's spelling onto it.
var SubtaskNames = []Subtask{
	"CREATE_CLOUD_SERVER", "SSL_CONFIG", "ATTACH_AGENT_IMAGE", Subtask(StepDetach),
	"FORMAT_DISK_LINUX", "FORMAT_DISK_LINUX_FILE", "FORMAT_DISK_LINUX_BLOCK", "FORMAT_DISK_WINDOWS",
	"MIGRATE_LINUX_FILE", "MIGRATE_LINUX_BLOCK", "MIGRATE_WINDOWS_BLOCK", SubtaskCloneVM,
	"SYNC_LINUX_FILE", "SYNC_LINUX_BLOCK", "SYNC_WINDOWS_BLOCK",
	"CONFIGURE_LINUX", "CONFIGURE_LINUX_BLOCK", "CONFIGURE_LINUX_FILE", "CONFIGURE_WINDOWS",
}

// Valid tells whether s is one of SubtaskNames.
func (s Subtask) Valid() bool { return contains(SubtaskNames, s) }

// subtaskDetachSpec is the spec's spelling of StepDetach's sub-task; agents
// may report progress under either.
const subtaskDetachSpec Subtask = "DETACH_AGENT_IMAGE"

// ParseSubtask reads a sub-task name an agent reports, mapping the spec's
// spelling of the detach step to the SDK's, which is the one stored.
func ParseSubtask(s string) Subtask {
	if Subtask(s) == subtaskDetachSpec {
		return Subtask(StepDetach)
	}
	return Subtask(s)
}

// SubtaskName is the API name of a step for a task type and OS, "" for steps
// with no sub-task of their own.
func SubtaskName(step Step, taskType TaskType, osType OSType) Subtask {
	win := osType == Windows
	suffix := "_LINUX_BLOCK"
	switch {
	case win:
		suffix = "_WINDOWS_BLOCK"
	case taskType == MigrateFile:
		suffix = "_LINUX_FILE"
	}
	switch step {
	case StepCreate, StepSSL, StepAttach, StepDetach:
		return Subtask(step)
	case StepFormat:
		if win {
			return Subtask(StepFormat) + "_WINDOWS"
		}
		return Subtask(string(StepFormat) + suffix)
	case StepMigrate, StepSync:
		return Subtask(string(step) + suffix)
	case StepConfigure:
		if win {
			return Subtask(StepConfigure) + "_WINDOWS"
		}
		return Subtask(string(StepConfigure) + suffix)
	}
	return ""
}

// Subtasks lists the sub-task names a task shows from its creation.
func Subtasks(taskType TaskType, osType OSType) []Subtask {
	var out []Subtask
	for _, s := range Plan {
		if n := SubtaskName(s, taskType, osType); n != "" {
			out = append(out, n)
		}
	}
	return out
}
