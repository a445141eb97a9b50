package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/sms/speedlimit"
)

// Search attribute keys (registered on the namespace) so the Temporal UI
// filters runs by task, source, migration project and state.
var (
	saTaskID   = temporal.NewSearchAttributeKeyKeyword(SearchTaskID)
	saSourceID = temporal.NewSearchAttributeKeyKeyword(SearchSourceID)
	saProject  = temporal.NewSearchAttributeKeyKeyword(SearchProject)
	saState    = temporal.NewSearchAttributeKeyKeyword(SearchTaskState)
)

// acts is the nil receiver workflows call activities through.
var acts *activities.Activities

// errStopped and errDeleted end a run of steps on an operator's request.
var (
	errStopped = errors.New("stopped by the operator")
	errDeleted = errors.New("deleted by the operator")
)

// RunState is everything the workflow knows; it is one serializable struct
// so a continue-as-new can carry it.
type RunState struct {
	TaskState     sms.TaskState
	SourceState   sms.SourceState
	SourceCycle   sms.Cycle
	Step          sms.Step // the step to run next (resume point)
	FailedStep    sms.Step
	Target        *provider.Target
	TargetStarted bool
	SyncRounds    int
	Speed         SpeedUpdate
	Limit         speedlimit.Limit
	Started       bool
	// SkipConsistency: the target is not verified (the task's
	// is_need_consistency_check, changed by a start or restart that
	// gives it).
	SkipConsistency bool
	// MigrationTested: a clone test of the target ran (a task that needs
	// a migration test launches only after one).
	MigrationTested bool
	// TargetOptions are the PUT /v3/tasks/{id} changes the run took
	// (UpdateTarget), over the input's ExistServer and the task row.
	TargetOptions TargetUpdate

	// Operator requests, set by update handlers, consumed by the main loop.
	StartRequested   bool
	StopRequested    bool
	CutoverRequested bool
	CloneRequest     *ActionRequest
	NetworkCheck     bool
	DeleteRequested  bool

	// Agent step bookkeeping, set by signal handlers.
	AgentActive    bool
	AgentSubtask   sms.Subtask
	AgentCommand   sms.Command
	AgentProgress  int32
	LastProgressAt time.Time
	CommandFailed  string
	StopAcked      bool
	OverSince      time.Time
	OverSpeed      bool
	OverSpeedMbps  float64
	SpeedChanged   bool
	InSyncLoop     bool

	// Carry-over from a run that continued as new in the middle of the
	// steps (bounded-history): the next run goes straight back to where
	// this one was instead of waiting idle for a start.
	ResumeSteps bool
	// ResumeAgent: an agent step was in flight; the next run waits for the
	// same command (AgentCommand on AgentSubtask) without sending it again.
	ResumeAgent bool
	// ResumeSync: a continuous-sync task was between passes; the next pass
	// is due at NextSyncAt.
	ResumeSync bool
	NextSyncAt time.Time
	// FinalPass: the agent step in flight is the launch's last sync pass.
	FinalPass bool
	// LaunchLater: test asked to start a target the task finished without
	// (start_target_server=false); START_TARGET starts it.
	LaunchLater bool
	// Wave is a wave member's part (wave_member.go).
	Wave WaveMemberState

	// The SDK's later actions (version "sdk-vocabulary"). SyncRequested: a
	// start on a finished task, one more pass into its target;
	// FinishedSync: that pass is under way (a carry-over resumes it);
	// ClearRequested and RollbackRequested: clear and sync_failed_rollback
	// on a finished task; SkipCheck: the consistency check is skipped
	// (skip); Skipping: the run resumed past a failed check; CheckFailed:
	// the last run stopped on the check (SMS.1511), which skip passes.
	SyncRequested     bool
	FinishedSync      bool
	ClearRequested    bool
	RollbackRequested bool
	SkipCheck         bool
	Skipping          bool
	CheckFailed       bool
	// SnapshotID is the target's snapshot taken before the last finished
	// task's sync pass (version "target-snapshots"), which
	// sync_failed_rollback restores; "" when there is none (never taken,
	// the snapshot failed, or clear removed it).
	SnapshotID string `json:",omitempty"`
	// ResendBlocks: a rollback restored the target, so the block hashes
	// the agent recorded in the failed pass describe data that is no
	// longer there; the next pass sends every block (the SYNC command's
	// "resend"), until one succeeds.
	ResendBlocks bool `json:",omitempty"`
}

type migration struct {
	in  Input
	st  *RunState
	loc *time.Location
	// anytimeChecks: network checks have their own coroutine (runs that
	// started before it answer them only when idle).
	anytimeChecks bool
	// waveMember: the run belongs to a wave (Input.WaveID, version
	// "wave-member"); the wave's signal channels.
	waveMember         bool
	waveCaps, waveCmds workflow.ReceiveChannel
	// bounded: the run continues as new from the sync loop and from long
	// agent steps too, not only when idle (runs that started before
	// bounded-history replay without it).
	bounded bool
	// busy counts side activities in flight (speed pushes, network
	// checks): a continue-as-new waits for them so none is cut off.
	busy int
	// vocab: the run serves the SDK's later actions (clear, skip,
	// migration_test, sync_failed_rollback, start on a finished task);
	// runs that started before version "sdk-vocabulary" refuse them.
	vocab bool
	// snapshots: a finished task's sync pass snapshots the target first,
	// rollback restores it and clear deletes it (runs from before
	// "target-snapshots" restore only the task's state).
	snapshots bool

	progress, results, speed workflow.ReceiveChannel
}

// HistoryBound is the history length at which a run continues as new even
// if the server has not suggested it yet (it suggests at 4,096 events or
// 4 MiB by default, configurable per namespace). A run checks it at every
// wait of the idle state, the sync loop and agent steps, so it ends a
// handful of events past the bound.
const HistoryBound = 4000

// OverSpeedGrace: reports above the limit for this long stop the task.
const OverSpeedGrace = 30 * time.Second

// MigrationWorkflow drives one task through check → configure target →
// replicate → sync → test → cutover. Operator actions arrive as validated
// Updates, agent progress as signals; what retries cannot fix ends the task
// in MIGRATE_FAIL, and start or restart resumes from the failed step.
func MigrationWorkflow(ctx workflow.Context, in Input) (Status, error) {
	m := &migration{in: in, st: &RunState{TaskState: sms.TaskReady, Step: sms.StepCheck,
		Speed:           SpeedUpdate{Rules: in.SpeedRules, SpeedLimit: in.SpeedLimit, OverSpeedThreshold: in.OverSpeedThreshold},
		SkipConsistency: in.SkipConsistencyCheck}}
	if in.Resume != nil {
		m.st = in.Resume
	}
	loc, err := time.LoadLocation(in.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	m.loc = loc
	if err := m.setup(ctx); err != nil {
		return Status{}, err
	}
	return m.run(ctx)
}

func (m *migration) status() Status {
	return Status{TaskState: m.st.TaskState, Step: m.st.Step, FailedStep: m.st.FailedStep, SyncRounds: m.st.SyncRounds,
		Limit: m.st.Limit, Deleted: m.st.TaskState == sms.TaskDeleting}
}

// setup registers the query, update and signal handlers.
func (m *migration) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (Status, error) { return m.status(), nil }); err != nil {
		return err
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateAction,
		func(ctx workflow.Context, req ActionRequest) error {
			m.accept(req)
			return nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req ActionRequest) error {
			if err := ValidateActionIn(m.st.TaskState, ActionScope{InSyncLoop: m.st.InSyncLoop, TargetStarted: m.st.TargetStarted,
				CheckFailed: m.st.CheckFailed, Vocab: m.vocab, Snapshots: m.snapshots, HasSnapshot: m.st.SnapshotID != ""}, req); err != nil {
				return err
			}
			return m.validateMigrationTest(req)
		}})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateDelete,
		func(ctx workflow.Context) error {
			m.st.DeleteRequested = true
			return nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error {
			return ValidateDelete(m.st.TaskState)
		}})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateTarget,
		func(ctx workflow.Context, u TargetUpdate) error {
			m.setTargetOptions(u)
			return nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, u TargetUpdate) error {
			return m.validateTargetUpdate(u)
		}})
	if err != nil {
		return err
	}
	m.progress = workflow.GetSignalChannel(ctx, SignalProgress)
	m.results = workflow.GetSignalChannel(ctx, SignalCommand)
	m.speed = workflow.GetSignalChannel(ctx, SignalSpeed)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(m.progress, func(c workflow.ReceiveChannel, _ bool) {
				var p Progress
				c.Receive(ctx, &p)
				m.onProgress(ctx, p)
			})
			sel.AddReceive(m.results, func(c workflow.ReceiveChannel, _ bool) {
				var r CommandResult
				c.Receive(ctx, &r)
				m.onResult(r)
			})
			sel.AddReceive(m.speed, func(c workflow.ReceiveChannel, _ bool) {
				var u SpeedUpdate
				c.Receive(ctx, &u)
				m.st.Speed, m.st.SpeedChanged = u, true
			})
			sel.Select(ctx)
		}
	})
	m.setupWave(ctx)
	workflow.Go(ctx, m.speedLoop)
	return nil
}

// ActionScope is what an action's validator knows of the run besides its
// task state.
type ActionScope struct {
	InSyncLoop    bool // a continuous-sync task between or in its passes
	TargetStarted bool
	// CheckFailed: the run failed on the consistency check (SMS.1511).
	CheckFailed bool
	// Vocab: the run serves clear, skip, migration_test,
	// sync_failed_rollback and the sync of a finished task.
	Vocab bool
	// Snapshots: the run's rollback restores the target's snapshot
	// (version "target-snapshots"); HasSnapshot: it has one.
	Snapshots, HasSnapshot bool
}

// ValidateAction is ValidateActionIn for a run that knows every action and
// did not fail on the consistency check.
func ValidateAction(taskState sms.TaskState, inSyncLoop, targetStarted bool, req ActionRequest) error {
	return ValidateActionIn(taskState, ActionScope{InSyncLoop: inSyncLoop, TargetStarted: targetStarted, Vocab: true}, req)
}

// ValidateActionIn enforces the action rules of SMS.7713–SMS.7723 on the
// workflow's own state (the API answers with the code it returns).
//
// A start synchronizes a finished task (MIGRATE_SUCCESS, SYNC_SUCCESS,
// SYNC_FAIL): one more pass into its target, ending SYNC_SUCCESS or
// SYNC_FAIL. SMS.7715 — only finished tasks or tasks in continuous sync can
// be synchronized — refuses a start while a pass that is not the loop's is
// under way (the launch's final pass, a finished task's sync).
func ValidateActionIn(taskState sms.TaskState, sc ActionScope, req ActionRequest) error {
	reject := func(code smserr.Code) error {
		return temporal.NewApplicationError(smserr.New(code).Message+" (task is "+string(taskState)+")", string(code))
	}
	if !sc.Vocab {
		switch req.Operation {
		case sms.ActionClear, sms.ActionSkip, sms.ActionMigrationTst, sms.ActionRollback:
			return temporal.NewApplicationError("the task's run predates "+string(req.Operation)+
				": restart the task (or create it again) to use it", string(smserr.SMS7713))
		}
	}
	switch req.Operation {
	case sms.ActionStart:
		switch {
		case taskState == sms.TaskReady || taskState == sms.TaskAbort || taskState == sms.TaskMigrateFail:
			return nil
		case sc.Vocab && taskState.Finished():
			return nil
		case sc.Vocab && taskState == sms.TaskSyncing && !sc.InSyncLoop:
			return reject(smserr.SMS7715)
		}
		return reject(smserr.SMS7713)
	case sms.ActionStop:
		// SKIPPING runs the steps past a failed check: it stops as RUNNING does.
		if taskState == sms.TaskRunning || taskState == sms.TaskSyncing || taskState == sms.TaskSkipping {
			return nil
		}
		return reject(smserr.SMS7714)
	case sms.ActionTest, sms.ActionCloneTest, sms.ActionMigrationTst:
		if taskState == sms.TaskSyncing && sc.InSyncLoop {
			return nil
		}
		// No dead end: a task that finished with start_target_server=false
		// (or whose later sync finished) is launched later by test, which
		// starts its target.
		if req.Operation == sms.ActionTest && (taskState == sms.TaskMigrateSuccess || taskState == sms.TaskSyncSuccess) && !sc.TargetStarted {
			return nil
		}
		return reject(smserr.SMS7721)
	case sms.ActionRestart:
		if taskState == sms.TaskMigrateFail {
			return nil
		}
		if taskState == sms.TaskMigrateSuccess && sc.TargetStarted {
			// A restart would copy over a target that was launched and
			// may be in use: refused, never done silently. A new task
			// migrates the source again.
			return temporal.NewApplicationError(smserr.New(smserr.SMS7713).Message+
				" (task is "+string(taskState)+" and its target was launched: a restart would overwrite it; create a new task to migrate again)",
				string(smserr.SMS7713))
		}
		return reject(smserr.SMS7722)
	case sms.ActionSkip:
		// Before the check (the copy or sync runs) it is skipped when
		// reached; after it failed, the run goes on past it.
		if taskState == sms.TaskRunning || taskState == sms.TaskSyncing || (taskState == sms.TaskMigrateFail && sc.CheckFailed) {
			return nil
		}
		return reject(smserr.SMS7713)
	case sms.ActionClear:
		// A finished task's target snapshot is what there is to clear.
		if taskState.Finished() {
			return nil
		}
		return reject(smserr.SMS8112)
	case sms.ActionRollback:
		if taskState != sms.TaskSyncFail {
			return reject(smserr.SMS7718)
		}
		if sc.Snapshots && !sc.HasSnapshot {
			// Nothing to restore: the target was not snapshotted before
			// the failed pass (the snapshot failed, clear removed it, or
			// the pass ran before snapshots). A state-only rollback would
			// call a half-synced target MIGRATE_SUCCESS.
			return temporal.NewApplicationError(smserr.New(smserr.SMS8113).Message+
				" (the target has no snapshot from before the failed sync: start syncs it again)", string(smserr.SMS8113))
		}
		return nil
	case sms.ActionNetworkCheck:
		switch taskState {
		case sms.TaskReady, sms.TaskRunning, sms.TaskSyncing, sms.TaskAbort, sms.TaskSkipping:
			return nil
		}
		return reject(smserr.SMS7713)
	}
	return temporal.NewApplicationError("unknown operation "+string(req.Operation), string(smserr.SMS9001), "operation")
}

// validateMigrationTest refuses to launch a task that needs a migration
// test (need_migration_test) before a clone test of its target has run.
func (m *migration) validateMigrationTest(req ActionRequest) error {
	if req.Operation != sms.ActionTest || !m.in.NeedMigrationTest || m.st.MigrationTested {
		return nil
	}
	return temporal.NewApplicationError(smserr.New(smserr.SMS7721).Message+
		" (the task needs a migration test: run clone_test before launching the target)", string(smserr.SMS7721))
}

// validateTargetUpdate refuses (SMS.7706) to rebind a run that already made
// or bound its target, and any change once the target is launched or the
// task is being deleted.
func (m *migration) validateTargetUpdate(u TargetUpdate) error {
	reject := func(why string) error {
		return temporal.NewApplicationError(smserr.New(smserr.SMS7706).Message+" ("+why+")", string(smserr.SMS7706))
	}
	switch {
	case m.st.TaskState == sms.TaskDeleting:
		return reject("the task is being deleted")
	case u.rebinds() && m.st.Target != nil:
		return reject("the task already has its target server " + m.st.Target.VMID + ": delete the task to use another")
	case u.rebinds() && m.creating():
		// The create step may be binding or making the server now: a
		// rebind would be lost or name a server the run no longer uses.
		return reject("the run is creating or binding its target server")
	case m.st.TargetStarted:
		return reject("the target server is launched")
	}
	return nil
}

// creating: the run is at or past the create step (a failed or stopped
// run is not: a rebind before its restart is taken).
func (m *migration) creating() bool {
	switch m.st.TaskState {
	case sms.TaskRunning, sms.TaskSkipping, sms.TaskSyncing:
		return m.st.Step.Index() >= sms.StepCreate.Index()
	}
	return false
}

// setTargetOptions takes a TargetUpdate: the next steps use it.
func (m *migration) setTargetOptions(u TargetUpdate) {
	o := &m.st.TargetOptions
	for _, f := range []struct{ to, from **string }{{&o.VMID, &u.VMID}, {&o.TargetDiskIDs, &u.TargetDiskIDs},
		{&o.SnapshotIDs, &u.SnapshotIDs}, {&o.EnterpriseProject, &u.EnterpriseProject}} {
		if *f.from != nil {
			*f.to = *f.from
		}
	}
	if u.ExistServer != nil {
		o.ExistServer = u.ExistServer
	}
}

// existServer is the task's exist_server as the run knows it.
func (m *migration) existServer() bool {
	if e := m.st.TargetOptions.ExistServer; e != nil {
		return *e
	}
	return m.in.ExistServer
}

// ValidateDelete refuses a second delete (SMS.7719).
func ValidateDelete(taskState sms.TaskState) error {
	if taskState == sms.TaskDeleting {
		return temporal.NewApplicationError(smserr.New(smserr.SMS7719).Message+" (task is "+string(taskState)+")", string(smserr.SMS7719))
	}
	return nil
}

func (m *migration) accept(req ActionRequest) {
	switch req.Operation {
	case sms.ActionStart:
		if req.ConsistencyCheck != nil {
			m.st.SkipConsistency = !*req.ConsistencyCheck
		}
		if m.st.TaskState.Finished() {
			m.st.SyncRequested = true
			return
		}
		m.st.StartRequested = true
	case sms.ActionSkip:
		m.st.SkipCheck = true
		if m.st.TaskState == sms.TaskMigrateFail {
			// Past the failed check: configure, detach and start the target.
			m.st.Step, m.st.Skipping, m.st.StartRequested = sms.StepConfigure, true, true
		}
	case sms.ActionClear:
		m.st.ClearRequested = true
	case sms.ActionRollback:
		m.st.RollbackRequested = true
	case sms.ActionMigrationTst:
		r := req
		m.st.CloneRequest = &r
	case sms.ActionRestart:
		m.st.StartRequested = true
		if req.ConsistencyCheck != nil {
			m.st.SkipConsistency = !*req.ConsistencyCheck
		}
		if req.Operation == sms.ActionRestart && m.st.TaskState == sms.TaskMigrateSuccess {
			// Runs from before restart-after-launch was refused: the copy
			// ran again into the same target (replayed as it ran).
			m.st.Step, m.st.TargetStarted = sms.StepMigrate, false
		}
	case sms.ActionStop:
		m.st.StopRequested = true
	case sms.ActionTest:
		if m.st.TaskState == sms.TaskMigrateSuccess || m.st.TaskState == sms.TaskSyncSuccess {
			// Launch a target the run left stopped (start_target_server
			// false): the run goes back to its last step, which starts it
			// this time (and again on a restart should it fail).
			m.st.StartRequested, m.st.Step, m.st.LaunchLater = true, sms.StepStart, true
			return
		}
		m.st.CutoverRequested = true
	case sms.ActionCloneTest:
		r := req
		m.st.CloneRequest = &r
	case sms.ActionNetworkCheck:
		m.st.NetworkCheck = true
	}
}

func (m *migration) onProgress(ctx workflow.Context, p Progress) {
	if !m.st.AgentActive || p.Subtask != m.st.AgentSubtask {
		return
	}
	m.st.AgentProgress = max(m.st.AgentProgress, p.Progress)
	now := workflow.Now(ctx)
	m.st.LastProgressAt = now
	m.waveSpeed(ctx, p)
	if speedlimit.Over(m.st.Limit, p.MigrateSpeed) {
		if m.st.OverSince.IsZero() {
			m.st.OverSince = now
		}
		if now.Sub(m.st.OverSince) >= OverSpeedGrace {
			m.st.OverSpeed, m.st.OverSpeedMbps = true, p.MigrateSpeed
		}
	} else {
		m.st.OverSince = time.Time{}
	}
}

func (m *migration) onResult(r CommandResult) {
	switch {
	case r.Command == sms.CmdStop:
		m.st.StopAcked = true
	case r.Command == m.st.AgentCommand && !r.Success:
		m.st.CommandFailed = r.Detail
		if m.st.CommandFailed == "" {
			m.st.CommandFailed = string(r.Command) + " failed on the agent"
		}
	}
}

func (m *migration) ref() activities.Ref {
	return activities.Ref{TaskID: m.in.TaskID, DomainID: m.in.DomainID, SourceID: m.in.SourceID, Type: m.in.Type, OSType: m.in.OSType}
}

func activityCtx(ctx workflow.Context, timeout time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10,
		},
	})
}

// apply runs the Apply activity and mirrors the change in the workflow state.
func (m *migration) apply(ctx workflow.Context, tr activities.Transition) error {
	tr.Ref = m.ref()
	// The new task state holds for operator actions from the moment the
	// run decides on it, before the row says so: once a reader can see
	// MIGRATE_SUCCESS in the database, the validators already answer for
	// it (a stop is refused, not accepted and ignored).
	changed := tr.TaskState != "" && tr.TaskState != m.st.TaskState
	prev := m.st.TaskState
	if changed {
		m.st.TaskState = tr.TaskState
	}
	if err := workflow.ExecuteActivity(activityCtx(ctx, time.Minute), acts.Apply, tr).Get(ctx, nil); err != nil {
		if changed {
			m.st.TaskState = prev
		}
		return err
	}
	if changed {
		_ = workflow.UpsertTypedSearchAttributes(ctx, saState.ValueSet(string(tr.TaskState)))
	}
	if tr.SourceState != "" {
		m.st.SourceState = tr.SourceState
	}
	if tr.SourceCycle != "" {
		m.st.SourceCycle = tr.SourceCycle
	}
	if tr.TargetStarted != nil {
		m.st.TargetStarted = *tr.TargetStarted
	}
	return nil
}

func (m *migration) run(ctx workflow.Context) (Status, error) {
	_ = workflow.UpsertTypedSearchAttributes(ctx, saTaskID.ValueSet(m.in.TaskID), saSourceID.ValueSet(m.in.SourceID),
		saProject.ValueSet(m.in.MigProjectID), saState.ValueSet(string(m.st.TaskState)))
	if m.in.Resume == nil && m.in.AutoStart {
		m.st.StartRequested = true
	}
	// An operator checks the network while the copy runs or the task
	// syncs, not only when it is idle: the checks get a coroutine of their
	// own, beside whatever the run is doing.
	if workflow.GetVersion(ctx, "network-check-anytime", workflow.DefaultVersion, 1) == 1 {
		m.anytimeChecks = true
		workflow.Go(ctx, m.networkChecks)
	}
	// Idle runs no longer wake for network checks, yet checks and speed
	// windows still add to the history: the idle wait also ends when a fresh
	// history is due.
	idleRollover := workflow.GetVersion(ctx, "idle-continue-as-new", workflow.DefaultVersion, 1) == 1
	// A task that syncs for weeks, or copies a huge disk for days, starts a
	// fresh history from the sync loop and from the agent step too, and
	// goes back to where it was (no second command to the agent).
	m.bounded = workflow.GetVersion(ctx, "bounded-history", workflow.DefaultVersion, 1) == 1
	// The SDK's later actions: a finished task syncs again, rolls a failed
	// sync back, clears its snapshot; skip and migration_test.
	m.vocab = workflow.GetVersion(ctx, "sdk-vocabulary", workflow.DefaultVersion, 1) == 1
	// A finished task's sync pass snapshots its target first; rollback
	// restores the snapshot, clear deletes it.
	m.snapshots = m.vocab && workflow.GetVersion(ctx, "target-snapshots", workflow.DefaultVersion, 1) == 1
	for {
		if m.st.ResumeSteps && m.st.FinishedSync {
			// Carried over in a finished task's sync pass.
			m.st.ResumeSteps = false
			if st, err, done := m.finishedSync(ctx); done {
				return st, err
			}
			continue
		}
		if m.st.ResumeSteps {
			// Carried over mid-run: the task is RUNNING or SYNCING already.
			m.st.ResumeSteps = false
		} else {
			// Idle: READY, ABORT, MIGRATE_FAIL or MIGRATE_SUCCESS wait for
			// start, restart or delete (and network checks, which need no run).
			for !m.st.StartRequested && !m.st.DeleteRequested {
				if err := workflow.Await(ctx, func() bool {
					return m.st.StartRequested || m.st.DeleteRequested || (m.st.NetworkCheck && !m.anytimeChecks) ||
						(idleRollover && m.continueAsNewDue(ctx)) || m.finishedActionDue()
				}); err != nil {
					return m.canceled(ctx, err)
				}
				if m.finishedActionDue() && !m.st.DeleteRequested {
					if st, err, done := m.finishedAction(ctx); done {
						return st, err
					}
					continue
				}
				if m.st.NetworkCheck && !m.anytimeChecks {
					m.st.NetworkCheck = false
					if err := m.networkCheck(ctx); err != nil {
						workflow.GetLogger(ctx).Warn("network check", "err", err)
					}
				}
				if m.continueAsNewDue(ctx) {
					if m.bounded {
						if err := m.quiesce(ctx); err != nil {
							return m.canceled(ctx, err)
						}
						if m.st.StartRequested || m.st.DeleteRequested {
							break // asked for while the run settled: serve it here
						}
					}
					return Status{}, m.continueAsNew(ctx)
				}
			}
			if m.st.DeleteRequested {
				return m.delete(ctx)
			}
			m.st.StartRequested, m.st.StopRequested = false, false
			state := sms.TaskRunning
			if m.st.Skipping {
				state = sms.TaskSkipping // skip after a failed check: the run finishes past it
			}
			m.st.Skipping, m.st.CheckFailed = false, false
			if err := m.apply(ctx, activities.Transition{TaskState: state, Started: !m.st.Started, ClearFailure: true}); err != nil {
				return m.canceled(ctx, err)
			}
			m.st.Started = true
		}
		err := m.runSteps(ctx)
		var carry *carryOver
		switch {
		case err == nil:
			m.st.Step = sms.StepMigrate // a restart copies again into the same target
		case errors.As(err, &carry):
			in := m.in
			in.Resume = &carry.st
			return Status{}, workflow.NewContinueAsNewError(ctx, MigrationWorkflow, in)
		case errors.Is(err, errDeleted):
			return m.delete(ctx)
		case errors.Is(err, errStopped):
			// idle in ABORT; start resumes the same step
		case temporal.IsCanceledError(err) || ctx.Err() != nil:
			return m.canceled(ctx, err)
		default:
			if ferr := m.fail(ctx, err); ferr != nil {
				return m.canceled(ctx, ferr)
			}
		}
	}
}

// runSteps runs the plan from the resume point.
func (m *migration) runSteps(ctx workflow.Context) error {
	for i := m.st.Step.Index(); i >= 0 && i < len(sms.Plan); i++ {
		step := sms.Plan[i]
		m.st.Step = step
		if m.st.DeleteRequested {
			return errDeleted
		}
		if m.st.StopRequested {
			return m.stop(ctx)
		}
		var err error
		switch step {
		case sms.StepMigrate:
			m.startNetworkCheck(ctx)
			err = m.replicate(ctx)
		case sms.StepSync:
			err = m.sync(ctx)
			// The agent verified the target after its last pass (block or
			// file checksums, both sides): a mismatch fails the task
			// rather than launch a target that differs. Runs recorded
			// before the check existed replay without it. A task that asked
			// for no consistency check, or a skip, skips it (its agent did
			// not verify).
			if err == nil && !m.st.SkipConsistency && !m.st.SkipCheck && workflow.GetVersion(ctx, "consistency-check", workflow.DefaultVersion, 1) == 1 {
				err = workflow.ExecuteActivity(activityCtx(ctx, time.Minute), acts.CheckConsistency, m.ref()).Get(ctx, nil)
				var ae *temporal.ApplicationError
				m.st.CheckFailed = errors.As(err, &ae) && ae.Type() == string(smserr.SMS1511)
			}
		default:
			err = m.simpleStep(ctx, step)
		}
		if err != nil {
			return err
		}
	}
	m.st.SkipCheck = false // a skip holds for the run it was asked in
	started := m.startsTarget()
	if err := m.apply(ctx, activities.Transition{TaskState: sms.TaskMigrateSuccess, SourceState: sms.SourceFinished, SourceCycle: sms.CycleCutovered,
		Finished: true, TargetStarted: &started}); err != nil {
		return err
	}
	m.waveEvent(ctx, WaveEventDone)
	return nil
}

// startsTarget: the run ends by starting the target (start_target_server,
// or a test after a run that left it stopped).
func (m *migration) startsTarget() bool { return m.in.StartTargetServer || m.st.LaunchLater }

// cycleOf is the source's migration cycle and state during a step.
func cycleOf(step sms.Step) (sms.SourceState, sms.Cycle) {
	switch step {
	case sms.StepCheck:
		return sms.SourceWaiting, sms.CycleChecking
	case sms.StepCreate, sms.StepSSL, sms.StepAttach, sms.StepFormat:
		return sms.SourceWaiting, sms.CycleSetting
	case sms.StepMigrate:
		return sms.SourceReplicate, sms.CycleReplicating
	case sms.StepSync:
		return sms.SourceSyncing, sms.CycleSyncing
	default:
		return sms.SourceCutovering, sms.CycleCutovering
	}
}

func (m *migration) simpleStep(ctx workflow.Context, step sms.Step) error {
	st, cyc := cycleOf(step)
	if st != m.st.SourceState || cyc != m.st.SourceCycle {
		if err := m.apply(ctx, activities.Transition{SourceState: st, SourceCycle: cyc}); err != nil {
			return err
		}
	}
	o := m.st.TargetOptions
	in := activities.StepInput{Ref: m.ref(), Step: step, Subtask: sms.SubtaskName(step, m.in.Type, m.in.OSType),
		Target: m.st.Target, ExistServer: m.existServer(), StartTarget: m.startsTarget(),
		ExistVM: o.VMID, TargetDiskIDs: o.TargetDiskIDs, SnapshotIDs: o.SnapshotIDs, EnterpriseProject: o.EnterpriseProject}
	// A step heartbeats: one lost with its worker (smsflow killed or
	// restarted mid-step) is retried within seconds of the restart, not
	// after the ten minutes a step may take. Options only: no version.
	sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute, HeartbeatTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	})
	var out activities.StepOutput
	if err := workflow.ExecuteActivity(sctx, acts.RunStep, in).Get(ctx, &out); err != nil {
		return err
	}
	if out.Target != nil {
		m.st.Target = out.Target
	}
	return nil
}

// startNetworkCheck runs the network check a task asked for at its start
// (start_network_check): once the target is ready, before the copy, so it
// measures the link the copy will use. A failed check is logged and the
// copy goes on; its result is the task's network_check_info.
func (m *migration) startNetworkCheck(ctx workflow.Context) {
	if !m.in.StartNetworkCheck || m.st.ResumeAgent {
		return
	}
	if workflow.GetVersion(ctx, "start-network-check", workflow.DefaultVersion, 1) != 1 {
		return
	}
	if err := m.networkCheck(ctx); err != nil {
		workflow.GetLogger(ctx).Warn("network check at start", "err", err)
	}
}

// replicate is the full copy: START to the agent, then its progress.
func (m *migration) replicate(ctx workflow.Context) error {
	if !m.st.ResumeAgent {
		if err := m.apply(ctx, activities.Transition{SourceState: sms.SourceInitialize, SourceCycle: sms.CycleReplicating}); err != nil {
			return err
		}
	}
	return m.agentStep(ctx, sms.StepMigrate, sms.CmdStart, sms.SourceReplicate, sms.CycleReplicating)
}

// sync copies what changed. A continuous-sync task repeats it every
// SyncInterval until the operator launches the target (test) — clone_test
// clones meanwhile; any other task makes one final pass before cutover.
func (m *migration) sync(ctx workflow.Context) error {
	loop := m.in.Syncing
	// A task that needs a migration test syncs like a continuous one
	// until it is tested and launched.
	if !loop && m.in.NeedMigrationTest && workflow.GetVersion(ctx, "need-migration-test", workflow.DefaultVersion, 1) == 1 {
		loop = true
	}
	if !loop {
		return m.agentStep(ctx, sms.StepSync, sms.CmdSync, sms.SourceSyncing, sms.CycleSyncing)
	}
	if m.bounded {
		return m.syncLoop(ctx)
	}
	if err := m.apply(ctx, activities.Transition{TaskState: sms.TaskSyncing, SourceState: sms.SourceSyncing, SourceCycle: sms.CycleSyncing}); err != nil {
		return err
	}
	m.st.InSyncLoop = true
	defer func() { m.st.InSyncLoop = false }()
	m.waveEvent(ctx, WaveEventSyncing)
	interval := m.syncInterval()
	for {
		if err := m.agentStep(ctx, sms.StepSync, sms.CmdSync, sms.SourceSyncing, sms.CycleSyncing); err != nil {
			return err
		}
		m.st.SyncRounds++
		for {
			ok, err := workflow.AwaitWithTimeout(ctx, interval, func() bool {
				return m.st.CutoverRequested || m.st.StopRequested || m.st.DeleteRequested || m.st.CloneRequest != nil
			})
			if err != nil {
				return err
			}
			if m.st.DeleteRequested {
				return errDeleted
			}
			if m.st.StopRequested {
				return m.stop(ctx)
			}
			if m.st.CloneRequest != nil {
				if err := m.clone(ctx); err != nil {
					return err
				}
				continue
			}
			if m.st.CutoverRequested {
				m.st.CutoverRequested = false
				m.waveEvent(ctx, WaveEventFinalPass)
				// Launch: a last pass, then configure and start the target.
				return m.agentStep(ctx, sms.StepSync, sms.CmdSync, sms.SourceSyncing, sms.CycleSyncing)
			}
			if !ok {
				break // time for the next pass
			}
		}
	}
}

// syncLoop is sync's loop for bounded-history runs: the same passes, with
// the point it is at (in a pass, between passes until NextSyncAt, in the
// launch's final pass) kept in the state, so that a run can continue as new
// anywhere in it and the next run picks up at that point.
func (m *migration) syncLoop(ctx workflow.Context) error {
	if !m.st.ResumeAgent && !m.st.ResumeSync {
		if err := m.apply(ctx, activities.Transition{TaskState: sms.TaskSyncing, SourceState: sms.SourceSyncing, SourceCycle: sms.CycleSyncing}); err != nil {
			return err
		}
		m.waveEvent(ctx, WaveEventSyncing)
	}
	// A carry-over's state was copied before this runs: the next run is
	// still in the loop.
	m.st.InSyncLoop = true
	defer func() { m.st.InSyncLoop = false }()
	interval := m.syncInterval()
	for {
		if m.st.ResumeSync {
			m.st.ResumeSync = false
		} else {
			err := m.agentStep(ctx, sms.StepSync, sms.CmdSync, sms.SourceSyncing, sms.CycleSyncing)
			if err != nil || m.st.FinalPass {
				m.st.FinalPass = false
				return err
			}
			m.st.SyncRounds++
			m.st.NextSyncAt = workflow.Now(ctx).Add(interval)
		}
		for {
			pending := func() bool {
				return m.st.CutoverRequested || m.st.StopRequested || m.st.DeleteRequested || m.st.CloneRequest != nil
			}
			ok, err := workflow.AwaitWithTimeout(ctx, max(m.st.NextSyncAt.Sub(workflow.Now(ctx)), time.Second), func() bool {
				return pending() || m.continueAsNewDue(ctx)
			})
			if err != nil {
				return err
			}
			if !pending() && m.continueAsNewDue(ctx) {
				if err := m.quiesce(ctx); err != nil {
					return err
				}
				if !pending() {
					m.st.ResumeSync = true
					return m.carry()
				}
			}
			if m.st.DeleteRequested {
				return errDeleted
			}
			if m.st.StopRequested {
				return m.stop(ctx)
			}
			if m.st.CloneRequest != nil {
				if err := m.clone(ctx); err != nil {
					return err
				}
				continue
			}
			if m.st.CutoverRequested {
				m.st.CutoverRequested = false
				m.waveEvent(ctx, WaveEventFinalPass)
				// Launch: a last pass, then configure and start the target.
				m.st.FinalPass = true
				break
			}
			if !ok && !workflow.Now(ctx).Before(m.st.NextSyncAt) {
				break // time for the next pass
			}
		}
	}
}

// carryOver unwinds the steps to run, which continues as new with st: the
// state as it was when the run decided to, before the steps' defers run.
type carryOver struct{ st RunState }

func (*carryOver) Error() string { return "continue as new" }

// carry captures the state for the next run, which resumes the steps.
func (m *migration) carry() error {
	st := *m.st
	st.ResumeSteps = true
	return &carryOver{st: st}
}

// quiesce lets the run settle before it continues as new: update handlers
// finish, side activities (speed pushes, network checks) complete, and
// signals already delivered are handled, so nothing asked for is lost.
// The caller looks at the state again afterwards: something may now be due.
func (m *migration) quiesce(ctx workflow.Context) error {
	for {
		if err := workflow.Await(ctx, func() bool { return m.busy == 0 && workflow.AllHandlersFinished(ctx) }); err != nil {
			return err
		}
		// A signal the handler coroutine's selector has taken is handled
		// only when that coroutine runs: let every coroutine run once (a
		// coroutine started now runs after the others; no command, no
		// event).
		ran := false
		workflow.Go(ctx, func(workflow.Context) { ran = true })
		if err := workflow.Await(ctx, func() bool { return ran }); err != nil {
			return err
		}
		m.drain(ctx)
		m.takeWaveSignals() // a wave's cap or command waiting goes with the state
		if m.busy == 0 && workflow.AllHandlersFinished(ctx) {
			return nil // a speed change just handled may have started a push
		}
	}
}

// drain handles the signals waiting in the channels.
func (m *migration) drain(ctx workflow.Context) {
	for {
		var p Progress
		var r CommandResult
		var u SpeedUpdate
		switch {
		case m.progress.ReceiveAsync(&p):
			m.onProgress(ctx, p)
		case m.results.ReceiveAsync(&r):
			m.onResult(r)
		case m.speed.ReceiveAsync(&u):
			m.st.Speed, m.st.SpeedChanged = u, true
		default:
			return
		}
	}
}

func (m *migration) clone(ctx workflow.Context) error {
	req := m.st.CloneRequest
	m.st.CloneRequest = nil
	if m.st.Target == nil {
		return nil
	}
	if err := m.apply(ctx, activities.Transition{SourceState: sms.SourceCloning, SourceCycle: sms.CycleSyncing,
		BeginSubtask: sms.SubtaskCloneVM}); err != nil {
		return err
	}
	// template_id is the clone's template (its name names the clone), not
	// the clone's name: the provider's name for it stays one it accepts.
	name := fmt.Sprintf("clone-%d", workflow.Now(ctx).Unix())
	if req.Operation == sms.ActionMigrationTst {
		name = fmt.Sprintf("migration-test-%d", workflow.Now(ctx).Unix())
	}
	in := activities.CloneInput{Ref: m.ref(), Target: *m.st.Target, Name: name, TemplateID: req.TemplateID}
	// A clone copies whole disks: hours are possible, so a lost worker is
	// found by the heartbeat, not by the overall timeout.
	cctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 12 * time.Hour, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	})
	var res activities.CloneResult
	if err := workflow.ExecuteActivity(cctx, acts.Clone, in).Get(ctx, &res); err != nil {
		return err
	}
	if err := m.apply(ctx, activities.Transition{SourceState: sms.SourceSyncing, SourceCycle: sms.CycleSyncing, FinishSubtask: sms.SubtaskCloneVM}); err != nil {
		return err
	}
	// Only a clone that finished is a migration test: a failed one (or a
	// template gone) leaves the task needing one. Runs recorded before
	// Clone had a result decode none (the zero value) and keep the flag
	// they set then.
	if res.CloneState == sms.CloneFinished || res.CloneState == "" {
		m.st.MigrationTested = true
	}
	m.waveEvent(ctx, WaveEventTested)
	return nil
}

// agentStep queues a command and follows the agent's progress on it until
// it reports 100%, fails, goes silent for AgentStepTimeout, breaks the speed
// limit, or the operator stops or deletes the task.
func (m *migration) agentStep(ctx workflow.Context, step sms.Step, command sms.Command, srcState sms.SourceState, srcCycle sms.Cycle) error {
	sub := sms.SubtaskName(step, m.in.Type, m.in.OSType)
	// A run that continued as new mid-step waits for the command the last
	// one sent: the agent is working on it, a second one would restart it.
	resume := m.st.ResumeAgent && m.st.AgentSubtask == sub && m.st.AgentCommand == command
	m.st.ResumeAgent = false
	if !resume {
		// The activity gives up by itself (SMS.0508, not retried) once the
		// agent has stayed away for the step timeout. An attempt lost with
		// its worker — smsflow killed or restarted while it waited, its
		// heartbeat timed out — is retried rather than fail the task: the
		// agent could not poll a service that was down. Only the options
		// and the input changed, not the commands: no version marker.
		// ScheduleToClose bounds the retries: a worker lost again and again
		// (or an error that is not SMS.0508) fails the step after twice
		// the step timeout instead of waiting forever.
		wctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: m.stepTimeout() + time.Minute, ScheduleToCloseTimeout: 2 * m.stepTimeout(),
			HeartbeatTimeout: 30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
				MaximumInterval: 10 * time.Second, NonRetryableErrorTypes: []string{string(smserr.SMS0507), string(smserr.SMS0508)}},
		})
		wait := activities.WaitAgentInput{Ref: m.ref(), Since: workflow.Now(ctx), Timeout: m.stepTimeout()}
		if err := m.waitAgent(ctx, wctx, wait); err != nil {
			return err
		}
		m.st.AgentActive, m.st.AgentSubtask, m.st.AgentCommand = true, sub, command
		m.st.AgentProgress, m.st.CommandFailed, m.st.OverSpeed, m.st.OverSince = 0, "", false, time.Time{}
		m.st.LastProgressAt = workflow.Now(ctx)
	}
	defer func() { m.st.AgentActive = false }()
	if !resume {
		// consistency_check tells the agent whether to verify the target
		// after the pass (agents that do not know it always verify).
		params := map[string]any{"subtask": sub, "migrate_type": m.in.Type, "speed_limit": m.st.Limit.Mbps,
			"consistency_check": !m.st.SkipConsistency}
		if m.st.ResendBlocks && command == sms.CmdSync {
			params["resend"] = true
		}
		if err := m.apply(ctx, activities.Transition{SourceState: srcState, SourceCycle: srcCycle, BeginSubtask: sub,
			Command: command, CommandParams: params}); err != nil {
			return err
		}
	}
	done := func() bool {
		return m.st.AgentProgress >= 100 || m.st.CommandFailed != "" || m.st.StopRequested ||
			m.st.DeleteRequested || m.st.OverSpeed
	}
	for {
		wait := m.stepTimeout() - workflow.Now(ctx).Sub(m.st.LastProgressAt)
		ok, err := workflow.AwaitWithTimeout(ctx, max(wait, time.Second), func() bool {
			return done() || (m.bounded && m.continueAsNewDue(ctx))
		})
		if err != nil {
			return err
		}
		if m.bounded && !done() && m.continueAsNewDue(ctx) {
			if err := m.quiesce(ctx); err != nil {
				return err
			}
			if !done() {
				m.st.ResumeAgent = true
				return m.carry()
			}
		}
		switch {
		case m.st.DeleteRequested:
			return errDeleted
		case m.st.StopRequested:
			return m.stop(ctx)
		case m.st.OverSpeed:
			_ = m.apply(ctx, activities.Transition{Command: sms.CmdStop})
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the agent sent %.0f Mbit/s for %s, over the limit of %d Mbit/s + %.0f%%: stopped",
					m.st.OverSpeedMbps, OverSpeedGrace, m.st.Limit.Mbps, m.st.Limit.Threshold),
				string(smserr.SMS1802), nil)
		case m.st.CommandFailed != "":
			code, msg := AgentFailure(m.st.CommandFailed)
			return temporal.NewNonRetryableApplicationError(msg, string(code), nil)
		case m.st.AgentProgress >= 100:
			return m.apply(ctx, activities.Transition{FinishSubtask: sub})
		case !ok && workflow.Now(ctx).Sub(m.st.LastProgressAt) >= m.stepTimeout():
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("no progress from the agent on %s for %s", sub, m.stepTimeout()), string(smserr.SMS5403), nil)
		}
	}
}

// waitAgent waits for the task's agent to be connected before a command.
// A task whose source died waits here for up to AgentStepTimeout: runs since
// "wait-agent-interruptible" stop waiting when the task is deleted or
// stopped (the delete of §4.2.4 for a disconnected agent), runs from before
// replay their uninterrupted wait.
func (m *migration) waitAgent(ctx, wctx workflow.Context, wait activities.WaitAgentInput) error {
	wrap := func(err error) error {
		return temporal.NewNonRetryableApplicationError("the agent is not connected: "+err.Error(), string(smserr.SMS0508), err)
	}
	if workflow.GetVersion(ctx, "wait-agent-interruptible", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		if err := workflow.ExecuteActivity(wctx, acts.WaitAgent, wait).Get(ctx, nil); err != nil {
			return wrap(err)
		}
		return nil
	}
	cctx, cancel := workflow.WithCancel(wctx)
	f := workflow.ExecuteActivity(cctx, acts.WaitAgent, wait)
	if err := workflow.Await(ctx, func() bool { return f.IsReady() || m.st.DeleteRequested || m.st.StopRequested }); err != nil {
		cancel()
		return err
	}
	if !f.IsReady() {
		cancel()
		if m.st.DeleteRequested {
			return errDeleted
		}
		return m.stop(ctx)
	}
	if err := f.Get(ctx, nil); err != nil {
		return wrap(err)
	}
	return nil
}

// finishedActionDue: a finished task was asked to sync, roll back or clear.
func (m *migration) finishedActionDue() bool {
	return m.vocab && (m.st.SyncRequested || m.st.RollbackRequested || m.st.ClearRequested)
}

// finishedAction serves a finished task's sync, rollback or clear; done
// says the run ends with (st, err).
func (m *migration) finishedAction(ctx workflow.Context) (st Status, err error, done bool) {
	switch {
	case m.st.RollbackRequested:
		// The failed sync is rolled back: the target's snapshot from before
		// the pass is restored (runs from before "target-snapshots" restore
		// only the task's state), and the task is finished as before it.
		m.st.RollbackRequested = false
		if err := m.apply(ctx, activities.Transition{TaskState: sms.TaskReseting}); err != nil {
			st, err := m.canceled(ctx, err)
			return st, err, true
		}
		if m.snapshots {
			if rerr := m.restoreTarget(ctx); rerr != nil {
				if temporal.IsCanceledError(rerr) || ctx.Err() != nil {
					st, err := m.canceled(ctx, rerr)
					return st, err, true
				}
				// The restore failed: the task is SYNC_FAIL again, with
				// the cause; a later rollback tries again.
				if err := m.failAs(ctx, sms.TaskSyncFail, rerr); err != nil {
					st, err := m.canceled(ctx, err)
					return st, err, true
				}
				return Status{}, nil, false
			}
			m.st.ResendBlocks = true
		}
		if err := m.apply(ctx, activities.Transition{TaskState: sms.TaskMigrateSuccess, SourceState: sms.SourceFinished,
			SourceCycle: sms.CycleCutovered, ClearFailure: true}); err != nil {
			st, err := m.canceled(ctx, err)
			return st, err, true
		}
	case m.st.ClearRequested:
		m.st.ClearRequested = false
		if m.snapshots && m.st.Target != nil {
			in := activities.SnapshotInput{Ref: m.ref(), Target: *m.st.Target, ID: m.st.SnapshotID}
			if err := workflow.ExecuteActivity(activityCtx(ctx, 10*time.Minute), acts.DeleteSnapshots, in).Get(ctx, nil); err != nil {
				if temporal.IsCanceledError(err) || ctx.Err() != nil {
					st, err := m.canceled(ctx, err)
					return st, err, true
				}
				// The record stays with the snapshot: a later clear
				// tries again.
				workflow.GetLogger(ctx).Warn("clear: delete target snapshots", "err", err)
				return Status{}, nil, false
			}
		}
		m.st.SnapshotID = ""
		if err := m.apply(ctx, activities.Transition{ClearSnapshot: true}); err != nil {
			st, err := m.canceled(ctx, err)
			return st, err, true
		}
	case m.st.SyncRequested:
		m.st.SyncRequested = false
		m.st.FinishedSync = true
		// After a failed pass the target is half-synced: the snapshot
		// from before it stays what a rollback restores.
		keepSnapshot := m.st.TaskState == sms.TaskSyncFail && m.st.SnapshotID != ""
		if err := m.apply(ctx, activities.Transition{TaskState: sms.TaskSyncing, SourceState: sms.SourceSyncing,
			SourceCycle: sms.CycleSyncing, ClearFailure: true}); err != nil {
			st, err := m.canceled(ctx, err)
			return st, err, true
		}
		if m.snapshots && !keepSnapshot {
			if serr := m.snapshotTarget(ctx); serr != nil {
				// No snapshot, no pass: the target is as it was, and the
				// task SYNC_FAIL with the cause (a start tries again).
				m.st.FinishedSync = false
				if temporal.IsCanceledError(serr) || ctx.Err() != nil {
					st, err := m.canceled(ctx, serr)
					return st, err, true
				}
				if err := m.failAs(ctx, sms.TaskSyncFail, serr); err != nil {
					st, err := m.canceled(ctx, err)
					return st, err, true
				}
				return Status{}, nil, false
			}
		}
		return m.finishedSync(ctx)
	}
	return Status{}, nil, false
}

// snapshotActivityCtx runs a snapshot copy or restore: a whole target's
// disks may take hours, and the heartbeats tell a lost worker within a
// minute.
func snapshotActivityCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 12 * time.Hour, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	})
}

// snapshotTarget snapshots the target before a finished task's sync pass.
// The id is the run's (its clock, so a replay names the same one); the
// snapshot replaces the earlier one, so the record is dropped first.
func (m *migration) snapshotTarget(ctx workflow.Context) error {
	m.st.SnapshotID = ""
	if m.st.Target == nil {
		return nil
	}
	id := fmt.Sprintf("sync-%d", workflow.Now(ctx).UnixMilli())
	in := activities.SnapshotInput{Ref: m.ref(), Target: *m.st.Target, ID: id}
	var taken bool
	if err := workflow.ExecuteActivity(snapshotActivityCtx(ctx), acts.SnapshotTarget, in).Get(ctx, &taken); err != nil {
		return err
	}
	if taken {
		m.st.SnapshotID = id
	}
	return nil
}

// restoreTarget writes the target's snapshot back (sync_failed_rollback).
func (m *migration) restoreTarget(ctx workflow.Context) error {
	if m.st.Target == nil {
		return temporal.NewNonRetryableApplicationError("the task has no target to restore", string(smserr.SMS8103), nil)
	}
	in := activities.SnapshotInput{Ref: m.ref(), Target: *m.st.Target, ID: m.st.SnapshotID}
	return workflow.ExecuteActivity(snapshotActivityCtx(ctx), acts.RestoreTarget, in).Get(ctx, nil)
}

// finishedSync is a finished task's sync pass: SYNC_SUCCESS, or SYNC_FAIL
// with the cause. Stopped, it is ABORT, and a start resumes the run at the
// sync step (then configure, detach and start the target again).
func (m *migration) finishedSync(ctx workflow.Context) (st Status, err error, done bool) {
	m.st.Step = sms.StepSync
	serr := m.agentStep(ctx, sms.StepSync, sms.CmdSync, sms.SourceSyncing, sms.CycleSyncing)
	var carry *carryOver
	switch {
	case errors.As(serr, &carry):
		in := m.in
		in.Resume = &carry.st
		return Status{}, workflow.NewContinueAsNewError(ctx, MigrationWorkflow, in), true
	case errors.Is(serr, errDeleted):
		st, err := m.delete(ctx)
		return st, err, true
	}
	m.st.FinishedSync = false
	if serr == nil && !m.st.SkipConsistency && workflow.GetVersion(ctx, "finished-sync-check", workflow.DefaultVersion, 1) == 1 {
		// The agent verified the target after this pass too: a mismatch
		// is SYNC_FAIL (SMS.1511), which a rollback undoes, never a
		// SYNC_SUCCESS over a target that differs. Runs recorded before
		// the check replay without it.
		serr = workflow.ExecuteActivity(activityCtx(ctx, time.Minute), acts.CheckConsistency, m.ref()).Get(ctx, nil)
	}
	switch {
	case serr == nil:
		m.st.Step, m.st.ResendBlocks = sms.StepMigrate, false
		serr = m.apply(ctx, activities.Transition{TaskState: sms.TaskSyncSuccess, SourceState: sms.SourceFinished,
			SourceCycle: sms.CycleCutovered, Finished: true})
	case errors.Is(serr, errStopped):
		return Status{}, nil, false // idle in ABORT; start resumes at the sync step
	case temporal.IsCanceledError(serr) || ctx.Err() != nil:
	default:
		serr = m.failAs(ctx, sms.TaskSyncFail, serr)
	}
	if serr != nil {
		st, err := m.canceled(ctx, serr)
		return st, err, true
	}
	return Status{}, nil, false
}

func (m *migration) stepTimeout() time.Duration {
	if m.in.AgentStepTimeout > 0 {
		return m.in.AgentStepTimeout
	}
	return 30 * time.Minute
}

// stop asks the agent to stop and waits (a minute at most) for it to say so.
func (m *migration) stop(ctx workflow.Context) error {
	m.st.StopRequested, m.st.StopAcked = false, false
	agent := m.st.AgentActive
	tr := activities.Transition{TaskState: sms.TaskAborting}
	if agent {
		tr.Command = sms.CmdStop
	}
	if err := m.apply(ctx, tr); err != nil {
		return err
	}
	if agent {
		if _, err := workflow.AwaitWithTimeout(ctx, time.Minute, func() bool { return m.st.StopAcked || m.st.DeleteRequested }); err != nil {
			return err
		}
	}
	if err := m.apply(ctx, activities.Transition{TaskState: sms.TaskAbort, SourceState: sms.SourceStopped, SourceCycle: m.cycleForStop()}); err != nil {
		return err
	}
	return errStopped
}

// cycleForStop keeps the cycle where a stopped source is allowed (SMS.7728).
func (m *migration) cycleForStop() sms.Cycle {
	switch m.st.SourceCycle {
	case sms.CycleReplicating, sms.CycleSyncing, sms.CycleCutovering, sms.CycleCutovered:
		return m.st.SourceCycle
	}
	return sms.CycleReplicating
}

// fail records what stopped the run: MIGRATE_FAIL with error_json, the
// source in error. A later start or restart resumes from this step.
func (m *migration) fail(ctx workflow.Context, cause error) error {
	return m.failAs(ctx, sms.TaskMigrateFail, cause)
}

// failAs is fail ending in state (MIGRATE_FAIL, or SYNC_FAIL for a finished
// task's sync).
func (m *migration) failAs(ctx workflow.Context, state sms.TaskState, cause error) error {
	code, msg, params := string(smserr.SMS1801), cause.Error(), []string(nil)
	var ae *temporal.ApplicationError
	if errors.As(cause, &ae) {
		if t := ae.Type(); len(t) > 4 && t[:4] == "SMS." {
			code = t
		}
		msg = ae.Message()
		var p []string
		if ae.HasDetails() && ae.Details(&p) == nil {
			params = p
		}
	}
	m.st.FailedStep = m.st.Step
	if m.in.Rules >= 1 {
		// A skip holds for the run it was asked in: the restart of a
		// failed run checks the target again unless skipped again.
		// (Runs started before Rules 1 kept it and replay so.)
		m.st.SkipCheck = false
	}
	workflow.GetLogger(ctx).Warn("task failed", "step", m.st.Step, "code", code, "err", msg)
	err := m.apply(ctx, activities.Transition{TaskState: state, SourceState: sms.SourceError,
		SourceCycle: m.cycleForStop(), Failure: &activities.Fail{Code: code, Msg: msg, Step: m.st.Step, Param: params}})
	if err == nil {
		m.waveEvent(ctx, WaveEventFailed, code, msg)
	}
	return err
}

// delete cleans the task up: the agent stops and forgets, the created
// target goes, the task row goes. It runs in a disconnected context so a
// cancellation cannot leave half a deletion.
func (m *migration) delete(ctx workflow.Context) (Status, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err := m.apply(dctx, activities.Transition{TaskState: sms.TaskDeleting}); err != nil {
		return m.status(), err
	}
	in := activities.CleanupInput{Ref: m.ref(), Target: m.st.Target, DeleteTarget: m.st.Target != nil && m.st.Target.Created,
		AgentRunning: m.st.AgentActive || m.st.Step == sms.StepMigrate || m.st.Step == sms.StepSync}
	if err := workflow.ExecuteActivity(activityCtx(dctx, 10*time.Minute), acts.Cleanup, in).Get(dctx, nil); err != nil {
		return m.status(), err
	}
	st := m.status()
	st.Deleted = true
	return st, nil
}

// canceled handles a cancellation from the Temporal UI: the task is marked
// ABORT (in a disconnected context) and the run ends.
func (m *migration) canceled(ctx workflow.Context, cause error) (Status, error) {
	if ctx.Err() == nil && !temporal.IsCanceledError(cause) {
		return m.status(), cause
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	tr := activities.Transition{TaskState: sms.TaskAbort}
	if m.waveMember && (m.st.Step == sms.StepMigrate || m.st.Step == sms.StepSync) {
		// A canceled wave leaves nothing running: the agent stops too.
		tr.Command = sms.CmdStop
	}
	_ = m.apply(dctx, tr)
	return m.status(), cause
}

func (m *migration) networkCheck(ctx workflow.Context) error {
	return m.apply(ctx, activities.Transition{Command: sms.CmdNetworkCheck})
}

// networkChecks sends the agent a NETWORK_CHECK for each one asked for;
// requests made while one is being sent are answered by one more.
func (m *migration) networkChecks(ctx workflow.Context) {
	for {
		if err := workflow.Await(ctx, func() bool { return m.st.NetworkCheck }); err != nil {
			return
		}
		m.st.NetworkCheck = false
		m.busy++
		if err := m.networkCheck(ctx); err != nil {
			workflow.GetLogger(ctx).Warn("network check", "err", err)
		}
		m.busy--
	}
}

// speedLoop keeps the agent at the limit in force: it wakes at each window
// boundary (durable timers) or when the rules change, and pushes a changed
// limit while the agent is working.
func (m *migration) speedLoop(ctx workflow.Context) {
	// Runs from before version 1 cleared the flag after the push (losing a
	// change signalled while it ran); they replay as they ran.
	clearFirst := workflow.GetVersion(ctx, "speed-change-kept", workflow.DefaultVersion, 1) == 1
	for {
		// Cleared before the rules are read: a change signalled while the
		// push below runs wakes the next round instead of being lost.
		if clearFirst {
			m.st.SpeedChanged = false
		}
		s := m.st.Speed
		rules := s.Rules
		ws, errs := speedlimit.Parse(rules)
		if len(errs) > 0 {
			ws = nil // validated by the API; never reached with good input
		}
		now := workflow.Now(ctx)
		lim, next := speedlimit.At(ws, speedlimit.Limit{Mbps: s.SpeedLimit, Threshold: s.OverSpeedThreshold}, now, m.loc)
		lim = m.waveCapped(lim)
		if lim != m.st.Limit {
			m.st.Limit = lim
			m.st.OverSince = time.Time{}
			// Agent steps get the limit with their command; only changes
			// while one runs are pushed to the agent.
			in := activities.SpeedInput{Ref: m.ref(), Mbps: lim.Mbps, Threshold: lim.Threshold, Notify: m.st.AgentActive}
			m.busy++
			_ = workflow.ExecuteActivity(activityCtx(ctx, time.Minute), acts.PushSpeedLimit, in).Get(ctx, nil)
			m.busy--
		}
		m.ackWaveCap(ctx)
		if !clearFirst {
			m.st.SpeedChanged = false
		}
		if _, err := workflow.AwaitWithTimeout(ctx, next.Sub(now), func() bool { return m.st.SpeedChanged }); err != nil {
			return
		}
	}
}

// continueAsNewDue: long-lived tasks (continuous sync, finished tasks kept
// for restart) start a fresh history before it grows large.
// Bounded-history runs also heed the server's suggestion and continue at
// HistoryBound; earlier runs replay their 8,000-event rule.
func (m *migration) continueAsNewDue(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	if m.bounded {
		bound := HistoryBound
		if m.in.HistoryBound > 0 {
			bound = m.in.HistoryBound
		}
		return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= bound
	}
	return info.GetCurrentHistoryLength() > 8000
}

func (m *migration) continueAsNew(ctx workflow.Context) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	m.takeWaveSignals()
	in := m.in
	st := *m.st
	in.Resume = &st
	return workflow.NewContinueAsNewError(ctx, MigrationWorkflow, in)
}

// AgentFailure reads a failed command's result_detail: the smsflow agent
// sends {"error_code":"SMS.xxxx","msg":"..."}; a known code is kept (a source
// disk that changed is SMS.0515, an unreachable target SMS.0807, ...),
// anything else is SMS.1801 with the detail as the message.
func AgentFailure(detail string) (smserr.Code, string) {
	var d struct {
		Code string `json:"error_code"`
		Msg  string `json:"msg"`
	}
	if json.Unmarshal([]byte(detail), &d) == nil && d.Code != "" {
		if _, ok := smserr.Lookup(smserr.Code(d.Code)); ok {
			msg := d.Msg
			if msg == "" {
				msg = detail
			}
			return smserr.Code(d.Code), msg
		}
	}
	return smserr.SMS1801, detail
}
