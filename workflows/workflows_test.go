package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/speedlimit"
)

type migrationSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment

	mu          sync.Mutex
	transitions []activities.Transition
	steps       []sms.Step
	stepInputs  []activities.StepInput
	commands    []sms.Command
	speeds      []activities.SpeedInput
	checks      int                     // consistency checks run
	checkErr    error                   // what the consistency check answers
	limits      []activities.SpeedInput // every limit recorded; speeds: those sent to the agent
	cleanups    []activities.CleanupInput
	clones      int
	cloneNames  []string
	cloneStates []sms.CloneState // what Clone answers, in turn (then FINISHED)
	updates     int
	stepErr     map[sms.Step][]error // errors RunStep returns for a step, in turn
	agentGone   atomic.Bool          // WaitAgent waits (wall time) for an agent that does not come
	startTarget []bool               // StartTarget of each START_TARGET step
	// Target snapshots: the provider the snapshot activities use (nil: a
	// provider without snapshots), the target Create makes, what was
	// taken, restored and deleted, and the error a snapshot answers.
	snapProvider provider.Snapshotter
	snapTarget   *provider.Target
	snapshots    []string
	restores     []string
	snapDeletes  int
	snapErr      error
	waitLimits   []time.Duration // the ScheduleToCloseTimeout of each WaitAgent
}

func TestMigrationSuite(t *testing.T) { suite.Run(t, new(migrationSuite)) }

func (s *migrationSuite) SetupTest() {
	s.transitions, s.steps, s.commands, s.speeds, s.limits, s.cleanups, s.clones = nil, nil, nil, nil, nil, nil, 0
	s.stepInputs = nil
	s.checks, s.checkErr, s.cloneNames, s.cloneStates = 0, nil, nil, nil
	s.stepErr = map[sms.Step][]error{}
	s.agentGone.Store(false)
	s.startTarget, s.waitLimits = nil, nil
	s.snapProvider, s.snapTarget, s.snapshots, s.restores, s.snapDeletes, s.snapErr = nil, nil, nil, nil, 0, nil
	s.env = s.newEnv()
}

// newEnv is a test environment whose mocked activities record into the
// suite: a test that follows a task across continue-as-new runs one
// environment per run, all recording in one place.
func (s *migrationSuite) newEnv() *testsuite.TestWorkflowEnvironment {
	env := s.NewTestWorkflowEnvironment()
	// The test server's clock is simulated, but a run is given up after 3 s
	// of real time by default: under -race on a loaded CI machine that is
	// a spurious failure, not the workflow's.
	env.SetTestTimeout(2 * time.Minute)
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(acts.Apply, mock.Anything, mock.Anything).Return(func(_ context.Context, tr activities.Transition) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.transitions = append(s.transitions, tr)
		if tr.Command != "" {
			s.commands = append(s.commands, tr.Command)
		}
		return nil
	})
	env.OnActivity(acts.RunStep, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.StepInput) (activities.StepOutput, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if errs := s.stepErr[in.Step]; len(errs) > 0 {
			s.stepErr[in.Step] = errs[1:]
			if errs[0] != nil {
				return activities.StepOutput{}, errs[0]
			}
		}
		s.steps = append(s.steps, in.Step)
		if in.Step == sms.StepStart {
			s.startTarget = append(s.startTarget, in.StartTarget)
		}
		s.stepInputs = append(s.stepInputs, in)
		if in.Step == sms.StepCreate {
			if s.snapTarget != nil {
				return activities.StepOutput{Target: s.snapTarget}, nil
			}
			return activities.StepOutput{Target: &provider.Target{VMID: "vm-1", Location: "/tmp/t", Created: true}}, nil
		}
		return activities.StepOutput{}, nil
	})
	env.OnActivity(acts.WaitAgent, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.WaitAgentInput) error {
		s.mu.Lock()
		s.waitLimits = append(s.waitLimits, activity.GetInfo(ctx).ScheduleToCloseTimeout)
		s.mu.Unlock()
		if !s.agentGone.Load() {
			return nil
		}
		// The source died: the wait ends only when the run gives up on it.
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
		return errors.New("the agent is not connected")
	})
	env.OnActivity(acts.PushSpeedLimit, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SpeedInput) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.limits = append(s.limits, in)
		if in.Notify {
			s.speeds = append(s.speeds, in)
		}
		return nil
	})
	env.OnActivity(acts.CheckConsistency, mock.Anything, mock.Anything).Return(func(_ context.Context, _ activities.Ref) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.checks++
		return s.checkErr
	})
	env.OnActivity(acts.Cleanup, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CleanupInput) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cleanups = append(s.cleanups, in)
		return nil
	})
	env.OnActivity(acts.Clone, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CloneInput) (activities.CloneResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.clones++
		s.cloneNames = append(s.cloneNames, in.Name)
		cs := sms.CloneFinished
		if len(s.cloneStates) > 0 {
			cs, s.cloneStates = s.cloneStates[0], s.cloneStates[1:]
		}
		return activities.CloneResult{CloneState: cs}, nil
	})
	// The snapshot activities as activities.Activities runs them, on the
	// suite's provider (a real local one where a test sets it).
	env.OnActivity(acts.SnapshotTarget, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.SnapshotInput) (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.snapErr != nil {
			return false, s.snapErr
		}
		if s.snapProvider == nil {
			return false, nil
		}
		if err := s.snapProvider.Snapshot(ctx, in.Target, in.ID); err != nil {
			return false, err
		}
		s.snapshots = append(s.snapshots, in.ID)
		return true, nil
	})
	env.OnActivity(acts.RestoreTarget, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.SnapshotInput) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.restores = append(s.restores, in.ID)
		if err := s.snapProvider.Restore(ctx, in.Target, in.ID); err != nil {
			if errors.Is(err, provider.ErrNoSnapshot) {
				return temporal.NewNonRetryableApplicationError(err.Error(), "SMS.1410", err)
			}
			return err
		}
		return nil
	})
	env.OnActivity(acts.DeleteSnapshots, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.SnapshotInput) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.snapDeletes++
		if s.snapProvider == nil {
			return nil
		}
		return s.snapProvider.DeleteSnapshots(ctx, in.Target)
	})
	return env
}

func input() Input {
	return Input{TaskID: "t1", DomainID: "d1", SourceID: "s1", MigProjectID: "p1", Type: "MIGRATE_BLOCK", OSType: "LINUX",
		AutoStart: true, StartTargetServer: true, TimeZone: "UTC", AgentStepTimeout: time.Hour, SyncInterval: 10 * time.Minute}
}

// at schedules fn after d of workflow time.
func (s *migrationSuite) at(d time.Duration, fn func()) { s.env.RegisterDelayedCallback(fn, d) }

func (s *migrationSuite) progress(sub sms.Subtask, pct int32, speed float64) {
	s.env.SignalWorkflow(SignalProgress, Progress{Subtask: sub, Progress: pct, MigrateSpeed: speed})
}

// verdict is the outcome of an update, known once the workflow ran it.
type verdict struct {
	done bool
	err  error
}

// action sends an operator action; its verdict is filled in when the
// workflow has processed it (check it in a later callback).
func (s *migrationSuite) action(op sms.Action) *verdict {
	v := &verdict{}
	s.updates++
	s.env.UpdateWorkflow(UpdateAction, fmt.Sprintf("%s-%d", op, s.updates), &testsuite.TestUpdateCallback{
		OnReject:   func(err error) { v.done, v.err = true, err },
		OnAccept:   func() {},
		OnComplete: func(_ any, err error) { v.done, v.err = true, err },
	}, ActionRequest{Operation: op})
	return v
}

// code is the SMS code of a finished verdict ("" when accepted).
func (s *migrationSuite) code(v *verdict) string {
	s.Require().True(v.done, "the update has not been processed yet")
	return smsCode(v.err)
}

func (s *migrationSuite) deleteTask() {
	s.env.UpdateWorkflow(UpdateDelete, "delete", &testsuite.TestUpdateCallback{
		OnReject: func(err error) { s.Fail("delete rejected", err.Error()) }, OnAccept: func() {}, OnComplete: func(any, error) {},
	})
}

func (s *migrationSuite) state() Status {
	v, err := s.env.QueryWorkflow(QueryState)
	s.Require().NoError(err)
	var st Status
	s.Require().NoError(v.Get(&st))
	return st
}

func (s *migrationSuite) taskStates() []sms.TaskState {
	var out []sms.TaskState
	for _, t := range s.transitions {
		if t.TaskState != "" {
			out = append(out, t.TaskState)
		}
	}
	return out
}

// lastFailure is the failure the last failing transition recorded; the test
// stops if none did.
func (s *migrationSuite) lastFailure() *activities.Fail {
	var fail *activities.Fail
	for _, t := range s.transitions {
		if t.Failure != nil {
			fail = t.Failure
		}
	}
	s.Require().NotNil(fail, "a transition recorded a failure")
	return fail
}

func smsCode(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type()
	}
	return ""
}

func (s *migrationSuite) TestHappyPath() {
	s.at(time.Minute, func() {
		s.Equal(sms.TaskRunning, s.state().TaskState)
		s.Equal(sms.StepMigrate, s.state().Step)
		s.progress("MIGRATE_LINUX_BLOCK", 40, 0)
		s.progress("SYNC_LINUX_BLOCK", 100, 0) // another step's report is ignored
	})
	s.at(2*time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() {
		s.Equal(sms.StepSync, s.state().Step, "the final sync pass")
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	s.at(4*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().True(s.env.IsWorkflowCompleted())
	var st Status
	s.Require().NoError(s.env.GetWorkflowResult(&st))
	s.True(st.Deleted)
	s.Equal([]sms.Step{sms.StepCheck, sms.StepCreate, sms.StepSSL, sms.StepAttach, sms.StepFormat, sms.StepConfigure, sms.StepDetach, sms.StepStart}, s.steps)
	s.Equal([]sms.Command{"START", "SYNC"}, s.commands)
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskMigrateSuccess, sms.TaskDeleting}, s.taskStates())
	last := s.transitions[len(s.transitions)-2] // before DELETING
	s.Equal(sms.SourceFinished, last.SourceState)
	s.Equal(sms.CycleCutovered, last.SourceCycle)
	s.True(last.Finished)
	s.Require().NotNil(last.TargetStarted)
	s.True(*last.TargetStarted)
	s.Require().Len(s.cleanups, 1)
	s.True(s.cleanups[0].DeleteTarget, "the created target goes with the task")
	s.Equal("vm-1", s.cleanups[0].Target.VMID)
}

func (s *migrationSuite) TestWaitsForStartWhenNotAutoStart() {
	in := input()
	in.AutoStart = false
	var stop, test, restart, reboot, start, again *verdict
	s.at(time.Minute, func() {
		s.Equal(sms.TaskReady, s.state().TaskState)
		stop, test, restart, reboot = s.action(sms.ActionStop), s.action(sms.ActionTest), s.action(sms.ActionRestart), s.action("reboot")
	})
	s.at(time.Minute+time.Second, func() {
		s.Equal("SMS.7714", s.code(stop), "only running tasks stop")
		s.Equal("SMS.7721", s.code(test))
		s.Equal("SMS.7722", s.code(restart))
		s.Equal("SMS.9001", s.code(reboot))
		s.Empty(s.steps, "nothing ran before start")
		start = s.action(sms.ActionStart)
	})
	s.at(2*time.Minute, func() {
		s.Equal("", s.code(start))
		again = s.action(sms.ActionStart)
	})
	s.at(2*time.Minute+time.Second, func() {
		s.Equal("SMS.7713", s.code(again), "already running")
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Contains(s.commands, sms.CmdStart)
	s.Require().Len(s.cleanups, 1)
	s.True(s.cleanups[0].AgentRunning, "deleted mid-copy: the agent is told to stop")
}

func (s *migrationSuite) TestFailureAndRestartResumesFailedStep() {
	s.stepErr[sms.StepFormat] = []error{temporal.NewNonRetryableApplicationError("disk full", "SMS.0519", nil)}
	var stop *verdict
	s.at(time.Minute, func() {
		st := s.state()
		s.Equal(sms.TaskMigrateFail, st.TaskState)
		s.Equal(sms.StepFormat, st.FailedStep)
		stop = s.action(sms.ActionStop)
	})
	s.at(time.Minute+time.Second, func() {
		s.Equal("SMS.7714", s.code(stop))
		s.action(sms.ActionRestart) // restart a failed task
	})
	s.at(2*time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(4*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	// CHECK..ATTACH ran once; FORMAT failed, then ran on the restart.
	s.Equal([]sms.Step{sms.StepCheck, sms.StepCreate, sms.StepSSL, sms.StepAttach, sms.StepFormat, sms.StepConfigure, sms.StepDetach, sms.StepStart}, s.steps)
	fail := s.lastFailure()
	s.Equal("SMS.0519", fail.Code)
	s.Equal(sms.StepFormat, fail.Step)
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskMigrateFail, sms.TaskRunning, sms.TaskMigrateSuccess, sms.TaskDeleting}, s.taskStates())
}

func (s *migrationSuite) TestRetryableStepErrorsAreRetried() {
	s.stepErr[sms.StepCreate] = []error{errors.New("cloud busy"), errors.New("cloud busy")}
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.NotContains(s.taskStates(), sms.TaskMigrateFail)
}

func (s *migrationSuite) TestStopAndResume() {
	s.at(time.Minute, func() {
		s.progress("MIGRATE_LINUX_BLOCK", 30, 0)
		s.action(sms.ActionStop)
	})
	s.at(2*time.Minute, func() {
		s.Equal(sms.TaskAborting, s.state().TaskState, "waits for the agent")
		s.env.SignalWorkflow(SignalCommand, CommandResult{Command: "STOP", Success: true})
	})
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskAbort, s.state().TaskState)
		s.Equal(sms.StepMigrate, s.state().Step)
		s.action(sms.ActionStart)
	})
	s.at(4*time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(5*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(6*time.Minute, func() { s.deleteTask() })
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal([]sms.Command{"START", "STOP", "START", "SYNC"}, s.commands, "resumes the copy (the agent continues from its checkpoint)")
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskAborting, sms.TaskAbort, sms.TaskRunning, sms.TaskMigrateSuccess, sms.TaskDeleting}, s.taskStates())
}

func (s *migrationSuite) TestContinuousSyncCloneAndLaunch() {
	in := input()
	in.Syncing = true
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() {
		s.Equal(sms.TaskSyncing, s.state().TaskState)
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	// The next pass starts after SyncInterval (10 min).
	s.at(13*time.Minute, func() {
		s.Equal(2, s.count("SYNC"), "a second pass after the interval")
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	var clone, launch, restart *verdict
	s.at(14*time.Minute, func() {
		s.Equal(2, s.state().SyncRounds)
		clone = s.action(sms.ActionCloneTest)
	})
	s.at(15*time.Minute, func() {
		s.Equal("", s.code(clone))
		s.Equal(1, s.clones)
		launch = s.action(sms.ActionTest)
	})
	s.at(16*time.Minute, func() {
		s.Equal("", s.code(launch))
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	s.at(17*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		restart = s.action(sms.ActionRestart)
	})
	s.at(17*time.Minute+time.Second, func() { s.Equal("SMS.7713", s.code(restart), "a launched target is not copied over") })
	s.at(18*time.Minute, func() { s.deleteTask() })
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(3, s.count("SYNC"), "two passes and the launch pass")
	s.Equal(1, s.count("START"), "no second copy")
}

// TestNetworkCheckWhileCopyingAndSyncing: a network check asked for during
// the full copy and during continuous sync reaches the agent at once,
// without disturbing the copy.
func (s *migrationSuite) TestNetworkCheckWhileCopyingAndSyncing() {
	in := input()
	in.Syncing = true
	var during, syncing *verdict
	s.at(30*time.Second, func() {
		s.Equal(sms.TaskRunning, s.state().TaskState)
		during = s.action(sms.ActionNetworkCheck)
	})
	s.at(40*time.Second, func() {
		s.Equal("", s.code(during))
		s.Equal(1, s.count("NETWORK_CHECK"), "sent while the copy runs")
	})
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskSyncing, s.state().TaskState)
		syncing = s.action(sms.ActionNetworkCheck)
	})
	s.at(3*time.Minute+10*time.Second, func() {
		s.Equal("", s.code(syncing))
		s.Equal(2, s.count("NETWORK_CHECK"), "sent between sync passes")
		s.Equal(sms.TaskSyncing, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(1, s.count("START"), "the copy was not disturbed")
}

func (s *migrationSuite) count(cmd sms.Command) int {
	n := 0
	for _, c := range s.commands {
		if c == cmd {
			n++
		}
	}
	return n
}

func (s *migrationSuite) TestSpeedWindowsPushedAtBoundaries() {
	in := input()
	in.SpeedLimit = 100
	in.SpeedRules = []speedlimit.Rule{{Start: "08:00", End: "18:00", Speed: 40, OverSpeedThreshold: 50}}
	s.env.SetStartTime(time.Date(2026, 11, 27, 7, 58, 0, 0, time.UTC))
	s.at(time.Minute, func() {
		s.Empty(s.speeds, "the limit went out with START")
		s.Equal(int32(100), s.state().Limit.Mbps)
		s.Require().Len(s.limits, 1, "the limit in force is recorded from the start")
		s.Equal(int32(100), s.limits[0].Mbps)
	})
	s.at(3*time.Minute, func() {
		s.Require().Len(s.speeds, 1, "08:00: the window's limit is pushed")
		s.Equal(int32(40), s.speeds[0].Mbps)
		// New rules take effect at once.
		s.env.SignalWorkflow(SignalSpeed, SpeedUpdate{SpeedLimit: 100, Rules: []speedlimit.Rule{{Start: "08:00", End: "18:00", Speed: 20}}})
	})
	s.at(4*time.Minute, func() {
		s.Require().Len(s.speeds, 2)
		s.Equal(int32(20), s.speeds[1].Mbps)
		s.progress("MIGRATE_LINUX_BLOCK", 100, 0)
	})
	s.at(5*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(6*time.Minute, func() { s.deleteTask() })
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	for _, tr := range s.transitions {
		if tr.Command == "START" {
			s.EqualValues(100, tr.CommandParams["speed_limit"], "START carries the limit in force")
		}
	}
}

func (s *migrationSuite) TestOverSpeedStopsTheTask() {
	in := input()
	in.SpeedLimit, in.OverSpeedThreshold = 100, 10
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 10, 150) })
	s.at(time.Minute+10*time.Second, func() { s.progress("MIGRATE_LINUX_BLOCK", 11, 105) }) // back under: reset
	s.at(time.Minute+20*time.Second, func() { s.progress("MIGRATE_LINUX_BLOCK", 12, 150) })
	s.at(time.Minute+40*time.Second, func() {
		s.Equal(sms.TaskRunning, s.state().TaskState, "20 s over is tolerated")
		s.progress("MIGRATE_LINUX_BLOCK", 13, 150)
	})
	s.at(time.Minute+55*time.Second, func() { s.progress("MIGRATE_LINUX_BLOCK", 14, 160) })
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskMigrateFail, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	fail := s.lastFailure()
	s.Equal("SMS.1802", fail.Code)
	s.Contains(fail.Msg, "over the limit")
	s.Contains(s.commands, sms.CmdStop)
}

func (s *migrationSuite) TestSilentAgentFailsTheStep() {
	in := input()
	in.AgentStepTimeout = 10 * time.Minute
	s.at(5*time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 10, 0) })
	s.at(14*time.Minute, func() { s.Equal(sms.TaskRunning, s.state().TaskState, "progress reset the clock") })
	s.at(16*time.Minute, func() {
		s.Equal(sms.TaskMigrateFail, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	fail := s.lastFailure()
	s.Equal("SMS.5403", fail.Code)
}

// TestWaitAgentIsBounded: the wait for the agent has a total limit (twice
// the step timeout) over its retries, not only one per attempt.
func (s *migrationSuite) TestWaitAgentIsBounded() {
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() { s.deleteTask() })
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Require().NotEmpty(s.waitLimits)
	for _, l := range s.waitLimits {
		s.Equal(2*input().AgentStepTimeout, l)
	}
}

func (s *migrationSuite) TestAgentCommandFailure() {
	s.at(time.Minute, func() {
		s.env.SignalWorkflow(SignalCommand, CommandResult{Command: "START", Success: false, Detail: "disk /dev/vdb vanished"})
	})
	s.at(2*time.Minute, func() {
		s.Equal(sms.TaskMigrateFail, s.state().TaskState)
		s.Equal(sms.StepMigrate, s.state().FailedStep)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
}

func TestValidateAction(t *testing.T) {
	states := []sms.TaskState{sms.TaskReady, sms.TaskRunning, sms.TaskSyncing, sms.TaskMigrateSuccess, sms.TaskMigrateFail, sms.TaskAborting, sms.TaskAbort, sms.TaskDeleting}
	allowed := map[sms.Action][]sms.TaskState{
		sms.ActionStart:        {sms.TaskReady, sms.TaskAbort, sms.TaskMigrateFail, sms.TaskMigrateSuccess},
		sms.ActionStop:         {sms.TaskRunning, sms.TaskSyncing},
		sms.ActionTest:         {sms.TaskSyncing},
		sms.ActionCloneTest:    {sms.TaskSyncing},
		sms.ActionRestart:      {sms.TaskMigrateFail},
		sms.ActionNetworkCheck: {sms.TaskReady, sms.TaskRunning, sms.TaskSyncing, sms.TaskAbort},
	}
	codes := map[sms.Action]string{sms.ActionStart: "SMS.7713", sms.ActionStop: "SMS.7714", sms.ActionTest: "SMS.7721", sms.ActionCloneTest: "SMS.7721",
		sms.ActionRestart: "SMS.7722", sms.ActionNetworkCheck: "SMS.7713"}
	for op, ok := range allowed {
		for _, st := range states {
			err := ValidateAction(st, true, true, ActionRequest{Operation: op})
			want := codes[op]
			if op == sms.ActionRestart && st == sms.TaskMigrateSuccess {
				want = "SMS.7713" // launched (the loop's target is started)
			}
			if contains(ok, st) {
				assert.NoError(t, err, "%s in %s", op, st)
			} else {
				assert.Equal(t, want, smsCode(err), "%s in %s", op, st)
			}
		}
	}
	assert.Equal(t, "SMS.7721", smsCode(ValidateAction(sms.TaskSyncing, false, true, ActionRequest{Operation: sms.ActionTest})), "not in continuous sync")
	assert.Equal(t, "SMS.7722", smsCode(ValidateAction(sms.TaskMigrateSuccess, false, false, ActionRequest{Operation: sms.ActionRestart})), "target not started")
	assert.Equal(t, "SMS.7713", smsCode(ValidateAction(sms.TaskMigrateSuccess, false, true, ActionRequest{Operation: sms.ActionRestart})), "launched: not copied over")
	require.NoError(t, ValidateAction(sms.TaskMigrateSuccess, false, false, ActionRequest{Operation: sms.ActionTest}), "a stopped target is launched later")
	assert.Equal(t, "SMS.7721", smsCode(ValidateAction(sms.TaskMigrateSuccess, false, false, ActionRequest{Operation: sms.ActionCloneTest})))
	assert.Equal(t, "SMS.7719", smsCode(ValidateDelete(sms.TaskDeleting)))
	require.NoError(t, ValidateDelete(sms.TaskRunning))
}

// TestValidateVocabulary: the SDK's later actions and states — a start
// synchronizes a finished task and SMS.7715 refuses one mid-pass; clear
// wants a finished task (SMS.8112), sync_failed_rollback a failed sync
// (SMS.7718), skip a running task or a failed consistency check;
// migration_test is clone_test's rule; runs from before the version refuse
// them all.
func TestValidateVocabulary(t *testing.T) {
	all := []sms.TaskState{sms.TaskReady, sms.TaskRunning, sms.TaskSyncing, sms.TaskMigrateSuccess, sms.TaskSyncSuccess,
		sms.TaskMigrateFail, sms.TaskSyncFail, sms.TaskAborting, sms.TaskAbort, sms.TaskSkipping, sms.TaskDeleting, sms.TaskReseting}
	require.ElementsMatch(t, sms.TaskStates, all)
	type rule struct {
		op      sms.Action
		scope   ActionScope
		allowed []sms.TaskState
		code    string // for every other state
	}
	v := ActionScope{Vocab: true}
	loop := ActionScope{Vocab: true, InSyncLoop: true}
	for _, r := range []rule{
		{sms.ActionStart, v, []sms.TaskState{sms.TaskReady, sms.TaskAbort, sms.TaskMigrateFail, sms.TaskMigrateSuccess,
			sms.TaskSyncSuccess, sms.TaskSyncFail}, ""},
		{sms.ActionClear, v, []sms.TaskState{sms.TaskMigrateSuccess, sms.TaskSyncSuccess, sms.TaskSyncFail}, "SMS.8112"},
		{sms.ActionRollback, v, []sms.TaskState{sms.TaskSyncFail}, "SMS.7718"},
		{sms.ActionSkip, v, []sms.TaskState{sms.TaskRunning, sms.TaskSyncing}, "SMS.7713"},
		{sms.ActionSkip, ActionScope{Vocab: true, CheckFailed: true}, []sms.TaskState{sms.TaskRunning, sms.TaskSyncing, sms.TaskMigrateFail}, "SMS.7713"},
		{sms.ActionMigrationTst, loop, []sms.TaskState{sms.TaskSyncing}, "SMS.7721"},
		{sms.ActionMigrationTst, v, nil, "SMS.7721"},
		{sms.ActionStop, v, []sms.TaskState{sms.TaskRunning, sms.TaskSyncing, sms.TaskSkipping}, "SMS.7714"},
		{sms.ActionNetworkCheck, v, []sms.TaskState{sms.TaskReady, sms.TaskRunning, sms.TaskSyncing, sms.TaskAbort, sms.TaskSkipping}, "SMS.7713"},
		// A finished target left stopped is launched by test, after a
		// later sync too.
		{sms.ActionTest, v, []sms.TaskState{sms.TaskMigrateSuccess, sms.TaskSyncSuccess}, "SMS.7721"},
		{sms.ActionTest, ActionScope{Vocab: true, TargetStarted: true}, nil, "SMS.7721"},
	} {
		for _, st := range all {
			err := ValidateActionIn(st, r.scope, ActionRequest{Operation: r.op})
			switch {
			case contains(r.allowed, st):
				assert.NoError(t, err, "%s in %s", r.op, st)
			case r.code != "":
				assert.Equal(t, r.code, smsCode(err), "%s in %s", r.op, st)
			default:
				assert.Error(t, err, "%s in %s", r.op, st)
			}
		}
	}
	// start: SMS.7715 while a pass that is not the loop's runs, SMS.7713
	// otherwise; in the loop it is refused as before.
	start := ActionRequest{Operation: sms.ActionStart}
	assert.Equal(t, "SMS.7715", smsCode(ValidateActionIn(sms.TaskSyncing, v, start)))
	assert.Equal(t, "SMS.7713", smsCode(ValidateActionIn(sms.TaskSyncing, loop, start)))
	for _, st := range []sms.TaskState{sms.TaskRunning, sms.TaskSkipping, sms.TaskReseting, sms.TaskAborting, sms.TaskDeleting} {
		assert.Equal(t, "SMS.7713", smsCode(ValidateActionIn(st, v, start)), st)
	}
	// A run from before the version: none of the new actions, and a start
	// on a finished task is refused as it was.
	old := ActionScope{InSyncLoop: true, CheckFailed: true}
	for _, op := range []sms.Action{sms.ActionClear, sms.ActionSkip, sms.ActionMigrationTst, sms.ActionRollback} {
		assert.Equal(t, "SMS.7713", smsCode(ValidateActionIn(sms.TaskSyncFail, old, ActionRequest{Operation: op})), op)
		assert.Equal(t, "SMS.7713", smsCode(ValidateActionIn(sms.TaskSyncing, old, ActionRequest{Operation: op})), op)
	}
	assert.Equal(t, "SMS.7713", smsCode(ValidateActionIn(sms.TaskMigrateSuccess, old, start)))
	// A run that snapshots targets rolls back only onto a snapshot
	// (SMS.8113 without one); SMS.7718 still comes first.
	rb := ActionRequest{Operation: sms.ActionRollback}
	snaps := ActionScope{Vocab: true, Snapshots: true}
	assert.Equal(t, "SMS.8113", smsCode(ValidateActionIn(sms.TaskSyncFail, snaps, rb)))
	assert.Equal(t, "SMS.7718", smsCode(ValidateActionIn(sms.TaskSyncSuccess, snaps, rb)))
	snaps.HasSnapshot = true
	assert.NoError(t, ValidateActionIn(sms.TaskSyncFail, snaps, rb))
}

func contains[T comparable](xs []T, x T) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestMismatchFailsBeforeCutover: the agent's verification found blocks that
// differ; the task fails with SMS.1511 after the final sync and never
// configures or starts the target.
func (s *migrationSuite) TestMismatchFailsBeforeCutover() {
	in := input()
	s.checkErr = temporal.NewNonRetryableApplicationError("/dev/vda: 3 of 4096 differ", "SMS.1511", nil)
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(5*time.Minute, func() {
		s.Equal(sms.TaskMigrateFail, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(1, s.checks)
	fail := s.lastFailure()
	s.Equal("SMS.1511", fail.Code)
	s.NotContains(s.steps, sms.StepConfigure, "a target that differs is not configured")
	s.NotContains(s.steps, sms.StepStart)
}

func TestAgentFailure(t *testing.T) {
	cases := []struct {
		detail, code, msg string
	}{
		{`{"error_code":"SMS.0515","msg":"/dev/vda ends at 100"}`, "SMS.0515", "/dev/vda ends at 100"},
		{`{"error_code":"SMS.0807"}`, "SMS.0807", `{"error_code":"SMS.0807"}`},
		{`{"error_code":"SMS.NOPE","msg":"x"}`, "SMS.1801", `{"error_code":"SMS.NOPE","msg":"x"}`},
		{`{"msg":"disk read error"}`, "SMS.1801", `{"msg":"disk read error"}`},
		{`not json`, "SMS.1801", "not json"},
	}
	for _, c := range cases {
		code, msg := AgentFailure(c.detail)
		assert.Equal(t, c.code, string(code), c.detail)
		assert.Equal(t, c.msg, msg, c.detail)
	}
}

// finish runs the copy and the final pass: the task is MIGRATE_SUCCESS at
// 3 minutes.
func (s *migrationSuite) finish() {
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
}

// TestFinishedTaskSyncsAgain: a start on a finished task is one more pass
// into its target (SYNCING, then SYNC_SUCCESS); a failed pass is SYNC_FAIL,
// which sync_failed_rollback takes back to MIGRATE_SUCCESS through
// RESETING (SMS.7718 elsewhere), restoring the target's snapshot from
// before the pass; clear deletes the snapshot and forgets it.
func (s *migrationSuite) TestFinishedTaskSyncsAgain() {
	s.localTarget()
	s.finish()
	var rollback, resync, midPass, clr, rollback2, sync2, sync3 *verdict
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		rollback = s.action(sms.ActionRollback)
		resync = s.action(sms.ActionStart)
	})
	s.at(3*time.Minute+time.Second, func() {
		s.Equal("SMS.7718", s.code(rollback), "only a failed sync rolls back")
		s.Equal("", s.code(resync))
		s.Equal(sms.TaskSyncing, s.state().TaskState)
		midPass = s.action(sms.ActionStart)
	})
	s.at(3*time.Minute+2*time.Second, func() {
		s.Equal("SMS.7715", s.code(midPass), "a pass is under way")
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	s.at(4*time.Minute, func() {
		s.Equal(sms.TaskSyncSuccess, s.state().TaskState)
		clr = s.action(sms.ActionClear)
		sync2 = s.action(sms.ActionStart)
	})
	s.at(4*time.Minute+time.Second, func() {
		s.Equal("", s.code(clr))
		s.Equal("", s.code(sync2))
		s.env.SignalWorkflow(SignalCommand, CommandResult{Command: "SYNC", Success: false, Detail: "disk /dev/vdb vanished"})
	})
	s.at(5*time.Minute, func() {
		s.Equal(sms.TaskSyncFail, s.state().TaskState)
		rollback2 = s.action(sms.ActionRollback)
	})
	s.at(5*time.Minute+time.Second, func() {
		s.Equal("", s.code(rollback2))
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		sync3 = s.action(sms.ActionStart)
	})
	s.at(5*time.Minute+2*time.Second, func() {
		s.Equal("", s.code(sync3))
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskMigrateSuccess, sms.TaskSyncing, sms.TaskSyncSuccess,
		sms.TaskSyncing, sms.TaskSyncFail, sms.TaskReseting, sms.TaskMigrateSuccess, sms.TaskSyncing, sms.TaskDeleting}, s.taskStates())
	s.Equal([]sms.Command{"START", "SYNC", "SYNC", "SYNC", "SYNC"}, s.commands)
	cleared := 0
	for _, tr := range s.transitions {
		if tr.ClearSnapshot {
			cleared++
		}
	}
	s.Equal(1, cleared)
	s.Equal(1, s.snapDeletes, "clear deleted the snapshots")
	s.Require().Len(s.snapshots, 3, "each pass snapshots the target first")
	// The pass after the rollback resends every block: the agent's
	// hashes describe the failed pass, not the restored target.
	var resend []bool
	for _, tr := range s.transitions {
		if tr.Command == "SYNC" {
			resend = append(resend, tr.CommandParams["resend"] == true)
		}
	}
	s.Equal([]bool{false, false, false, true}, resend)
	s.Equal([]string{s.snapshots[1]}, s.restores, "the rollback restored the failed pass's snapshot")
	s.Equal(2, s.checks, "the launch's check and the successful finished pass's (a failed pass is not checked)")
	s.Equal(1, count(s.steps, sms.StepStart))
	s.Equal("SMS.1801", s.lastFailure().Code)
	s.Require().Len(s.cleanups, 1)
}

// TestSkipPastAFailedCheck: skip on a task that failed its consistency
// check finishes it (SKIPPING, then configure, detach, start); skip asked
// while copying skips the check when it comes.
func (s *migrationSuite) TestSkipPastAFailedCheck() {
	s.checkErr = temporal.NewNonRetryableApplicationError("/dev/vda: 3 of 4096 differ", "SMS.1511", nil)
	s.finish()
	var skip *verdict
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskMigrateFail, s.state().TaskState)
		skip = s.action(sms.ActionSkip)
	})
	s.at(4*time.Minute, func() {
		s.Equal("", s.code(skip))
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(1, s.checks)
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskMigrateFail, sms.TaskSkipping, sms.TaskMigrateSuccess, sms.TaskDeleting}, s.taskStates())
	s.Equal([]sms.Command{"START", "SYNC"}, s.commands, "nothing copied again")
	s.Contains(s.steps, sms.StepConfigure)
	s.Contains(s.steps, sms.StepStart)
}

func (s *migrationSuite) TestSkipWhileCopying() {
	s.checkErr = temporal.NewNonRetryableApplicationError("/dev/vda: 3 of 4096 differ", "SMS.1511", nil)
	var skip, failedSkip *verdict
	s.at(30*time.Second, func() {
		failedSkip = s.action(sms.ActionMigrationTst)
		skip = s.action(sms.ActionSkip)
	})
	s.finish()
	s.at(3*time.Minute, func() {
		s.Equal("SMS.7721", s.code(failedSkip), "migration_test wants continuous sync")
		s.Equal("", s.code(skip))
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(0, s.checks, "skipped")
}

// TestSkipEndsWithAFailedRun: a skip asked in a run that then fails does
// not carry over: the restarted run checks the target again.
func (s *migrationSuite) TestSkipEndsWithAFailedRun() {
	in := input()
	in.Rules = RulesCurrent
	var skip, restart *verdict
	s.at(30*time.Second, func() { skip = s.action(sms.ActionSkip) })
	s.at(time.Minute, func() {
		s.Equal("", s.code(skip))
		s.env.SignalWorkflow(SignalCommand, CommandResult{Command: "START", Success: false, Detail: "disk /dev/vdb vanished"})
	})
	s.at(2*time.Minute, func() {
		s.Equal(sms.TaskMigrateFail, s.state().TaskState)
		restart = s.action(sms.ActionRestart)
	})
	s.at(3*time.Minute, func() {
		s.Equal("", s.code(restart))
		s.progress("MIGRATE_LINUX_BLOCK", 100, 0)
	})
	s.at(4*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(5*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(1, s.checks, "the restarted run checked the target")
}

// TestMigrationTestClonesWhileSyncing: migration_test in continuous sync
// clones the target under its own name; sync goes on.
func (s *migrationSuite) TestMigrationTestClonesWhileSyncing() {
	in := input()
	in.Syncing = true
	var drill *verdict
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskSyncing, s.state().TaskState)
		drill = s.action(sms.ActionMigrationTst)
	})
	s.at(4*time.Minute, func() {
		s.Equal("", s.code(drill))
		s.Equal(sms.TaskSyncing, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(1, s.clones)
	s.Require().Len(s.cloneNames, 1)
	s.Contains(s.cloneNames[0], "migration-test-")
}

func count[T comparable](xs []T, x T) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}
