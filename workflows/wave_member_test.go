package workflows

import (
	"fmt"
	"sync"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/sms"
)

// waveEvents records what a member run signals its wave.
type waveEvents struct {
	mu  sync.Mutex
	evs []WaveMemberEvent
}

func (s *migrationSuite) waveEvents() *waveEvents {
	w := &waveEvents{}
	s.env.OnSignalExternalWorkflow(mock.Anything, WaveWorkflowID("w1"), "", SignalWaveMember, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.evs = append(w.evs, arg.(WaveMemberEvent))
			return nil
		})
	return w
}

func (w *waveEvents) kinds() []WaveEventKind {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []WaveEventKind
	for _, e := range w.evs {
		k := e.Kind
		if k == WaveEventCap {
			k = WaveEventKind(fmt.Sprintf("cap %d", e.CapMbps))
		}
		out = append(out, k)
	}
	return out
}

func (w *waveEvents) last(kind WaveEventKind) WaveMemberEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ev WaveMemberEvent
	for _, e := range w.evs {
		if e.Kind == kind {
			ev = e
		}
	}
	return ev
}

func waveMemberInput() Input {
	in := input()
	in.WaveID, in.WaveCap, in.SpeedLimit, in.Syncing = "w1", 40, 100, true
	return in
}

// A wave member runs under the wave's cap (the lower of it and its own
// limit; 0 lifts it), acknowledges each cap, tells the wave when it syncs,
// and is cut over by the wave's test command: final pass, then done.
func (s *migrationSuite) TestWaveMemberCapCommandsAndEvents() {
	evs := s.waveEvents()
	s.at(time.Minute, func() {
		s.Equal(int32(40), s.state().Limit.Mbps, "the wave's cap is under the task's 100")
		s.progress("MIGRATE_LINUX_BLOCK", 100, 0)
	})
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(3*time.Minute, func() { s.env.SignalWorkflow(SignalWaveCap, WaveCap{Mbps: 10}) })
	s.at(4*time.Minute, func() {
		s.Equal(int32(10), s.state().Limit.Mbps)
		s.env.SignalWorkflow(SignalWaveCap, WaveCap{Mbps: 0})
	})
	s.at(5*time.Minute, func() {
		s.Equal(int32(100), s.state().Limit.Mbps, "no cap: the task's own limit")
		s.env.SignalWorkflow(SignalWaveCommand, WaveCommand{Operation: sms.ActionTest})
	})
	s.at(6*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(8*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, waveMemberInput())
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	kinds := evs.kinds()
	s.Require().Len(kinds, 7, "%v", kinds)
	// The speed and the syncing event leave in one workflow task, each
	// from its own coroutine: the test environment delivers them in
	// either order (the wave takes either).
	s.ElementsMatch([]WaveEventKind{WaveEventSpeed, WaveEventSyncing}, kinds[1:3])
	s.Equal([]WaveEventKind{"cap 40", "cap 10", "cap 0", WaveEventFinalPass, WaveEventDone},
		append(kinds[:1:1], kinds[3:]...))
	var mbps []int32
	for _, l := range s.limits {
		mbps = append(mbps, l.Mbps)
	}
	s.Equal([]int32{40, 10, 100}, mbps)
	s.Equal(time.Minute, evs.last(WaveEventDone).At.Sub(evs.last(WaveEventFinalPass).At), "final pass at 5m, target at 6m")
	s.Equal([]sms.Command{sms.CmdStart, sms.CmdSync, sms.CmdSync}, s.commands)
}

// A failed member tells the wave (code, step); the wave's start command
// restarts it from the failed step; a start sent while it runs is dropped
// rather than kept for a later failure.
func (s *migrationSuite) TestWaveMemberFailureAndRetry() {
	evs := s.waveEvents()
	s.stepErr[sms.StepFormat] = []error{temporal.NewNonRetryableApplicationError("disk full", "SMS.0519", nil)}
	s.at(time.Minute, func() {
		s.Equal(sms.TaskMigrateFail, s.state().TaskState)
		s.env.SignalWorkflow(SignalWaveCommand, WaveCommand{Operation: sms.ActionStart})
	})
	s.at(2*time.Minute, func() {
		s.Equal(sms.TaskRunning, s.state().TaskState, "restarted")
		s.Equal(sms.StepMigrate, s.state().Step, "from the failed step on")
		s.env.SignalWorkflow(SignalWaveCommand, WaveCommand{Operation: sms.ActionStart}) // not failed: dropped
	})
	s.at(3*time.Minute, func() {
		s.progress("MIGRATE_LINUX_BLOCK", 100, 0)
	})
	s.at(4*time.Minute, func() { s.deleteTask() })
	s.env.ExecuteWorkflow(MigrationWorkflow, waveMemberInput())
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	failed := evs.last(WaveEventFailed)
	s.Equal("SMS.0519", failed.Code)
	s.Equal(sms.StepFormat, failed.Step)
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskMigrateFail, sms.TaskRunning, sms.TaskSyncing, sms.TaskDeleting}, s.taskStates(),
		"one restart only")
}

// A wave member canceled mid-copy (the wave was canceled) stops its agent:
// nothing is left running.
func (s *migrationSuite) TestWaveMemberCanceledStopsItsAgent() {
	s.waveEvents()
	s.at(time.Minute, func() { s.env.CancelWorkflow() })
	s.env.ExecuteWorkflow(MigrationWorkflow, waveMemberInput())
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Error(s.env.GetWorkflowError())
	var last activities.Transition
	for _, tr := range s.transitions {
		last = tr
	}
	s.Equal(sms.TaskAbort, last.TaskState)
	s.Equal(sms.CmdStop, last.Command)
	s.Equal([]sms.Command{sms.CmdStart, sms.CmdStop}, s.commands)
}

// A task outside a wave canceled in the Temporal UI is marked ABORT as
// before (no wave, no STOP: its runs replay as they ran).
func (s *migrationSuite) TestCanceledTaskOutsideAWave() {
	s.at(time.Minute, func() { s.env.CancelWorkflow() })
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Equal([]sms.Command{sms.CmdStart}, s.commands)
}

// A member reports its copy's speed to the wave when it changed by more
// than a fifth, at most every SpeedReportInterval.
func (s *migrationSuite) TestWaveMemberReportsItsSpeed() {
	evs := s.waveEvents()
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 10, 30) })
	s.at(2*time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 20, 33) }) // small change
	s.at(3*time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 30, 5) })  // too soon
	s.at(7*time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 40, 5) })  // reported
	s.at(8*time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 5) }) // too soon
	s.at(9*time.Minute, func() { s.deleteTask() })
	s.env.ExecuteWorkflow(MigrationWorkflow, waveMemberInput())
	s.Require().True(s.env.IsWorkflowCompleted())
	var speeds []float64
	evs.mu.Lock()
	for _, e := range evs.evs {
		if e.Kind == WaveEventSpeed {
			speeds = append(speeds, e.SpeedMbps)
		}
	}
	evs.mu.Unlock()
	s.Equal([]float64{30, 5}, speeds)
}

// A wave member's sync passes are paced by its wave's size: 1,800 members
// hold its 1-minute interval to 30 minutes between passes (a cutover still
// starts the final pass at once); a run without the size (started before
// the wave passed it) keeps its task's interval.
func (s *migrationSuite) TestWaveMemberSyncPace() {
	s.waveEvents()
	in := waveMemberInput()
	in.SyncInterval, in.WaveSize = time.Minute, 1800
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) }) // first pass done
	s.at(31*time.Minute, func() {
		s.Equal([]sms.Command{sms.CmdStart, sms.CmdSync}, s.commands, "no pass before 2m + 30m")
	})
	s.at(33*time.Minute, func() {
		s.Equal([]sms.Command{sms.CmdStart, sms.CmdSync, sms.CmdSync}, s.commands, "the next pass at 32m")
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	s.at(34*time.Minute, func() { s.env.SignalWorkflow(SignalWaveCommand, WaveCommand{Operation: sms.ActionTest}) })
	s.at(35*time.Minute, func() {
		s.Equal([]sms.Command{sms.CmdStart, sms.CmdSync, sms.CmdSync, sms.CmdSync}, s.commands, "the final pass at once")
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().True(s.env.IsWorkflowCompleted())
}

func (s *migrationSuite) TestWaveMemberWithoutSizeKeepsItsInterval() {
	s.waveEvents()
	in := waveMemberInput()
	in.SyncInterval = time.Minute
	s.at(time.Minute, func() { s.progress("MIGRATE_LINUX_BLOCK", 100, 0) })
	s.at(2*time.Minute, func() { s.progress("SYNC_LINUX_BLOCK", 100, 0) })
	s.at(4*time.Minute, func() {
		s.Equal([]sms.Command{sms.CmdStart, sms.CmdSync, sms.CmdSync}, s.commands, "the next pass at 3m")
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, in)
	s.Require().True(s.env.IsWorkflowCompleted())
}
