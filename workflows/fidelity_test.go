package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/sms"
)

// TestDeleteWhileWaitingForAgent: the source died after its full copy, so
// the run waits for its agent before the sync pass. A delete (§4.2.4
// allows it: the agent is disconnected) ends that wait at once and cleans
// up: the created target goes, nothing fails first, no SYNC is queued.
func (s *migrationSuite) TestDeleteWhileWaitingForAgent() {
	s.at(time.Minute, func() {
		s.agentGone.Store(true)
		s.progress("MIGRATE_LINUX_BLOCK", 100, 0)
	})
	s.at(time.Minute+300*time.Millisecond, func() {
		s.Equal(sms.StepSync, s.state().Step, "waiting for the agent before the sync pass")
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().True(s.env.IsWorkflowCompleted())
	var st Status
	s.Require().NoError(s.env.GetWorkflowResult(&st))
	s.True(st.Deleted)
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskDeleting}, s.taskStates(), "deleted without failing first")
	s.Equal([]sms.Command{sms.CmdStart}, s.commands, "no command for the gone agent's next step")
	s.Require().Len(s.cleanups, 1)
	s.True(s.cleanups[0].DeleteTarget, "the created target goes with the task")
	s.True(s.cleanups[0].AgentRunning, "a STOP waits for the agent, should the source come back")
}

// TestStopWhileWaitingForAgent: a stop ends the wait too; start waits again.
func (s *migrationSuite) TestStopWhileWaitingForAgent() {
	var stop *verdict
	s.at(time.Minute, func() {
		s.agentGone.Store(true)
		s.progress("MIGRATE_LINUX_BLOCK", 100, 0)
	})
	s.at(time.Minute+300*time.Millisecond, func() { stop = s.action(sms.ActionStop) })
	s.at(time.Minute+600*time.Millisecond, func() {
		s.Equal("", s.code(stop))
		s.Equal(sms.TaskAbort, s.state().TaskState)
		s.Equal(sms.StepSync, s.state().Step, "start resumes at the sync pass")
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskAborting, sms.TaskAbort, sms.TaskDeleting}, s.taskStates())
}

// TestStartTargetLater: no dead end for start_target_server=false. The
// task finishes with its target stopped; restart is refused (SMS.7722, the
// target never started), test launches it (START_TARGET starts it this
// time), and then a restart is refused (SMS.7713): a launched target is
// never copied over.
func (s *migrationSuite) TestStartTargetLater() {
	in := input()
	in.StartTargetServer = false
	var early, launch, restart *verdict
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.Equal([]bool{false}, s.startTarget, "left stopped")
		early = s.action(sms.ActionRestart)
	})
	s.at(3*time.Minute+time.Second, func() {
		s.Equal("SMS.7722", s.code(early))
		launch = s.action(sms.ActionTest)
	})
	s.at(4*time.Minute, func() {
		s.Equal("", s.code(launch))
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.Equal([]bool{false, true}, s.startTarget, "test started the target")
		restart = s.action(sms.ActionRestart)
	})
	s.at(4*time.Minute+time.Second, func() {
		s.Equal("SMS.7713", s.code(restart), "a launched target is not copied over")
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(1, s.count("START"), "one copy")
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskMigrateSuccess, sms.TaskRunning, sms.TaskMigrateSuccess, sms.TaskDeleting}, s.taskStates())
	var launched []bool
	for _, tr := range s.transitions {
		if tr.TargetStarted != nil {
			launched = append(launched, *tr.TargetStarted)
		}
	}
	s.Equal([]bool{false, true}, launched, "the task records the launch")
}

// TestWaveTestNotForFinishedMember: the late launch that test gives a
// finished task with a stopped target is the operator's: a wave's test (its
// cutover) still waits, as it did, so wave runs replay unchanged.
func TestWaveTestNotForFinishedMember(t *testing.T) {
	m := &migration{st: &RunState{TaskState: sms.TaskMigrateSuccess}}
	m.st.Wave.Op = sms.ActionTest
	require.NoError(t, ValidateAction(m.st.TaskState, false, false, ActionRequest{Operation: sms.ActionTest}), "the operator's test launches it")
	require.Error(t, m.waveOpRefused(), "the wave's test waits")
	m.st.TaskState, m.st.InSyncLoop = sms.TaskSyncing, true
	require.NoError(t, m.waveOpRefused(), "in the sync loop, the wave's test is its cutover")
}

// TestStartTargetAfterSync: a task left stopped (start_target_server
// false) whose later sync ended SYNC_SUCCESS is still launched by test.
func (s *migrationSuite) TestStartTargetAfterSync() {
	in := input()
	in.StartTargetServer = false
	var resync, launch *verdict
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		resync = s.action(sms.ActionStart)
	})
	s.at(3*time.Minute+time.Second, func() {
		s.Equal("", s.code(resync))
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	s.at(4*time.Minute, func() {
		s.Equal(sms.TaskSyncSuccess, s.state().TaskState)
		s.Equal([]bool{false}, s.startTarget, "still stopped")
		launch = s.action(sms.ActionTest)
	})
	s.at(5*time.Minute, func() {
		s.Equal("", s.code(launch), "test launches it")
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.Equal([]bool{false, true}, s.startTarget, "test started the target")
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
}

// TestWaveTestKeepsNeedMigrationTest: a wave's test waits for a member
// that needs a migration test until its clone test ran; runs started
// before the rule (Rules 0) take it as they did. A member whose
// later sync finished is not launched by the wave either.
func TestWaveTestKeepsNeedMigrationTest(t *testing.T) {
	m := &migration{in: Input{NeedMigrationTest: true, Rules: 1},
		st: &RunState{TaskState: sms.TaskSyncing, InSyncLoop: true}}
	m.st.Wave.Op = sms.ActionTest
	assert.Equal(t, "SMS.7721", smsCode(m.waveOpRefused()), "no clone test yet")
	m.st.MigrationTested = true
	require.NoError(t, m.waveOpRefused(), "tested: the wave cuts it over")
	m.st.MigrationTested, m.in.Rules = false, 0
	require.NoError(t, m.waveOpRefused(), "a run from before the rule replays as it ran")
	m.st.TaskState, m.st.InSyncLoop = sms.TaskSyncSuccess, false
	require.ErrorIs(t, m.waveOpRefused(), errWaveTestFinished)
}
