package workflows

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/wave"
)

// waveHarness runs WaveWorkflow in the test environment with scripted
// members: a fake MigrationWorkflow (registered under that name) that
// answers the wave's commands with the events a real member sends, after
// the copy, test and final-pass times set here. It follows a wave across
// continue-as-new: each run gets a fresh environment, the clock goes on,
// events not yet delivered are delivered in the next run, and members whose
// run was in the previous environment answer through the external-signal
// mocks. It checks as it goes that at most max_concurrent members copy and
// that the caps of the copying members never sum above the budget.
type waveHarness struct {
	t    *testing.T
	ts   testsuite.WorkflowTestSuite
	env  *testsuite.TestWorkflowEnvironment
	plan activities.WavePlan
	loc  *time.Location

	mu sync.Mutex
	// behaviour
	copyTime func(task string) time.Duration
	failCopy map[string]int // copies that fail, per task
	testTime time.Duration
	passTime time.Duration // final pass → target started
	// observations
	launches    map[string]int
	launchOrder []string
	copying     map[string]bool
	caps        map[string]int32
	capLog      []capChange
	maxCopying  int
	cmds        []sentCmd
	cancels     map[string]bool
	states      []activities.WaveStateChange
	// membersAt: each member's last recorded state when the wave's state
	// was recorded, one map per SetWaveState call (same order as states).
	membersAt     []map[string]wave.MemberState
	changes       []activities.WaveMemberChange
	violations    []string
	queue         []*pendingEvent
	hooks         []*hook
	ops           int   // operations of the current run
	runOps        []int // operations per finished run
	resumes       []*WaveRunState
	updates       int
	stopAfterRuns int
	// envHook adds mocks to each run's environment; onFlush runs in
	// UpdateWaveMembers before it returns.
	envHook func(env *testsuite.TestWorkflowEnvironment)
	onFlush func()
}

type capChange struct {
	At   time.Time
	Task string
	Mbps int32
}

type sentCmd struct {
	Task string
	Op   sms.Action
	At   time.Time
}

type pendingEvent struct {
	ev   WaveMemberEvent
	due  time.Time
	sent bool
}

type hook struct {
	at   time.Time
	fn   func()
	done bool
}

func newWaveHarness(t *testing.T, plan activities.WavePlan) *waveHarness {
	loc, err := wave.LoadZone(plan.Spec.TimeZone)
	require.NoError(t, err)
	return &waveHarness{t: t, plan: plan, loc: loc,
		copyTime: func(string) time.Duration { return 30 * time.Minute },
		failCopy: map[string]int{}, testTime: 20 * time.Minute, passTime: 10 * time.Minute,
		launches: map[string]int{}, copying: map[string]bool{}, caps: map[string]int32{}, cancels: map[string]bool{}}
}

// wavePlan is a plan of n members (task tN, priority 1) in UTC, auto
// cutover at any time.
func wavePlan(n, maxConcurrent int, budget int32) activities.WavePlan {
	p := activities.WavePlan{State: wave.WaveScheduled, Spec: wave.Spec{Name: "w", ProjectID: "mp",
		MaxConcurrent: maxConcurrent, Budget: wave.Budget{DefaultMbps: budget}, TimeZone: "UTC",
		CutoverMode: wave.CutoverAuto, MaxFailures: n}}
	for i := 0; i < n; i++ {
		p.Members = append(p.Members, activities.WavePlanMember{ID: fmt.Sprintf("m%04d", i),
			SourceID: fmt.Sprintf("s%04d", i), TaskID: fmt.Sprintf("t%04d", i), Priority: 1, State: wave.MemberPending})
	}
	return p
}

func waveInput(tz string) WaveInput {
	return WaveInput{WaveID: "w1", DomainID: "d1", ProjectID: "p1", TimeZone: tz}
}

// at runs fn at the absolute time t (in whichever run is current then).
func (h *waveHarness) at(t time.Time, fn func()) { h.hooks = append(h.hooks, &hook{at: t, fn: fn}) }

func (h *waveHarness) now() time.Time { return h.env.Now().UTC() }

// budgetAt is the budget at t, the larger of the two at a window bound:
// caps are lowered one member at a time when the budget falls.
func (h *waveHarness) budgetAt(t time.Time) int32 {
	a, _ := wave.BudgetAt(h.plan.Spec.Budget, h.loc, t)
	b, _ := wave.BudgetAt(h.plan.Spec.Budget, h.loc, t.Add(-time.Nanosecond))
	return max(a, b)
}

// checkLocked records a broken window or budget. h.mu is held.
func (h *waveHarness) checkLocked(at time.Time) {
	n := 0
	var sum int64
	for task, c := range h.copying {
		if c {
			n++
			sum += int64(h.caps[task])
		}
	}
	h.maxCopying = max(h.maxCopying, n)
	if n > h.plan.Spec.MaxConcurrent {
		h.violations = append(h.violations, fmt.Sprintf("%s: %d copying > max_concurrent %d", at, n, h.plan.Spec.MaxConcurrent))
	}
	if b := h.budgetAt(at); b > 0 && sum > int64(b) {
		h.violations = append(h.violations, fmt.Sprintf("%s: caps of copying members sum to %d > budget %d", at, sum, b))
	}
	for task, c := range h.copying {
		if c && h.budgetAt(at) > 0 && h.caps[task] <= 0 {
			h.violations = append(h.violations, fmt.Sprintf("%s: %s copies without a cap", at, task))
		}
	}
}

// schedule delivers ev to the wave after d (carried to the next run if
// this one ends first).
func (h *waveHarness) schedule(ev WaveMemberEvent, d time.Duration) {
	p := &pendingEvent{ev: ev, due: h.now().Add(d)}
	h.mu.Lock()
	h.queue = append(h.queue, p)
	h.mu.Unlock()
	h.env.RegisterDelayedCallback(func() { h.deliver(p) }, d)
}

func (h *waveHarness) deliver(p *pendingEvent) {
	h.mu.Lock()
	if p.sent {
		h.mu.Unlock()
		return
	}
	p.sent = true
	p.ev.At = h.now()
	if p.ev.Kind == WaveEventSyncing || p.ev.Kind == WaveEventFailed {
		h.copying[p.ev.TaskID] = false
	}
	h.ops++
	h.mu.Unlock()
	h.env.SignalWorkflow(SignalWaveMember, p.ev)
}

// copyDone schedules the end of a member's copy: failed or syncing.
func (h *waveHarness) copyDoneLocked(task string) {
	kind, code := WaveEventSyncing, ""
	if h.failCopy[task] > 0 {
		h.failCopy[task]--
		kind, code = WaveEventFailed, "SMS.0515"
	}
	d := h.copyTime(task)
	h.mu.Unlock()
	h.schedule(WaveMemberEvent{TaskID: task, Kind: kind, Step: sms.StepMigrate, Code: code, Msg: "scripted"}, d)
	h.mu.Lock()
}

func (h *waveHarness) onLaunch(now time.Time, in Input) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops++
	h.launches[in.TaskID]++
	h.launchOrder = append(h.launchOrder, in.TaskID)
	if h.launches[in.TaskID] > 1 {
		h.violations = append(h.violations, in.TaskID+" started twice")
	}
	if !in.Syncing || !in.AutoStart || in.WaveID != "w1" {
		h.violations = append(h.violations, fmt.Sprintf("%s: member input %+v", in.TaskID, in))
	}
	h.copying[in.TaskID] = true
	h.caps[in.TaskID] = in.WaveCap
	h.capLog = append(h.capLog, capChange{now, in.TaskID, in.WaveCap})
	h.checkLocked(now)
	h.copyDoneLocked(in.TaskID)
}

// onCap applies a cap and acknowledges it, as a member's speed loop does.
func (h *waveHarness) onCap(task string, mbps int32) {
	h.mu.Lock()
	h.ops += 2
	now := h.now()
	h.caps[task] = mbps
	h.capLog = append(h.capLog, capChange{now, task, mbps})
	h.checkLocked(now)
	h.mu.Unlock()
	h.env.SignalWorkflow(SignalWaveMember, WaveMemberEvent{TaskID: task, Kind: WaveEventCap, At: now, CapMbps: mbps})
}

func (h *waveHarness) onCommand(task string, op sms.Action) {
	h.mu.Lock()
	h.ops++
	now := h.now()
	h.cmds = append(h.cmds, sentCmd{task, op, now})
	switch op {
	case sms.ActionStart: // a retry: the copy runs again
		h.copying[task] = true
		h.checkLocked(now)
		h.copyDoneLocked(task)
		h.mu.Unlock()
	case sms.ActionCloneTest:
		h.mu.Unlock()
		h.schedule(WaveMemberEvent{TaskID: task, Kind: WaveEventTested}, h.testTime)
	case sms.ActionTest:
		h.mu.Unlock()
		h.schedule(WaveMemberEvent{TaskID: task, Kind: WaveEventFinalPass}, time.Second)
		h.schedule(WaveMemberEvent{TaskID: task, Kind: WaveEventDone}, time.Second+h.passTime)
	default:
		h.mu.Unlock()
	}
}

// member is the scripted MigrationWorkflow.
func (h *waveHarness) member(ctx workflow.Context, in Input) (Status, error) {
	h.onLaunch(workflow.Now(ctx).UTC(), in)
	caps := workflow.GetSignalChannel(ctx, SignalWaveCap)
	cmds := workflow.GetSignalChannel(ctx, SignalWaveCommand)
	for {
		canceled := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(caps, func(c workflow.ReceiveChannel, _ bool) {
			var wc WaveCap
			c.Receive(ctx, &wc)
			h.onCap(in.TaskID, wc.Mbps)
		})
		sel.AddReceive(cmds, func(c workflow.ReceiveChannel, _ bool) {
			var wc WaveCommand
			c.Receive(ctx, &wc)
			h.onCommand(in.TaskID, wc.Operation)
		})
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { canceled = true })
		sel.Select(ctx)
		if canceled {
			h.mu.Lock()
			h.cancels[in.TaskID] = true
			h.mu.Unlock()
			return Status{}, ctx.Err()
		}
	}
}

// newEnv makes the environment of one run, starting at start.
func (h *waveHarness) newEnv(start time.Time) {
	env := h.ts.NewTestWorkflowEnvironment()
	h.env = env
	env.SetStartTime(start)
	env.SetTestTimeout(2 * time.Minute)
	// Members outlive the run (ABANDON): the run's end ends the test run.
	env.SetDetachedChildWait(false)
	env.RegisterWorkflow(WaveWorkflow)
	env.RegisterWorkflowWithOptions(h.member, workflow.RegisterOptions{Name: "MigrationWorkflow"})
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(acts.LoadWave, mock.Anything, mock.Anything).Return(
		func(_ context.Context, ref activities.WaveRef) (activities.WavePlan, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.ops++
			return h.plan, nil
		})
	env.OnActivity(acts.WaveMemberInput, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ context.Context, ref activities.WaveRef, taskID string) (activities.TaskSpec, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.ops++
			return activities.TaskSpec{TaskID: taskID, DomainID: ref.DomainID, SourceID: "src-" + taskID, MigProjectID: "mp",
				Type: "MIGRATE_BLOCK", OSType: "LINUX", TimeZone: "UTC"}, nil
		})
	env.OnActivity(acts.SetWaveState, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.WaveRef, ch activities.WaveStateChange) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.ops++
			h.states = append(h.states, ch)
			h.membersAt = append(h.membersAt, h.finalMembersLocked())
			return nil
		})
	env.OnActivity(acts.UpdateWaveMembers, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.WaveRef, chs []activities.WaveMemberChange) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.ops++
			h.changes = append(h.changes, chs...)
			if h.onFlush != nil {
				h.onFlush()
			}
			return nil
		})
	if h.envHook != nil {
		h.envHook(env)
	}
	// Members whose runs were in an earlier environment.
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_, workflowID, _, signal string, arg any) error {
			task := workflowID[len("migration/"):]
			switch signal {
			case SignalWaveCap:
				h.onCap(task, arg.(WaveCap).Mbps)
			case SignalWaveCommand:
				h.onCommand(task, arg.(WaveCommand).Operation)
			}
			return nil
		})
	env.OnRequestCancelExternalWorkflow(mock.Anything, mock.Anything, mock.Anything).Return(
		func(_, workflowID, _ string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.cancels[workflowID[len("migration/"):]] = true
			return nil
		})
	h.mu.Lock()
	var pending []*pendingEvent
	for _, p := range h.queue {
		if !p.sent {
			pending = append(pending, p)
		}
	}
	h.queue = pending
	h.mu.Unlock()
	for _, p := range pending {
		env.RegisterDelayedCallback(func() { h.deliver(p) }, max(p.due.Sub(start), time.Millisecond))
	}
	for _, hk := range h.hooks {
		if !hk.done && !hk.at.Before(start) {
			env.RegisterDelayedCallback(func() { hk.done = true; hk.fn() }, max(hk.at.Sub(start), time.Millisecond))
		}
	}
}

// run runs the wave from start to its end, across continue-as-new, and
// returns the last run's error.
func (h *waveHarness) run(in WaveInput, start time.Time) error {
	for {
		h.newEnv(start)
		h.ops = 0
		h.env.ExecuteWorkflow(WaveWorkflow, in)
		require.True(h.t, h.env.IsWorkflowCompleted())
		err := h.env.GetWorkflowError()
		h.runOps = append(h.runOps, h.ops)
		var can *workflow.ContinueAsNewError
		if !errors.As(err, &can) {
			return err
		}
		var next WaveInput
		require.NoError(h.t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
		require.NotNil(h.t, next.Resume)
		h.resumes = append(h.resumes, next.Resume)
		in, start = next, h.now()
		if h.stopAfterRuns > 0 && len(h.runOps) >= h.stopAfterRuns {
			return err
		}
	}
}

// action sends an operator action as the Update; the verdict is filled in
// once the workflow has processed it.
func (h *waveHarness) action(a wave.Action) *verdict {
	v := &verdict{}
	h.updates++
	h.env.UpdateWorkflow(UpdateWaveAction, fmt.Sprintf("%s-%d", a, h.updates), &testsuite.TestUpdateCallback{
		OnReject:   func(err error) { v.done, v.err = true, err },
		OnAccept:   func() {},
		OnComplete: func(_ any, err error) { v.done, v.err = true, err },
	}, WaveActionRequest{Action: a})
	return v
}

func (h *waveHarness) status() WaveStatus {
	v, err := h.env.QueryWorkflow(QueryWaveState)
	require.NoError(h.t, err)
	var s WaveStatus
	require.NoError(h.t, v.Get(&s))
	return s
}

// waveStates is the wave's states as recorded, in order.
func (h *waveHarness) waveStates() []wave.WaveState {
	var out []wave.WaveState
	for _, s := range h.states {
		out = append(out, s.State)
	}
	return out
}

// cmdsOf lists the tasks sent op, in order.
func (h *waveHarness) cmdsOf(op sms.Action) []sentCmd {
	var out []sentCmd
	for _, c := range h.cmds {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// finalMembers is each member's last recorded state.
func (h *waveHarness) finalMembers() map[string]wave.MemberState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.finalMembersLocked()
}

// finalMembersLocked is finalMembers with h.mu held.
func (h *waveHarness) finalMembersLocked() map[string]wave.MemberState {
	out := map[string]wave.MemberState{}
	for _, c := range h.changes {
		if c.State != "" {
			out[c.MemberID] = c.State
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
