package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/wave"
)

// WaveOpsPerRun bounds what one run of a wave does (activities, child
// starts, signals sent and received, timers) before it continues as new:
// each adds at most six events with its workflow tasks, so a run stays under
// about 6,000 events — below Temporal's 10,240-event warning even when the
// server's own suggestion (4,096 events by default) is switched off.
const WaveOpsPerRun = 1000

// CapAckTimeout is how long the wave waits for members to apply lowered
// caps before it hands the bandwidth to others anyway (a member whose run
// is gone never answers).
const CapAckTimeout = 2 * time.Minute

// DependencyPoll is how often a wave whose depends_on wave is not DONE
// looks again.
const DependencyPoll = 10 * time.Minute

// WaveHistoryLimit: a run whose history is longer continues as new, whatever
// the server suggests.
const WaveHistoryLimit = 8000

// WaveRunState is everything a wave's run knows; it is one serializable
// struct so a continue-as-new carries it whole.
type WaveRunState struct {
	Loaded bool
	// State is the wave's state; Before is the running state a PAUSED or
	// FAILED wave goes back to.
	State  wave.WaveState
	Before wave.WaveState
	Reason string
	// Spec holds the wave's settings (read at the start and on resume).
	Spec wave.Spec
	// Members in start order (priority, then as listed).
	Members    []WaveMember
	BudgetMbps int32

	TestApproved    bool
	CutoverApproved bool

	// Requests from the Update and the signals, and member events, taken
	// by the main loop.
	PauseRequested  bool
	ResumeRequested bool
	RetryRequested  bool
	CancelRequested bool
	Events          []WaveMemberEvent
	// Kick wakes the main loop once for an accepted action (an approval
	// is a state, not a wake-up: a wave approved but outside its cutover
	// window sleeps until the window).
	Kick bool

	// Runs counts the continue-as-news (diagnostics, tests).
	Runs int
}

// WaveMember is one member in the wave's run.
type WaveMember struct {
	ID       string
	TaskID   string
	SourceID string
	State    wave.MemberState
	// FailedFrom is the state a FAILED member failed in (retry_failed
	// resumes from it).
	FailedFrom wave.MemberState
	// Started: its MigrationWorkflow was started (a retry restarts it
	// rather than start a second one).
	Started bool
	// SpeedMbps is its copy's speed as it last reported (SpeedKnown).
	SpeedMbps  float64
	SpeedKnown bool
	// Cap is the bandwidth share last pushed to it (0: none); Acked the
	// last one it said it applied.
	Cap         int32
	Acked       int32
	FinalPassAt time.Time
	DoneAt      time.Time
	ErrorCode   string
	ErrorMsg    string
}

type waveRun struct {
	in  WaveInput
	st  *WaveRunState
	loc *time.Location
	// ops counts what this run did (see WaveOpsPerRun).
	ops int
	// changes waits for the next UpdateWaveMembers.
	changes []activities.WaveMemberChange
	// newFailure: a member failed since the last max_failures check.
	newFailure bool
	events     workflow.ReceiveChannel
	signals    []waveSignal
	// membersFirst: the members' pending rows are written before the
	// wave's state (version "wave-members-before-state"), so a reader who
	// sees the wave DONE sees its members DONE too. Runs that started
	// before wrote the state first and replay that way.
	membersFirst bool
}

// WaveWorkflow runs a wave (id wave/<id>): it starts each member's
// MigrationWorkflow as a child in priority order, at most max_concurrent
// copying at once; shares the bandwidth budget in force among the copying
// members; pauses after max_failures failed members; once every member
// syncs it tests them (test_first) and waits for approve_test, then for
// approve_cutover (mode approve) and the next cutover window, and cuts the
// members over, max_concurrent at a time. Operator actions arrive as the
// validated Update "wave-action" (pause, resume and retry_failed also as
// signals); the members' events as signals. The database's wave and
// member rows follow through activities.
//
// Members are ABANDONed by their parent's close: a continue-as-new must
// leave them running. A cancel (the action, or cancelling the run in the
// Temporal UI) cancels every member explicitly, and each stops its agent.
func WaveWorkflow(ctx workflow.Context, in WaveInput) error {
	w := &waveRun{in: in, st: &WaveRunState{}}
	if in.Resume != nil {
		w.st = in.Resume
	}
	loc, err := wave.LoadZone(in.TimeZone)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), string(wave.ErrTimeZone.Code), err)
	}
	w.loc = loc
	if err := w.setup(ctx); err != nil {
		return err
	}
	return w.run(ctx)
}

// WaveStartWorkflow is what a wave's Schedule starts. Temporal appends the
// scheduled time to the ids of the runs a Schedule starts
// (wave/<id>-2026-03-02T22:00:00Z), while the API, the members and the
// operator reach a wave at wave/<id>: so this small run starts WaveWorkflow
// there, as a child it abandons, and ends.
func WaveStartWorkflow(ctx workflow.Context, in WaveInput) error {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: WaveWorkflowID(in.WaveID), TaskQueue: TaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		TypedSearchAttributes: temporal.NewSearchAttributes(saWaveID.ValueSet(in.WaveID)),
	})
	err := workflow.ExecuteChildWorkflow(cctx, WaveWorkflow, in).GetChildWorkflowExecution().Get(ctx, nil)
	var exists *temporal.ChildWorkflowExecutionAlreadyStartedError
	if errors.As(err, &exists) {
		return nil // started already (by the API's start): not twice
	}
	return err
}

func (w *waveRun) status() WaveStatus {
	s := WaveStatus{State: w.st.State, Reason: w.st.Reason, BudgetMbps: w.st.BudgetMbps}
	for _, m := range w.st.Members {
		s.Members = append(s.Members, WaveMemberStatus{ID: m.ID, TaskID: m.TaskID, State: m.State, ShareMbps: m.Cap})
	}
	return s
}

func (w *waveRun) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryWaveState, func() (WaveStatus, error) { return w.status(), nil }); err != nil {
		return err
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateWaveAction,
		func(ctx workflow.Context, req WaveActionRequest) error {
			w.request(req.Action)
			return nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req WaveActionRequest) error {
			return w.validate(req.Action)
		}})
	if err != nil {
		return err
	}
	// Signals stay in their channels until the main loop takes them
	// (drain): no coroutine holds one half-received when the run
	// continues as new — a selector's pending receive would be lost then.
	w.events = workflow.GetSignalChannel(ctx, SignalWaveMember)
	w.signals = []waveSignal{
		{workflow.GetSignalChannel(ctx, SignalWavePause), wave.ActionPause},
		{workflow.GetSignalChannel(ctx, SignalWaveResume), wave.ActionResume},
		{workflow.GetSignalChannel(ctx, SignalWaveRetryFailed), wave.ActionRetryFailed},
	}
	return nil
}

type waveSignal struct {
	ch     workflow.ReceiveChannel
	action wave.Action
}

// pending tells whether a signal waits in a channel.
func (w *waveRun) pending() bool {
	if w.events.Len() > 0 {
		return true
	}
	for _, s := range w.signals {
		if s.ch.Len() > 0 {
			return true
		}
	}
	return false
}

// drain takes every signal waiting: member events into the state, the
// operator's signals as actions (one the state does not allow is logged
// and dropped).
func (w *waveRun) drain(ctx workflow.Context) {
	for {
		var ev WaveMemberEvent
		if !w.events.ReceiveAsync(&ev) {
			break
		}
		w.st.Events = append(w.st.Events, ev)
		w.ops++
	}
	for _, s := range w.signals {
		for s.ch.ReceiveAsync(nil) {
			w.ops++
			if err := w.validate(s.action); err != nil {
				workflow.GetLogger(ctx).Warn("wave signal refused", "action", s.action, "err", err)
				continue
			}
			w.request(s.action)
		}
	}
}

// validate refuses an action the wave cannot take now, with its wave code.
func (w *waveRun) validate(a wave.Action) error {
	// The ApplicationError's type is the code and its details the params,
	// which engine.MapError turns back into the same *smserr.Error.
	refuse := func(e error) error {
		var se *smserr.Error
		if errors.As(e, &se) {
			return temporal.NewApplicationError(se.Message, string(se.Code), se.Params)
		}
		return temporal.NewApplicationError(e.Error(), string(wave.ErrInvalid.Code))
	}
	s := w.st.State
	if !w.st.Loaded {
		s = wave.WaveReplicating
	}
	switch a {
	case wave.ActionSchedule, wave.ActionStart:
		return refuse(wave.ErrBadTransition.New(string(s), string(a)))
	case wave.ActionPause:
		if w.st.PauseRequested {
			return refuse(wave.ErrBadTransition.New(string(s), string(a)))
		}
	case wave.ActionResume:
		if w.st.ResumeRequested {
			return refuse(wave.ErrBadTransition.New(string(s), string(a)))
		}
	case wave.ActionApproveTest:
		if s == wave.WaveTesting && !w.allIn(wave.MemberTested, wave.MemberDone) {
			return refuse(wave.ErrNotAwaiting.New("approve_test (tests are still running)"))
		}
	case wave.ActionApproveCutover:
		if w.st.Spec.CutoverMode != wave.CutoverApprove || w.st.CutoverApproved {
			return refuse(wave.ErrNotAwaiting.New(string(a)))
		}
	case wave.ActionRetryFailed:
		if err := wave.CheckRetry(s, w.count(wave.MemberFailed)); err != nil {
			return refuse(err)
		}
	}
	if err := wave.CheckAction(s, a); err != nil {
		return refuse(err)
	}
	return nil
}

// request records an accepted action for the main loop, and wakes it.
func (w *waveRun) request(a wave.Action) {
	w.st.Kick = true
	switch a {
	case wave.ActionPause:
		w.st.PauseRequested = true
	case wave.ActionResume:
		w.st.ResumeRequested = true
	case wave.ActionCancel:
		w.st.CancelRequested = true
	case wave.ActionApproveTest:
		w.st.TestApproved = true
	case wave.ActionApproveCutover:
		w.st.CutoverApproved = true
	case wave.ActionRetryFailed:
		w.st.RetryRequested = true
	}
}

func (w *waveRun) ref() activities.WaveRef {
	return activities.WaveRef{WaveID: w.in.WaveID, DomainID: w.in.DomainID, ProjectID: w.in.ProjectID}
}

func (w *waveRun) count(states ...wave.MemberState) int {
	n := 0
	for _, m := range w.st.Members {
		for _, s := range states {
			if m.State == s {
				n++
			}
		}
	}
	return n
}

func (w *waveRun) allIn(states ...wave.MemberState) bool {
	return w.count(states...) == len(w.st.Members)
}

func (w *waveRun) run(ctx workflow.Context) error {
	_ = workflow.UpsertTypedSearchAttributes(ctx, saWaveID.ValueSet(w.in.WaveID))
	w.membersFirst = workflow.GetVersion(ctx, "wave-members-before-state", workflow.DefaultVersion, 1) == 1
	if !w.st.Loaded {
		if err := w.load(ctx); err != nil {
			return err
		}
	}
	for {
		w.drain(ctx)
		if ctx.Err() != nil {
			return w.cancel(ctx, true)
		}
		if w.st.CancelRequested {
			return w.cancel(ctx, false)
		}
		if err := w.advance(ctx); err != nil {
			if temporal.IsCanceledError(err) || ctx.Err() != nil {
				return w.cancel(ctx, true)
			}
			return err
		}
		if w.st.State == wave.WaveDone {
			return nil
		}
		if w.continueAsNewDue(ctx) {
			return w.continueAsNew(ctx)
		}
		wake := w.nextWake(ctx)
		cond := func() bool {
			return len(w.st.Events) > 0 || w.pending() || w.st.Kick || w.continueAsNewDue(ctx)
		}
		w.ops++
		var err error
		if wake.IsZero() {
			err = workflow.Await(ctx, cond)
		} else {
			_, err = workflow.AwaitWithTimeout(ctx, max(wake.Sub(workflow.Now(ctx)), time.Second), cond)
		}
		if err != nil {
			return w.cancel(ctx, true)
		}
	}
}

// load reads the wave and its members and starts the wave.
func (w *waveRun) load(ctx workflow.Context) error {
	var plan activities.WavePlan
	if err := workflow.ExecuteActivity(waveActivityCtx(ctx), acts.LoadWave, w.ref()).Get(ctx, &plan); err != nil {
		return err
	}
	w.ops++
	ms := make([]wave.Member, len(plan.Members))
	for i, m := range plan.Members {
		p := m.Priority
		ms[i] = wave.Member{SourceID: m.SourceID, Priority: &p}
	}
	for _, i := range wave.OrderMembers(ms) {
		m := plan.Members[i]
		st := m.State
		if !st.Valid() {
			st = wave.MemberPending
		}
		w.st.Members = append(w.st.Members, WaveMember{ID: m.ID, TaskID: m.TaskID, SourceID: m.SourceID, State: st,
			// A member the database has past PENDING was started by an
			// earlier run of this wave (smsflow restored from a backup, a
			// run terminated in the UI): it is not started twice.
			Started: st != wave.MemberPending})
	}
	w.st.Spec = plan.Spec
	if w.st.Spec.MaxConcurrent < 1 {
		w.st.Spec.MaxConcurrent = 1 // refused by Validate; a wave that never starts a member would hang
	}
	w.st.Loaded = true
	if w.st.Spec.DependsOn != "" {
		// Its Schedule started it; it waits (SCHEDULED) for the wave it
		// depends on to be DONE.
		w.st.State = wave.WaveScheduled
		return nil
	}
	return w.setState(ctx, wave.WaveReplicating, "", true, false)
}

// dependencyDone asks for the depends_on wave's state; while it is not
// DONE the wave stays SCHEDULED with the reason.
func (w *waveRun) dependencyDone(ctx workflow.Context) (bool, error) {
	var st wave.WaveState
	dep := w.st.Spec.DependsOn
	w.ops++
	if err := workflow.ExecuteActivity(waveActivityCtx(ctx), acts.DependencyState, w.ref(), dep).Get(ctx, &st); err != nil {
		if temporal.IsCanceledError(err) || ctx.Err() != nil {
			return false, err
		}
		workflow.GetLogger(ctx).Warn("wave: dependency not read", "depends_on", dep, "err", err)
		return false, nil
	}
	if st == wave.WaveDone {
		return true, nil
	}
	return false, w.setState(ctx, wave.WaveScheduled, "waiting for wave "+dep+" ("+string(st)+") to be DONE", false, false)
}

// reload reads the wave again on resume: a PAUSED wave may have been
// edited. The new settings apply from now on; members added join the
// queue (in their priority order, after the ones known), members removed
// that had not started leave it.
func (w *waveRun) reload(ctx workflow.Context) error {
	var plan activities.WavePlan
	if err := workflow.ExecuteActivity(waveActivityCtx(ctx), acts.LoadWave, w.ref()).Get(ctx, &plan); err != nil {
		return err
	}
	w.ops++
	spec := plan.Spec
	spec.MaxConcurrent = max(spec.MaxConcurrent, 1)
	w.st.Spec = spec
	inPlan := map[string]bool{}
	for _, m := range plan.Members {
		inPlan[m.ID] = true
	}
	known := map[string]bool{}
	kept := w.st.Members[:0]
	for _, m := range w.st.Members {
		known[m.ID] = true
		if !inPlan[m.ID] && !m.Started && m.State == wave.MemberPending {
			continue
		}
		kept = append(kept, m)
	}
	w.st.Members = kept
	ms := make([]wave.Member, len(plan.Members))
	for i, m := range plan.Members {
		p := m.Priority
		ms[i] = wave.Member{SourceID: m.SourceID, Priority: &p}
	}
	for _, i := range wave.OrderMembers(ms) {
		if m := plan.Members[i]; !known[m.ID] {
			w.st.Members = append(w.st.Members, WaveMember{ID: m.ID, TaskID: m.TaskID, SourceID: m.SourceID,
				State: wave.MemberPending})
		}
	}
	return nil
}

func waveActivityCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute, MaximumAttempts: 0},
	})
}

// setState records a new wave state.
func (w *waveRun) setState(ctx workflow.Context, s wave.WaveState, reason string, started, finished bool) error {
	if s == w.st.State && reason == w.st.Reason && !started && !finished {
		return nil
	}
	w.st.State, w.st.Reason = s, reason
	w.ops++
	if w.membersFirst {
		// The members' rows first: the wave's state sums them up, and a
		// reader who sees it must find them there already.
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	ch := activities.WaveStateChange{State: s, Reason: reason, At: workflow.Now(ctx), Started: started, Finished: finished}
	return recorded(ctx, workflow.ExecuteActivity(waveActivityCtx(ctx), acts.SetWaveState, w.ref(), ch), "wave state")
}

// recorded waits for a database write. The activities retry what may
// pass; what comes back is a refusal (the wave deleted, a move the store
// does not allow): logged, and the wave goes on — the workflow, not the
// row, is the truth of a running wave.
func recorded(ctx workflow.Context, f workflow.Future, what string) error {
	err := f.Get(ctx, nil)
	if err == nil || temporal.IsCanceledError(err) || ctx.Err() != nil {
		return err
	}
	workflow.GetLogger(ctx).Warn("wave: database not updated", "what", what, "err", err)
	return nil
}

// setMember moves a member and queues the change for the database. A move
// the member's life cycle does not allow (wave.CheckMemberMove, which the
// store enforces too) is not made.
func (w *waveRun) setMember(i int, s wave.MemberState, ch activities.WaveMemberChange) {
	m := &w.st.Members[i]
	if m.State != s && wave.CheckMemberMove(m.State, s) != nil {
		return
	}
	m.State = s
	ch.MemberID, ch.State = m.ID, s
	w.changes = append(w.changes, ch)
}

func (w *waveRun) flush(ctx workflow.Context) error {
	if len(w.changes) == 0 {
		return nil
	}
	chs := w.changes
	w.changes = nil
	w.ops++
	return recorded(ctx, workflow.ExecuteActivity(waveActivityCtx(ctx), acts.UpdateWaveMembers, w.ref(), chs), "members")
}

func (w *waveRun) member(taskID string) int {
	for i, m := range w.st.Members {
		if m.TaskID == taskID && taskID != "" {
			return i
		}
	}
	return -1
}

// advance does everything the wave can do now.
func (w *waveRun) advance(ctx workflow.Context) error {
	w.st.Kick = false
	w.applyEvents()
	if w.st.RetryRequested {
		w.st.RetryRequested = false
		if err := w.retry(ctx); err != nil {
			return err
		}
	}
	if w.st.PauseRequested {
		w.st.PauseRequested = false
		if w.st.State != wave.WavePaused {
			if err := w.pause(ctx, "paused by an operator"); err != nil {
				return err
			}
		}
	}
	if w.st.ResumeRequested {
		w.st.ResumeRequested = false
		if w.st.State == wave.WavePaused || w.st.State == wave.WaveFailed {
			if err := w.reload(ctx); err != nil {
				return err
			}
			if err := w.setState(ctx, w.st.Before, "", false, false); err != nil {
				return err
			}
		}
	}
	if err := w.checkFailures(ctx); err != nil {
		return err
	}
	if err := w.step(ctx); err != nil {
		return err
	}
	if err := w.checkFailures(ctx); err != nil { // members that could not start
		return err
	}
	if err := w.budget(ctx); err != nil {
		return err
	}
	return w.flush(ctx)
}

// checkFailures pauses the wave when a new failure makes more than
// max_failures failed members. Only a new one: an operator who resumes
// without retrying is not overruled at once.
func (w *waveRun) checkFailures(ctx workflow.Context) error {
	if !w.newFailure {
		return nil
	}
	w.newFailure = false
	failed := w.count(wave.MemberFailed)
	if !wave.PauseAfter(failed, w.st.Spec.MaxFailures) || w.st.State == wave.WavePaused {
		return nil
	}
	return w.pause(ctx, fmt.Sprintf("%d members failed (max_failures %d)", failed, w.st.Spec.MaxFailures))
}

func (w *waveRun) pause(ctx workflow.Context, reason string) error {
	w.st.Before = w.st.State
	return w.setState(ctx, wave.WavePaused, reason, false, false)
}

// applyEvents moves members by their events.
func (w *waveRun) applyEvents() {
	w.takeCapAcks()
	evs := w.st.Events
	w.st.Events = nil
	for _, ev := range evs {
		i := w.member(ev.TaskID)
		if i < 0 {
			continue
		}
		m := &w.st.Members[i]
		if m.State.Terminal() {
			continue
		}
		switch ev.Kind {
		case WaveEventSpeed:
			if m.State == wave.MemberCopying {
				m.SpeedMbps, m.SpeedKnown = ev.SpeedMbps, true
			}
		case WaveEventSyncing:
			m.SpeedKnown = false
			// The copy is done (also a retried member's); a member past
			// it (testing, cutting over) stays where it is.
			if m.State == wave.MemberCopying || m.State == wave.MemberFailed {
				w.setMember(i, wave.MemberSyncing, activities.WaveMemberChange{SyncedAt: ev.At, ClearError: true})
			}
		case WaveEventTested:
			if m.State == wave.MemberTesting {
				w.setMember(i, wave.MemberTested, activities.WaveMemberChange{})
			}
		case WaveEventFinalPass:
			m.FinalPassAt = ev.At
			w.setMember(i, wave.MemberCuttingOver, activities.WaveMemberChange{CutoverStarted: ev.At})
		case WaveEventDone:
			m.DoneAt = ev.At
			if m.State != wave.MemberCuttingOver { // a retried member that failed after its final pass
				w.setMember(i, wave.MemberCuttingOver, activities.WaveMemberChange{})
			}
			ch := activities.WaveMemberChange{TargetStarted: ev.At, ClearError: true}
			if !m.FinalPassAt.IsZero() {
				// In milliseconds: a quick cutover (a small disk, a quiet
				// source) lasts under a second and must not read as none.
				d := float64(ev.At.Sub(m.FinalPassAt).Milliseconds()) / 1000
				ch.DowntimeSeconds = &d
			}
			w.setMember(i, wave.MemberDone, ch)
		case WaveEventFailed:
			if m.State == wave.MemberFailed {
				continue
			}
			m.FailedFrom, m.ErrorCode, m.ErrorMsg = m.State, ev.Code, ev.Msg
			w.setMember(i, wave.MemberFailed, activities.WaveMemberChange{ErrorCode: ev.Code, ErrorMsg: ev.Msg})
			w.newFailure = true
		}
	}
}

// retry sends every failed member back to the step it failed in: a member
// that failed copying queues for the window again (and is restarted when
// its turn comes), one that failed later is restarted at once.
func (w *waveRun) retry(ctx workflow.Context) error {
	var sends []workflow.Future
	for i := range w.st.Members {
		m := &w.st.Members[i]
		if m.State != wave.MemberFailed {
			continue
		}
		to := m.FailedFrom
		switch to {
		case wave.MemberPending, wave.MemberCopying, "":
			w.setMember(i, wave.MemberPending, activities.WaveMemberChange{ClearError: true})
			continue
		case wave.MemberTesting, wave.MemberTested, wave.MemberCuttingOver:
			// Its test is made again / it is cut over again: a run that
			// failed in its final pass syncs again once restarted (one
			// that failed later finishes, and reports done).
			to = wave.MemberSyncing
		}
		sends = append(sends, w.command(ctx, i, sms.ActionStart))
		w.setMember(i, to, activities.WaveMemberChange{ClearError: true})
	}
	return waitAll(ctx, sends)
}

// command asks member i's run for a task action.
func (w *waveRun) command(ctx workflow.Context, i int, op sms.Action) workflow.Future {
	w.ops++
	return workflow.SignalExternalWorkflow(ctx, MigrationWorkflowID(w.st.Members[i].TaskID), "", SignalWaveCommand,
		WaveCommand{Operation: op})
}

// waitAll waits for signals sent; one that cannot be delivered (the member's
// run is gone: terminated in the UI) is logged, its member waits for the
// operator.
func waitAll(ctx workflow.Context, fs []workflow.Future) error {
	for _, f := range fs {
		if err := f.Get(ctx, nil); err != nil {
			if temporal.IsCanceledError(err) {
				return err
			}
			workflow.GetLogger(ctx).Warn("wave: signal to a member not delivered", "err", err)
		}
	}
	return nil
}

// step moves the wave along its life: start members into the window, test,
// wait for approvals and windows, cut over.
func (w *waveRun) step(ctx workflow.Context) error {
	if w.st.State == wave.WavePaused || w.st.State == wave.WaveFailed {
		return nil
	}
	for {
		before := w.st.State
		var err error
		switch w.st.State {
		case wave.WaveScheduled:
			var done bool
			if done, err = w.dependencyDone(ctx); err == nil && done {
				err = w.setState(ctx, wave.WaveReplicating, "", true, false)
			}
		case wave.WaveReplicating:
			if err = w.fill(ctx); err == nil && w.allSynced() {
				err = w.setState(ctx, wave.WaveSynced, "", false, false)
			}
		case wave.WaveSynced:
			next := wave.WaveAwaitingCutover
			if w.st.Spec.TestFirst {
				next = wave.WaveTesting
			}
			err = w.setState(ctx, next, "", false, false)
		case wave.WaveTesting:
			err = w.test(ctx)
			if err == nil && w.allIn(wave.MemberTested, wave.MemberDone) && w.st.TestApproved {
				err = w.setState(ctx, wave.WaveAwaitingCutover, "", false, false)
			}
		case wave.WaveAwaitingCutover:
			if w.st.Spec.CutoverMode == wave.CutoverApprove && !w.st.CutoverApproved {
				break
			}
			if w.inCutoverWindow(ctx) {
				err = w.setState(ctx, wave.WaveCuttingOver, "", false, false)
			}
		case wave.WaveCuttingOver:
			if w.inCutoverWindow(ctx) {
				err = w.cutover(ctx)
			}
			if err == nil && w.allIn(wave.MemberDone) {
				err = w.setState(ctx, wave.WaveDone, "", false, true)
			}
		}
		if err != nil || w.st.State == before {
			return err
		}
	}
}

// allSynced: every member's full copy is done (none pending, copying or
// failed).
func (w *waveRun) allSynced() bool {
	for _, m := range w.st.Members {
		if !m.State.Synced() {
			return false
		}
	}
	return true
}

// fill starts pending members, in order, while fewer than max_concurrent
// copy.
func (w *waveRun) fill(ctx workflow.Context) error {
	free := w.st.Spec.MaxConcurrent - w.count(wave.MemberCopying)
	var launch []int
	for i, m := range w.st.Members {
		if free <= 0 {
			break
		}
		if m.State == wave.MemberPending {
			launch = append(launch, i)
			free--
		}
	}
	if len(launch) == 0 {
		return nil
	}
	now := workflow.Now(ctx)
	for _, i := range launch {
		w.setMember(i, wave.MemberCopying, activities.WaveMemberChange{CopyStarted: now, ClearError: true})
	}
	// The new copying set's shares: the others' lowered (and applied)
	// first, then the new members start with theirs, so the limits queued
	// for the agents never sum above the budget.
	shares := w.shares(ctx)
	if err := w.lowerCaps(ctx, shares); err != nil {
		return err
	}
	return w.launch(ctx, launch, shares)
}

// launch starts members' runs as children, or restarts runs that failed.
func (w *waveRun) launch(ctx workflow.Context, idx []int, shares map[string]int32) error {
	type pending struct {
		i    int
		spec workflow.Future
	}
	var ps []pending
	var restarts []workflow.Future
	for _, i := range idx {
		m := &w.st.Members[i]
		if m.TaskID == "" {
			w.failMember(i, string(wave.ErrInvalid.Code), "the member has no task: schedule or start the wave through the API")
			continue
		}
		if m.Started {
			m.Cap = shares[m.TaskID]
			restarts = append(restarts, w.command(ctx, i, sms.ActionStart))
			continue
		}
		w.ops++
		ps = append(ps, pending{i, workflow.ExecuteActivity(waveActivityCtx(ctx), acts.WaveMemberInput, w.ref(), m.TaskID)})
	}
	type started struct {
		i     int
		child workflow.ChildWorkflowFuture
	}
	var cs []started
	for _, p := range ps {
		var spec activities.TaskSpec
		if err := p.spec.Get(ctx, &spec); err != nil {
			if temporal.IsCanceledError(err) {
				return err
			}
			code, msg := failureOf(err)
			w.failMember(p.i, code, msg)
			continue
		}
		m := &w.st.Members[p.i]
		in := TaskInput(spec)
		// A member syncs until the wave cuts it over, and starts at once.
		in.WaveID, in.WaveCap, in.Syncing, in.AutoStart = w.in.WaveID, shares[m.TaskID], true, true
		in.WaveSize = len(w.st.Members) // paces its sync passes (syncInterval)
		cctx := workflow.WithChildOptions(ctx, memberOptions(w.in.WaveID, m.TaskID, spec, in))
		w.ops++
		m.Cap = in.WaveCap
		cs = append(cs, started{p.i, workflow.ExecuteChildWorkflow(cctx, MigrationWorkflow, in)})
	}
	for _, c := range cs {
		err := c.child.GetChildWorkflowExecution().Get(ctx, nil)
		var exists *temporal.ChildWorkflowExecutionAlreadyStartedError
		switch {
		case err == nil, errors.As(err, &exists):
			// Already started: an earlier run of the wave started it and
			// the state saying so was lost; it is not started twice.
			w.st.Members[c.i].Started = true
		case temporal.IsCanceledError(err):
			return err
		default:
			code, msg := failureOf(err)
			w.failMember(c.i, code, msg)
		}
	}
	return waitAll(ctx, restarts)
}

func (w *waveRun) failMember(i int, code, msg string) {
	m := &w.st.Members[i]
	m.FailedFrom, m.ErrorCode, m.ErrorMsg = wave.MemberPending, code, msg
	if m.Started {
		m.FailedFrom = m.State
	}
	w.setMember(i, wave.MemberFailed, activities.WaveMemberChange{ErrorCode: code, ErrorMsg: msg})
	w.newFailure = true
}

// failureOf is an error's SMS code and message.
func failureOf(err error) (string, string) {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && len(ae.Type()) > 4 && ae.Type()[:4] == "SMS." {
		return ae.Type(), ae.Message()
	}
	return "SMS.1801", err.Error()
}

// test launches test clones, max_concurrent at a time.
func (w *waveRun) test(ctx workflow.Context) error {
	free := w.st.Spec.MaxConcurrent - w.count(wave.MemberTesting)
	var sends []workflow.Future
	for i, m := range w.st.Members {
		if free <= 0 {
			break
		}
		if m.State == wave.MemberSyncing {
			sends = append(sends, w.command(ctx, i, sms.ActionCloneTest))
			w.setMember(i, wave.MemberTesting, activities.WaveMemberChange{})
			free--
		}
	}
	return waitAll(ctx, sends)
}

// cutover launches targets (final pass, then start), max_concurrent at a
// time.
func (w *waveRun) cutover(ctx workflow.Context) error {
	free := w.st.Spec.MaxConcurrent - w.count(wave.MemberCuttingOver)
	var sends []workflow.Future
	for i, m := range w.st.Members {
		if free <= 0 {
			break
		}
		if m.State == wave.MemberSyncing || m.State == wave.MemberTested {
			sends = append(sends, w.command(ctx, i, sms.ActionTest))
			w.setMember(i, wave.MemberCuttingOver, activities.WaveMemberChange{})
			free--
		}
	}
	return waitAll(ctx, sends)
}

// inCutoverWindow: a cutover window holds now.
func (w *waveRun) inCutoverWindow(ctx workflow.Context) bool {
	now := workflow.Now(ctx)
	start, _, ok := wave.NextCutover(w.st.Spec.CutoverWindows, w.loc, now)
	return ok && !start.After(now)
}

// shares is the budget in force split among the copying members, by task.
func (w *waveRun) shares(ctx workflow.Context) map[string]int32 {
	mbps, _ := wave.BudgetAt(w.st.Spec.Budget, w.loc, workflow.Now(ctx))
	w.st.BudgetMbps = mbps
	n := w.count(wave.MemberCopying)
	var ds []wave.Demand
	for _, m := range w.st.Members {
		if m.State == wave.MemberCopying && m.TaskID != "" {
			// Slow: it moved under 80 % of an even share (its disk,
			// CPU or link holds it back); it is given its speed with
			// headroom, the others what it leaves.
			d := wave.Demand{ID: m.TaskID, MeasuredMbps: m.SpeedMbps}
			d.Slow = m.SpeedKnown && n > 0 && wave.IsSlow(m.SpeedMbps, mbps/int32(n))
			ds = append(ds, d)
		}
	}
	out := map[string]int32{}
	for _, s := range wave.Split(mbps, ds) {
		out[s.ID] = s.Mbps
	}
	return out
}

// budget pushes each started member its share (none when not copying).
func (w *waveRun) budget(ctx workflow.Context) error {
	shares := w.shares(ctx)
	if err := w.lowerCaps(ctx, shares); err != nil {
		return err
	}
	_, err := w.pushCaps(ctx, shares, false)
	return err
}

// lowerCaps pushes the lowered caps and waits until the members applied
// them (CapAckTimeout at most).
func (w *waveRun) lowerCaps(ctx workflow.Context, shares map[string]int32) error {
	lowered, err := w.pushCaps(ctx, shares, true)
	if err != nil || len(lowered) == 0 {
		return err
	}
	w.ops++
	ok, err := workflow.AwaitWithTimeout(ctx, CapAckTimeout, func() bool {
		w.drain(ctx)
		w.takeCapAcks()
		for _, i := range lowered {
			if m := w.st.Members[i]; m.Acked != m.Cap {
				return false
			}
		}
		return true
	})
	if err == nil && !ok {
		workflow.GetLogger(ctx).Warn("wave: members did not apply their lowered caps in time", "members", len(lowered))
	}
	return err
}

// takeCapAcks applies the cap acknowledgements among the events waiting.
func (w *waveRun) takeCapAcks() {
	kept := w.st.Events[:0]
	for _, ev := range w.st.Events {
		if ev.Kind != WaveEventCap {
			kept = append(kept, ev)
			continue
		}
		if i := w.member(ev.TaskID); i >= 0 {
			w.st.Members[i].Acked = ev.CapMbps
		}
	}
	w.st.Events = kept
}

// pushCaps sends changed caps to started members: the lowered ones (down)
// or the raised ones. A member leaving the copy window loses its cap (0):
// that is a raise, sent after every lowering.
func (w *waveRun) pushCaps(ctx workflow.Context, shares map[string]int32, down bool) ([]int, error) {
	var sends []workflow.Future
	var pushed []int
	for i := range w.st.Members {
		m := &w.st.Members[i]
		want := shares[m.TaskID]
		if !m.Started || m.TaskID == "" || want == m.Cap || m.State.Terminal() {
			continue
		}
		lower := want > 0 && (m.Cap == 0 || want < m.Cap)
		if lower != down {
			continue
		}
		m.Cap = want
		pushed = append(pushed, i)
		c := want
		w.changes = append(w.changes, activities.WaveMemberChange{MemberID: m.ID, ShareMbps: &c})
		w.ops++
		sends = append(sends, workflow.SignalExternalWorkflow(ctx, MigrationWorkflowID(m.TaskID), "", SignalWaveCap, WaveCap{Mbps: want}))
	}
	return pushed, waitAll(ctx, sends)
}

// nextWake is the next moment the wave must look again by itself: a budget
// window bound while members copy, the next cutover window (or the end of
// the one in force) while members wait for one.
func (w *waveRun) nextWake(ctx workflow.Context) time.Time {
	now := workflow.Now(ctx)
	var wake time.Time
	earlier := func(t time.Time) {
		if t.After(now) && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	if w.count(wave.MemberCopying) > 0 {
		_, next := wave.BudgetAt(w.st.Spec.Budget, w.loc, now)
		earlier(next)
	}
	if w.st.State == wave.WaveScheduled {
		earlier(now.Add(DependencyPoll))
	}
	waiting := w.st.State == wave.WaveCuttingOver ||
		(w.st.State == wave.WaveAwaitingCutover && (w.st.Spec.CutoverMode != wave.CutoverApprove || w.st.CutoverApproved))
	if waiting {
		start, end, ok := wave.NextCutover(w.st.Spec.CutoverWindows, w.loc, now)
		if ok {
			earlier(start)
			earlier(end)
		}
	}
	return wake
}

// cancel stops every member that runs (each stops its agent) and ends the
// wave CANCELED. It runs in a disconnected context: cancelling the wave's
// run in the Temporal UI does the same as the cancel action.
func (w *waveRun) cancel(ctx workflow.Context, fromUI bool) error {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	var fs []workflow.Future
	for i := range w.st.Members {
		m := &w.st.Members[i]
		if m.State.Terminal() {
			continue
		}
		if m.Started && m.State != wave.MemberDone {
			fs = append(fs, workflow.RequestCancelExternalWorkflow(dctx, MigrationWorkflowID(m.TaskID), ""))
		}
		w.setMember(i, wave.MemberCanceled, activities.WaveMemberChange{})
	}
	if err := waitAll(dctx, fs); err != nil {
		return err
	}
	if err := w.flush(dctx); err != nil {
		return err
	}
	reason := "canceled by an operator"
	if fromUI {
		reason = "canceled in the Temporal UI"
	}
	if err := w.setState(dctx, wave.WaveCanceled, reason, false, true); err != nil {
		return err
	}
	if fromUI {
		return temporal.NewCanceledError(reason)
	}
	return nil
}

func (w *waveRun) continueAsNewDue(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	limit := WaveOpsPerRun
	if w.in.OpsPerRun > 0 {
		limit = w.in.OpsPerRun
	}
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > WaveHistoryLimit || w.ops > limit
}

// continueAsNew starts a fresh history carrying the state: handlers
// finished, signals not yet taken carried along.
func (w *waveRun) continueAsNew(ctx workflow.Context) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return w.cancel(ctx, true)
	}
	w.drain(ctx)
	st := *w.st
	st.Runs++
	in := w.in
	in.Resume = &st
	return workflow.NewContinueAsNewError(ctx, WaveWorkflow, in)
}

// memberOptions starts a member's run as the API starts a task's: its id,
// queue and search attributes, and its task's priority (its activities
// inherit it), so a wave's high-priority members go first in a busy queue.
func memberOptions(waveID, taskID string, spec activities.TaskSpec, in Input) workflow.ChildWorkflowOptions {
	return workflow.ChildWorkflowOptions{
		WorkflowID: MigrationWorkflowID(taskID), TaskQueue: TaskQueue,
		// A continue-as-new closes this run: the members must live on.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		// A cancel waits for the member to stop its agent.
		WaitForCancellation:   true,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		TypedSearchAttributes: temporal.NewSearchAttributes(saWaveID.ValueSet(waveID),
			saTaskID.ValueSet(taskID), saSourceID.ValueSet(spec.SourceID), saProject.ValueSet(spec.MigProjectID)),
		Priority: temporal.Priority{PriorityKey: PriorityKey(in.Priority)},
	}
}
