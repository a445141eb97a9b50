package workflows

// Steps of a migration, in order. Agent steps wait for the agent; the others
// are one activity each. The API shows them as sub_tasks by their SubTask
// names, which depend on the task type and OS.
const (
	StepCheck     = "CHECK"
	StepCreate    = "CREATE_CLOUD_SERVER"
	StepSSL       = "SSL_CONFIG"
	StepAttach    = "ATTACH_AGENT_IMAGE"
	StepFormat    = "FORMAT_DISK"
	StepMigrate   = "MIGRATE"
	StepSync      = "SYNC"
	StepConfigure = "CONFIGURE"
	StepDetach    = "DETTACH_AGENT_IMAGE" // the SDK's spelling
	StepStart     = "START_TARGET"
)

// Plan is the ordered steps of one run.
var Plan = []string{StepCheck, StepCreate, StepSSL, StepAttach, StepFormat, StepMigrate, StepSync, StepConfigure, StepDetach, StepStart}

// SubtaskName is the API name of a step for a task type and OS (the SDK's
// subtask enum), "" for steps with no sub-task of their own.
func SubtaskName(step, taskType, osType string) string {
	win := osType == "WINDOWS"
	file := taskType == "MIGRATE_FILE"
	suffix := "_LINUX_BLOCK"
	switch {
	case win:
		suffix = "_WINDOWS_BLOCK"
	case file:
		suffix = "_LINUX_FILE"
	}
	switch step {
	case StepCreate, StepSSL, StepAttach, StepDetach:
		return step
	case StepFormat:
		if win {
			return "FORMAT_DISK_WINDOWS"
		}
		return "FORMAT_DISK" + suffix
	case StepMigrate:
		return "MIGRATE" + suffix
	case StepSync:
		return "SYNC" + suffix
	case StepConfigure:
		if win {
			return "CONFIGURE_WINDOWS"
		}
		return "CONFIGURE" + suffix
	}
	return ""
}

// Subtasks lists the sub-task names a task shows from its creation.
func Subtasks(taskType, osType string) []string {
	var out []string
	for _, s := range Plan {
		if n := SubtaskName(s, taskType, osType); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// StepIndex is a step's place in the plan (-1 if unknown).
func StepIndex(step string) int {
	for i, s := range Plan {
		if s == step {
			return i
		}
	}
	return -1
}
