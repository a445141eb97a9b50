package workflows

import (
	"fmt"
	"time"

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
