package workflows

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/provider/local"
	"github.com/smsflow/smsflow/internal/sms"
)

// localTarget makes the task's target a real local one (one 1 MiB disk
// holding "synced before" at offset 0) whose snapshots the suite's
// activities take and restore.
func (s *migrationSuite) localTarget() (*local.Provider, provider.Target) {
	p, err := local.New(filepath.Join(s.T().TempDir(), "targets"))
	s.Require().NoError(err)
	spec := provider.Spec{DomainID: "d1", TaskID: "t1", Type: sms.MigrateBlock, Disks: []provider.Disk{{Name: "vda", Size: 1 << 20}}}
	tg, err := p.Create(context.Background(), spec)
	s.Require().NoError(err)
	s.Require().NoError(p.Format(context.Background(), tg, spec))
	s.writeDisk(tg, "synced before")
	s.snapProvider, s.snapTarget = p, &tg
	return p, tg
}

func (s *migrationSuite) writeDisk(tg provider.Target, text string) {
	f, err := os.OpenFile(tg.Disks[0], os.O_RDWR, 0)
	s.Require().NoError(err)
	_, err = f.WriteAt([]byte(text), 0)
	s.Require().NoError(err)
	s.Require().NoError(f.Close())
}

func (s *migrationSuite) diskHead(tg provider.Target, n int) string {
	b, err := os.ReadFile(tg.Disks[0])
	s.Require().NoError(err)
	return string(b[:n])
}

// failSync starts a finished task's sync pass at d, which writes over the
// target and fails a second later: SYNC_FAIL at d+time.Minute.
func (s *migrationSuite) failSync(d time.Duration, tg *provider.Target) {
	var start *verdict
	s.at(d, func() { start = s.action(sms.ActionStart) })
	s.at(d+time.Second, func() {
		s.Equal("", s.code(start))
		s.Equal(sms.TaskSyncing, s.state().TaskState)
		if tg != nil {
			s.writeDisk(*tg, "HALF-SYNCED!!")
		}
		s.env.SignalWorkflow(SignalCommand, CommandResult{Command: "SYNC", Success: false, Detail: "disk /dev/vdb vanished"})
	})
}

// TestRollbackRestoresTheSnapshot: the finished task's sync pass snapshots
// the target first; the pass half-writes it and fails; rollback restores
// the disk byte for byte (RESETING, then MIGRATE_SUCCESS), and clear
// deletes the snapshot and its record.
func (s *migrationSuite) TestRollbackRestoresTheSnapshot() {
	_, tg := s.localTarget()
	s.finish()
	s.failSync(3*time.Minute, &tg)
	var rollback, clr *verdict
	s.at(4*time.Minute, func() {
		s.Equal(sms.TaskSyncFail, s.state().TaskState)
		s.Equal("HALF-SYNCED!!", s.diskHead(tg, 13))
		rollback = s.action(sms.ActionRollback)
	})
	s.at(4*time.Minute+time.Second, func() {
		s.Equal("", s.code(rollback))
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.Equal("synced before", s.diskHead(tg, 13), "the target holds what it held before the pass")
		clr = s.action(sms.ActionClear)
	})
	s.at(4*time.Minute+2*time.Second, func() {
		s.Equal("", s.code(clr))
		s.NoDirExists(local.SnapshotsDir(tg.Location), "clear deletes the snapshots")
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Require().Len(s.snapshots, 1, "one snapshot, before the pass")
	s.Equal(s.snapshots, s.restores, "the rollback restored it")
	s.Equal(1, s.snapDeletes)
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskMigrateSuccess, sms.TaskSyncing, sms.TaskSyncFail,
		sms.TaskReseting, sms.TaskMigrateSuccess, sms.TaskDeleting}, s.taskStates())
	s.Equal([]sms.Command{"START", "SYNC", "SYNC"}, s.commands)
}

// TestFinishedSyncChecksTheTarget: a finished task's pass whose target
// differs from the source after it (the agent's verification) is SYNC_FAIL
// with SMS.1511, not SYNC_SUCCESS; rollback restores the snapshot from
// before the pass; a pass whose target matches is SYNC_SUCCESS.
func (s *migrationSuite) TestFinishedSyncChecksTheTarget() {
	_, tg := s.localTarget()
	s.finish()
	var start, rollback, again *verdict
	s.at(3*time.Minute, func() {
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.mu.Lock()
		s.checkErr = temporal.NewNonRetryableApplicationError("/dev/vda: 3 of 4096 differ", "SMS.1511", nil)
		s.mu.Unlock()
		start = s.action(sms.ActionStart)
	})
	s.at(3*time.Minute+time.Second, func() {
		s.Equal("", s.code(start))
		s.writeDisk(tg, "MISMATCHED!!!")
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	s.at(4*time.Minute, func() {
		s.Equal(sms.TaskSyncFail, s.state().TaskState, "a target that differs is not a successful sync")
		s.Equal("SMS.1511", s.lastFailure().Code)
		rollback = s.action(sms.ActionRollback)
	})
	s.at(4*time.Minute+time.Second, func() {
		s.Equal("", s.code(rollback))
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.Equal("synced before", s.diskHead(tg, 13), "the rollback restored the target from before the pass")
		s.mu.Lock()
		s.checkErr = nil
		s.mu.Unlock()
		again = s.action(sms.ActionStart)
	})
	s.at(4*time.Minute+2*time.Second, func() {
		s.Equal("", s.code(again))
		s.progress("SYNC_LINUX_BLOCK", 100, 0)
	})
	s.at(5*time.Minute, func() {
		s.Equal(sms.TaskSyncSuccess, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal(3, s.checks, "the launch, the failed pass and the good one")
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskMigrateSuccess, sms.TaskSyncing, sms.TaskSyncFail,
		sms.TaskReseting, sms.TaskMigrateSuccess, sms.TaskSyncing, sms.TaskSyncSuccess, sms.TaskDeleting}, s.taskStates())
}

// TestRollbackWithoutSnapshotIsRefused: a provider that keeps no snapshots
// took none before the pass: rollback is refused (SMS.8113) and the task
// stays SYNC_FAIL, never called MIGRATE_SUCCESS over a half-synced target.
func (s *migrationSuite) TestRollbackWithoutSnapshotIsRefused() {
	s.finish()
	s.failSync(3*time.Minute, nil)
	var rollback *verdict
	s.at(4*time.Minute, func() {
		s.Equal(sms.TaskSyncFail, s.state().TaskState)
		rollback = s.action(sms.ActionRollback)
	})
	s.at(4*time.Minute+time.Second, func() {
		s.Equal("SMS.8113", s.code(rollback))
		s.Equal(sms.TaskSyncFail, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Empty(s.restores)
	s.NotContains(s.taskStates(), sms.TaskReseting)
}

// TestSnapshotFailureFailsTheSync: no snapshot, no pass: the task is
// SYNC_FAIL with SMS.1408, the agent is not told to sync, and rollback has
// nothing to restore (SMS.8113).
func (s *migrationSuite) TestSnapshotFailureFailsTheSync() {
	s.localTarget()
	s.snapErr = temporal.NewNonRetryableApplicationError("Snapshot creation failed.", "SMS.1408", nil)
	s.finish()
	var start, rollback *verdict
	s.at(3*time.Minute, func() { start = s.action(sms.ActionStart) })
	s.at(3*time.Minute+time.Second, func() {
		s.Equal("", s.code(start))
		s.Equal(sms.TaskSyncFail, s.state().TaskState)
		rollback = s.action(sms.ActionRollback)
	})
	s.at(3*time.Minute+2*time.Second, func() {
		s.Equal("SMS.8113", s.code(rollback))
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal("SMS.1408", s.lastFailure().Code)
	s.Equal([]sms.Command{"START", "SYNC"}, s.commands, "no pass without a snapshot")
}

// TestRollbackOfAVanishedSnapshotFails: the snapshot was removed behind the
// run: the rollback fails with SMS.1410 and the task is SYNC_FAIL again.
func (s *migrationSuite) TestRollbackOfAVanishedSnapshotFails() {
	_, tg := s.localTarget()
	s.finish()
	s.failSync(3*time.Minute, &tg)
	var rollback *verdict
	s.at(4*time.Minute, func() {
		s.Require().NoError(os.RemoveAll(local.SnapshotsDir(tg.Location)))
		rollback = s.action(sms.ActionRollback)
	})
	s.at(4*time.Minute+time.Second, func() {
		s.Equal("", s.code(rollback), "accepted: the run has a snapshot id")
		s.Equal(sms.TaskSyncFail, s.state().TaskState)
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Equal("SMS.1410", s.lastFailure().Code)
	s.Equal("HALF-SYNCED!!", s.diskHead(tg, 13))
	s.Equal([]sms.TaskState{sms.TaskRunning, sms.TaskMigrateSuccess, sms.TaskSyncing, sms.TaskSyncFail,
		sms.TaskReseting, sms.TaskSyncFail, sms.TaskDeleting}, s.taskStates())
}

// TestResyncAfterFailureKeepsTheSnapshot: a start on a SYNC_FAIL task
// takes no new snapshot of its half-synced target: when that pass fails
// too, the rollback still restores the data from before the first one.
func (s *migrationSuite) TestResyncAfterFailureKeepsTheSnapshot() {
	_, tg := s.localTarget()
	s.finish()
	s.failSync(3*time.Minute, &tg)
	s.failSync(4*time.Minute, &tg)
	var rollback *verdict
	s.at(5*time.Minute, func() {
		s.Equal(sms.TaskSyncFail, s.state().TaskState)
		rollback = s.action(sms.ActionRollback)
	})
	s.at(5*time.Minute+time.Second, func() {
		s.Equal("", s.code(rollback))
		s.Equal(sms.TaskMigrateSuccess, s.state().TaskState)
		s.Equal("synced before", s.diskHead(tg, 13))
		s.deleteTask()
	})
	s.env.ExecuteWorkflow(MigrationWorkflow, input())
	s.Require().NoError(s.env.GetWorkflowError())
	s.Require().Len(s.snapshots, 1, "the second pass kept the first pass's snapshot")
	s.Equal(s.snapshots, s.restores)
	s.Equal([]sms.Command{"START", "SYNC", "SYNC", "SYNC"}, s.commands)
}
