package sms

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readSpec reads the shared spec beside the repository: from the main
// checkout (/work/main → /work/shared) or from a worktree one level deeper.
// Without it the spec checks are skipped, like smserr's extract check.
func readSpec(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"../../../shared/spec/sms-api-v3.zh.md", "../../../../shared/spec/sms-api-v3.zh.md"} {
		if b, err := os.ReadFile(p); err == nil {
			return string(b)
		}
	}
	t.Skip("shared spec not present")
	return ""
}

var bullet = regexp.MustCompile(`[•●]\s*([A-Za-z_]+)`)

// enumOf returns the enum values of the parameter table row that starts
// with marker, including its continuation lines (rows the spec wraps).
func enumOf(t *testing.T, spec, marker string) []string {
	t.Helper()
	i := strings.Index(spec, marker)
	require.GreaterOrEqual(t, i, 0, "spec row %q", marker)
	row := spec[i:]
	lines := strings.SplitAfter(row, "\n")
	end := len(lines[0])
	// A continuation line has an empty first cell; a page break of the
	// source document may put a blank line and the table's header between.
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "|  ") && strings.TrimSpace(l) != "" &&
			!strings.HasPrefix(l, "| 参数") && !strings.HasPrefix(l, "|-") {
			break
		}
		end += len(l)
	}
	var out []string
	for _, m := range bullet.FindAllStringSubmatch(row[:end], -1) {
		out = append(out, m[1])
	}
	require.NotEmpty(t, out, "spec row %q has no enum", marker)
	return out
}

func strs[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

// TestWordsMatchTheSpec: the vocabulary spells the spec's enums as the
// spec does; the words smsflow or the SDK add are named here.
func TestWordsMatchTheSpec(t *testing.T) {
	spec := readSpec(t)

	assert.ElementsMatch(t, enumOf(t, spec, "| state | 否 | String | 源端服务器状态"), strs(SourceStates))
	assert.ElementsMatch(t, enumOf(t, spec, "| migration_cycle | 否 | String | 迁移周期"), strs(Cycles))
	// Actions: the spec's, the SDK's clear, skip and migration_test, and
	// the older API's sync_failed_rollback.
	assert.ElementsMatch(t, append(enumOf(t, spec, "| operation | 是 | String | 操作任务的具体动作"),
		"clear", "skip", "migration_test", "sync_failed_rollback"), strs(Actions))
	assert.ElementsMatch(t, enumOf(t, spec, "| type | 是 | String | 任务类型"), strs(TaskTypes))

	// Task states: the spec's READY..DELETING; the SDK's SYNC_SUCCESS,
	// SYNC_FAIL, SKIPPING and RESETING besides (the list filter's
	// SYNC_F_ROLLBACK* are RESETING and its outcome under older names).
	specTask := enumOf(t, spec, "| state | 否 | String | 迁移任务状态")
	sdkOnly := []TaskState{TaskSyncSuccess, TaskSyncFail, TaskSkipping, TaskReseting}
	for _, s := range TaskStates {
		if !slices.Contains(sdkOnly, s) {
			assert.Contains(t, specTask, string(s))
		}
	}
	assert.Len(t, TaskStates, 12, "the SDK's ShowTaskResponseState enum has 12 values")
	for _, s := range specTask {
		if !strings.HasPrefix(s, "SYNC_F_") {
			assert.True(t, TaskState(s).Valid(), s)
		}
	}

	// Agent commands (§4.3.2's list); SPEED_LIMIT and NETWORK_CHECK are
	// smsflow's extensions.
	sec := spec[strings.Index(spec, "## 4.3 命令管理"):]
	sec = sec[:strings.Index(sec, "## 4.4")]
	var specCmds []string
	for _, m := range regexp.MustCompile(`命令名称，分为：([A-Z_、]+)`).FindAllStringSubmatch(sec, -1) {
		for _, c := range strings.Split(m[1], "、") {
			if !slices.Contains(specCmds, c) {
				specCmds = append(specCmds, c)
			}
		}
	}
	var ours []string
	for _, c := range Commands {
		if c != CmdSpeedLimit && c != CmdNetworkCheck {
			ours = append(ours, string(c))
		}
	}
	assert.ElementsMatch(t, specCmds, ours)
	for _, c := range Commands {
		assert.True(t, c.Valid(), c)
	}
	assert.False(t, Command("REBOOT").Valid())

	// Every sub-task a task shows is in the spec's (the SDK's) enum of
	// progress reports, CLONE_VM too.
	specSubs := enumOf(t, spec, "| subtask_name |")
	assert.Contains(t, specSubs, string(SubtaskCloneVM))
	for _, tt := range TaskTypes {
		for _, o := range OSTypes {
			for _, s := range Subtasks(tt, o) {
				assert.Contains(t, specSubs, string(s), "%s %s", tt, o)
				assert.True(t, s.Valid(), "%s is a name of the SDK's enum", s)
			}
		}
	}
}

// TestSubtaskName covers every step × task type × OS.
func TestSubtaskName(t *testing.T) {
	// The names per (type, OS), in Plan's order; "" for the steps that show
	// no sub-task (CHECK, START_TARGET). A Windows source has block-level
	// names whatever the type (file-level is refused for Windows, SMS.7712).
	linuxBlock := []Subtask{"", "CREATE_CLOUD_SERVER", "SSL_CONFIG", "ATTACH_AGENT_IMAGE", "FORMAT_DISK_LINUX_BLOCK",
		"MIGRATE_LINUX_BLOCK", "SYNC_LINUX_BLOCK", "CONFIGURE_LINUX_BLOCK", "DETTACH_AGENT_IMAGE", ""}
	linuxFile := []Subtask{"", "CREATE_CLOUD_SERVER", "SSL_CONFIG", "ATTACH_AGENT_IMAGE", "FORMAT_DISK_LINUX_FILE",
		"MIGRATE_LINUX_FILE", "SYNC_LINUX_FILE", "CONFIGURE_LINUX_FILE", "DETTACH_AGENT_IMAGE", ""}
	windows := []Subtask{"", "CREATE_CLOUD_SERVER", "SSL_CONFIG", "ATTACH_AGENT_IMAGE", "FORMAT_DISK_WINDOWS",
		"MIGRATE_WINDOWS_BLOCK", "SYNC_WINDOWS_BLOCK", "CONFIGURE_WINDOWS", "DETTACH_AGENT_IMAGE", ""}
	want := map[TaskType]map[OSType][]Subtask{
		MigrateBlock: {Linux: linuxBlock, Windows: windows},
		MigrateFile:  {Linux: linuxFile, Windows: windows},
	}
	require.Len(t, Plan, 10)
	for _, tt := range TaskTypes {
		for _, o := range OSTypes {
			var shown []Subtask
			for i, s := range Plan {
				got := SubtaskName(s, tt, o)
				assert.Equal(t, want[tt][o][i], got, "%s %s %s", s, tt, o)
				if got != "" {
					shown = append(shown, got)
				}
			}
			assert.Equal(t, shown, Subtasks(tt, o), "%s %s", tt, o)
		}
	}
	assert.Empty(t, SubtaskName("REBOOT", MigrateBlock, Linux), "an unknown step has no sub-task")
}

func TestStepIndex(t *testing.T) {
	for i, s := range Plan {
		assert.Equal(t, i, s.Index())
	}
	assert.Equal(t, -1, Step("REBOOT").Index())
}

func TestParseSubtask(t *testing.T) {
	assert.Equal(t, Subtask(StepDetach), ParseSubtask("DETACH_AGENT_IMAGE"), "the spec's spelling is stored as the SDK's")
	assert.Equal(t, Subtask(StepDetach), ParseSubtask("DETTACH_AGENT_IMAGE"))
	assert.Equal(t, Subtask("MIGRATE_LINUX_BLOCK"), ParseSubtask("MIGRATE_LINUX_BLOCK"))
	assert.True(t, ParseSubtask("DETACH_AGENT_IMAGE").Valid(), "the spec's spelling is accepted")
	assert.False(t, Subtask("DETACH_AGENT_IMAGE").Valid(), "but not stored")
	assert.False(t, ParseSubtask("migrate_linux_block").Valid())
}

func TestValid(t *testing.T) {
	assert.True(t, SourceUnconnected.Valid(), "the matrix knows unconnected")
	assert.False(t, SourceState("paused").Valid())
	assert.False(t, SourceState("").Valid())
	assert.False(t, Cycle("done").Valid())
	assert.True(t, CycleCutovered.Valid())
	assert.True(t, ResultSuccess.Valid() && ResultFail.Valid())
	assert.False(t, CommandResult("SUCCESS").Valid())
	assert.False(t, OSType("linux").Valid(), "OS types are upper case")
	assert.False(t, Action("START").Valid(), "actions are lower case")
}
