package workflows

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.temporal.io/sdk/testsuite"

	"github.com/smsflow/smsflow/internal/sms"
)

// actionReq sends an operator action with its options; see action.
func (s *migrationSuite) actionReq(req ActionRequest) *verdict {
	v := &verdict{}
	s.updates++
	s.env.UpdateWorkflow(UpdateAction, fmt.Sprintf("%s-%d", req.Operation, s.updates), &testsuite.TestUpdateCallback{
		OnReject:   func(err error) { v.done, v.err = true, err },
		OnAccept:   func() {},
		OnComplete: func(_ any, err error) { v.done, v.err = true, err },
	}, req)
	return v
}

// copyParams are the params of every START and SYNC the run queued.
func (s *migrationSuite) copyParams() []map[string]any {
	var out []map[string]any
	for _, tr := range s.transitions {
		if tr.Command == sms.CmdStart || tr.Command == sms.CmdSync {
			out = append(out, tr.CommandParams)
		}
	}
	return out
}

// finishCopy answers the full copy and the final pass, then deletes the
// task once it succeeded.
func (s *migrationSuite) finishCopy() {
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.deleteTask()
	})
}

// TestConsistencyCheckOption: is_need_consistency_check false (the input's
// SkipConsistencyCheck) tells the agent not to verify and skips the
// verification check; by default both happen.
func (s *migrationSuite) TestConsistencyCheckOption() {
	in := input()
	in.SkipConsistencyCheck = true
	s.finishCopy()
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(0, s.checks, "no consistency check")
	params := s.copyParams()
	s.Require().Len(params, 2)
	for _, p := range params {
		s.Equal(false, p["consistency_check"], "the agent is told not to verify: %v", p)
	}
}

func (s *migrationSuite) TestConsistencyCheckByDefault() {
	s.finishCopy()
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(1, s.checks)
	for _, p := range s.copyParams() {
		s.Equal(true, p["consistency_check"], "%v", p)
	}
}

// TestStartTurnsConsistencyCheckOn: start's is_need_consistency_check
// changes the task's setting for the run.
func (s *migrationSuite) TestStartTurnsConsistencyCheckOn() {
	in := input()
	in.AutoStart, in.SkipConsistencyCheck = false, true
	var start *verdict
	s.at(time.Second, func() {
		start = s.actionReq(ActionRequest{Operation: sms.ActionStart, ConsistencyCheck: new(true)})
	})
	s.at(time.Minute, func() {
		s.Equal("", s.code(start))
		s.progress("MIGRATE_LINUX_BLOCK", 100, 0)
	})
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() { s.deleteTask() })
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(1, s.checks, "start asked for the check")
}

// TestStartNetworkCheck: start_network_check queues a NETWORK_CHECK once
// the target is ready, before the copy.
func (s *migrationSuite) TestStartNetworkCheck() {
	in := input()
	in.StartNetworkCheck = true
	s.finishCopy()
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal([]sms.Command{sms.CmdNetworkCheck, sms.CmdStart, sms.CmdSync}, s.commands)
	s.Contains(s.steps, sms.StepFormat, "the target was ready before the check")
}

// TestNeedMigrationTest: a task that needs a migration test keeps syncing
// after the copy; launching it is refused until a clone test ran.
func (s *migrationSuite) TestNeedMigrationTest() {
	in := input()
	in.NeedMigrationTest = true
	var early, clone, launch *verdict
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() {
		s.Equal(sms.TaskSyncing, s.state().TaskState, "it waits for the test instead of cutting over")
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	s.at(3*time.Minute, func() { early = s.action(sms.ActionTest) })
	s.at(3*time.Minute+time.Second, func() {
		s.Equal("SMS.7721", s.code(early), "no launch before a migration test")
		clone = s.action(sms.ActionCloneTest)
	})
	s.at(4*time.Minute, func() {
		s.Equal("", s.code(clone))
		s.Equal(1, s.clones)
		launch = s.action(sms.ActionTest)
	})
	s.at(5*time.Minute, func() {
		s.Equal("", s.code(launch))
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	s.at(6*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(2, s.count("SYNC"), "a pass, then the launch pass")
}

// TestNeedMigrationTestWantsAFinishedClone: a clone that ended in ERROR is
// no migration test: the launch stays refused until one finishes.
func (s *migrationSuite) TestNeedMigrationTestWantsAFinishedClone() {
	in := input()
	in.NeedMigrationTest = true
	s.cloneStates = []sms.CloneState{sms.CloneError}
	var failed, early, clone, launch *verdict
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() { failed = s.action(sms.ActionCloneTest) })
	s.at(4*time.Minute, func() {
		s.Equal("", s.code(failed))
		s.Equal(1, s.clones)
		early = s.action(sms.ActionTest)
	})
	s.at(4*time.Minute+time.Second, func() {
		s.Equal("SMS.7721", s.code(early), "a failed clone is not a migration test")
		clone = s.action(sms.ActionCloneTest)
	})
	s.at(5*time.Minute, func() {
		s.Equal("", s.code(clone))
		s.Equal(2, s.clones)
		launch = s.action(sms.ActionTest)
	})
	s.at(6*time.Minute, func() {
		s.Equal("", s.code(launch), "a finished clone is")
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
}

// target sends PUT /v3/tasks/{id}'s target changes; see action.
func (s *migrationSuite) target(u TargetUpdate) *verdict {
	v := &verdict{}
	s.updates++
	s.env.UpdateWorkflow(UpdateTarget, fmt.Sprintf("target-%d", s.updates), &testsuite.TestUpdateCallback{
		OnReject:   func(err error) { v.done, v.err = true, err },
		OnAccept:   func() {},
		OnComplete: func(_ any, err error) { v.done, v.err = true, err },
	}, u)
	return v
}

// TestTargetUpdateReachesTheRun: a PUT before the run has its target binds
// the existing server it names, with its disk ids, snapshots and
// enterprise project; once the target is made, a rebind is refused
// (SMS.7706) and snapshots can still change until the launch.
func (s *migrationSuite) TestTargetUpdateReachesTheRun() {
	in := input()
	in.AutoStart = false
	var bind, rebind, snaps, late *verdict
	s.at(time.Second, func() {
		bind = s.target(TargetUpdate{ExistServer: new(true), VMID: new("vm-9"), TargetDiskIDs: new("d-1"),
			SnapshotIDs: new("s-1"), EnterpriseProject: new("ep-1")})
	})
	s.at(2*time.Second, func() {
		s.Equal("", s.code(bind))
		s.action(sms.ActionStart)
	})
	s.at(time.Minute, func() {
		s.Equal(sms.StepMigrate, s.state().Step)
		rebind, snaps = s.target(TargetUpdate{VMID: new("vm-10")}), s.target(TargetUpdate{SnapshotIDs: new("s-2")})
	})
	s.at(time.Minute+time.Second, func() {
		s.Equal("SMS.7706", s.code(rebind), "the target is made")
		s.Equal("", s.code(snaps))
		s.progress("MIGRATE_LINUX_BLOCK", 100, 0)
	})
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() { late = s.target(TargetUpdate{SnapshotIDs: new("s-3")}) })
	s.at(3*time.Minute+time.Second, func() {
		s.Equal("SMS.7706", s.code(late), "the target is launched")
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Require().NotEmpty(s.stepInputs)
	create := s.stepInputs[1]
	s.Equal(sms.StepCreate, create.Step)
	s.True(create.ExistServer, "exist_server reached the run")
	s.Equal("vm-9", *create.ExistVM)
	s.Equal("d-1", *create.TargetDiskIDs)
	s.Equal("ep-1", *create.EnterpriseProject)
	last := s.stepInputs[len(s.stepInputs)-1]
	s.Equal("s-2", *last.SnapshotIDs, "the later snapshot ids")
}

// TestTargetRebindRefusedWhileCreating: a rebind while the create step runs
// (no target recorded yet) is refused; before it, or after a failed create,
// it is taken; snapshot ids change at any time before the launch.
func TestTargetRebindRefusedWhileCreating(t *testing.T) {
	rebind, snaps := TargetUpdate{VMID: new("vm-2")}, TargetUpdate{SnapshotIDs: new("s-1")}
	for _, c := range []struct {
		state sms.TaskState
		step  sms.Step
		code  string
	}{
		{sms.TaskRunning, sms.StepCheck, ""},
		{sms.TaskRunning, sms.StepCreate, "SMS.7706"},
		{sms.TaskSkipping, sms.StepConfigure, "SMS.7706"},
		{sms.TaskMigrateFail, sms.StepCreate, ""},
		{sms.TaskAbort, sms.StepCreate, ""},
	} {
		m := &migration{st: &RunState{TaskState: c.state, Step: c.step}}
		assert.Equal(t, c.code, smsCode(m.validateTargetUpdate(rebind)), "%s at %s", c.state, c.step)
		assert.NoError(t, m.validateTargetUpdate(snaps), "%s at %s", c.state, c.step)
	}
}
