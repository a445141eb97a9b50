package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/speedlimit"
)

// What a MigrationWorkflow does as a wave's member (Input.WaveID set):
// it takes the wave's bandwidth share (SignalWaveCap) as a cap over its
// own speed rules, runs the task actions the wave asks for
// (SignalWaveCommand) through the same validation and acceptance as an
// operator's, and tells the wave what happened (SignalWaveMember). A task
// outside a wave does none of this, and runs recorded before it replay as
// they ran (version "wave-member").

var saWaveID = temporal.NewSearchAttributeKeyKeyword(SearchWaveID)

// WaveMemberState is the wave part of a member's RunState.
type WaveMemberState struct {
	// Cap is the wave's share for this member in Mbit/s (0: none).
	Cap int32
	// Op is a wave command waiting until the task can take it (a test
	// sent while the run is between two sync passes after a
	// continue-as-new, say).
	Op sms.Action
	// FinalPassAt is when the final sync pass before the target launch
	// began.
	FinalPassAt time.Time
	// Acked is the last cap the wave was told is applied.
	Acked int32
	// SpeedSent and SpeedSentAt: the last speed reported to the wave.
	SpeedSent   float64
	SpeedSentAt time.Time
}

// SpeedReportInterval is the least time between two speed reports of a
// member to its wave (each is an event in both histories).
const SpeedReportInterval = 5 * time.Minute

// waveSpeed reports the full copy's speed to the wave when it changed by
// more than a fifth, at most every SpeedReportInterval.
func (m *migration) waveSpeed(ctx workflow.Context, p Progress) {
	if !m.waveMember || m.st.AgentCommand != "START" {
		return
	}
	now, last := workflow.Now(ctx), m.st.Wave.SpeedSent
	if d := p.MigrateSpeed - last; !m.st.Wave.SpeedSentAt.IsZero() &&
		(now.Sub(m.st.Wave.SpeedSentAt) < SpeedReportInterval || (d <= last/5 && -d <= last/5)) {
		return
	}
	m.st.Wave.SpeedSent, m.st.Wave.SpeedSentAt = p.MigrateSpeed, now
	ev := WaveMemberEvent{TaskID: m.in.TaskID, Kind: WaveEventSpeed, At: now, SpeedMbps: p.MigrateSpeed}
	workflow.Go(ctx, func(ctx workflow.Context) {
		if err := workflow.SignalExternalWorkflow(ctx, WaveWorkflowID(m.in.WaveID), "", SignalWaveMember, ev).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("wave speed not delivered", "wave", m.in.WaveID, "err", err)
		}
	})
}

// WavePassSpacing paces the sync passes of a wave's members: a member of
// an n-member wave waits at least n × WavePassSpacing between two passes
// (its task's interval when that is longer), so a whole wave makes about
// one pass a second, however many members sync and however short the
// interval. A member in sync waits for the wave's cutover, which starts
// its final pass at once whatever the pause: more frequent passes would
// only keep its delta a little smaller, while a thousand members passing
// every few seconds take every core the server has from the members that
// still copy (a 200-member wave with 2 s passes stalled at 135 copied).
const WavePassSpacing = time.Second

// syncInterval is the pause between two passes of the sync loop. Runs
// started before the wave passed its size (WaveSize 0) keep their task's
// interval: the same timers on replay, no version marker needed.
func (m *migration) syncInterval() time.Duration {
	interval := m.in.SyncInterval
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	if m.in.WaveID != "" && m.in.WaveSize > 0 {
		interval = max(interval, time.Duration(m.in.WaveSize)*WavePassSpacing)
	}
	return interval
}

// TaskInput builds a task's MigrationWorkflow input from its TaskSpec: the
// API's POST /v3/tasks and the wave's member launch both use it, so a wave
// member's run is the run its task would have had.
func TaskInput(s activities.TaskSpec) Input {
	return Input{TaskID: s.TaskID, DomainID: s.DomainID, ProjectID: s.ProjectID, SourceID: s.SourceID,
		MigProjectID: s.MigProjectID, Type: s.Type, OSType: s.OSType, AutoStart: s.AutoStart, Syncing: s.Syncing,
		StartTargetServer: s.StartTargetServer, ExistServer: s.ExistServer, StartNetworkCheck: s.StartNetworkCheck,
		SkipConsistencyCheck: s.SkipConsistencyCheck, NeedMigrationTest: s.NeedMigrationTest, Priority: s.Priority,
		SpeedLimit: s.SpeedLimit, OverSpeedThreshold: s.OverSpeedThreshold, SpeedRules: s.SpeedRules, TimeZone: s.TimeZone,
		SyncInterval: s.SyncInterval, AgentStepTimeout: s.AgentStepTimeout, Rules: RulesCurrent}
}

// setupWave registers the member's wave handlers; a task outside a wave
// registers nothing.
func (m *migration) setupWave(ctx workflow.Context) {
	if m.in.WaveID == "" || workflow.GetVersion(ctx, "wave-member", workflow.DefaultVersion, 1) != 1 {
		return
	}
	m.waveMember = true
	if m.in.Resume == nil {
		m.st.Wave.Cap = m.in.WaveCap
	}
	// The wave's run gave the attribute at the start; a continued run
	// keeps it here for sure.
	_ = workflow.UpsertTypedSearchAttributes(ctx, saWaveID.ValueSet(m.in.WaveID))
	// The wave's signals wait in their channels until taken whole
	// (takeWaveSignals), never half-received by a blocked selector, which
	// a continue-as-new would lose.
	m.waveCaps = workflow.GetSignalChannel(ctx, SignalWaveCap)
	m.waveCmds = workflow.GetSignalChannel(ctx, SignalWaveCommand)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			if err := workflow.Await(ctx, func() bool { return m.waveCaps.Len() > 0 || m.waveCmds.Len() > 0 }); err != nil {
				return
			}
			m.takeWaveSignals()
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			if err := workflow.Await(ctx, func() bool { return m.st.Wave.Op != "" && m.waveOpRefused() == nil }); err != nil {
				return
			}
			m.accept(ActionRequest{Operation: m.st.Wave.Op})
			m.st.Wave.Op = ""
		}
	})
}

// takeWaveSignals applies the wave's caps and commands waiting; a
// continue-as-new calls it too, so none is left behind.
func (m *migration) takeWaveSignals() {
	if !m.waveMember {
		return
	}
	for {
		var wc WaveCap
		if !m.waveCaps.ReceiveAsync(&wc) {
			break
		}
		if wc.Mbps != m.st.Wave.Cap {
			m.st.Wave.Cap, m.st.SpeedChanged = wc.Mbps, true
		}
	}
	for {
		var wc WaveCommand
		if !m.waveCmds.ReceiveAsync(&wc) {
			break
		}
		m.st.Wave.Op = wc.Operation
		if wc.Operation == sms.ActionStart && m.waveOpRefused() != nil {
			// A retry is for a failed task now, never for one that
			// fails later.
			m.st.Wave.Op = ""
		}
	}
}

func (m *migration) waveOpRefused() error {
	if m.st.Wave.Op == sms.ActionTest && (m.st.TaskState == sms.TaskMigrateSuccess || m.st.TaskState == sms.TaskSyncSuccess) {
		// The wave's test is its cutover, which a finished task has had:
		// the operator's late launch of a stopped target (ValidateAction
		// accepts it) is not the wave's, and runs from before it replay
		// the op they waited on as they did.
		return errWaveTestFinished
	}
	if m.in.Rules >= 1 {
		// A member that needs a migration test waits for its clone test
		// as the operator's test does.
		if err := m.validateMigrationTest(ActionRequest{Operation: m.st.Wave.Op}); err != nil {
			return err
		}
	}
	// A wave's commands keep the rules they were written for: its start
	// retries a failed member and never syncs a finished one.
	return ValidateActionIn(m.st.TaskState, ActionScope{InSyncLoop: m.st.InSyncLoop, TargetStarted: m.st.TargetStarted},
		ActionRequest{Operation: m.st.Wave.Op})
}

// errWaveTestFinished refuses a wave's test to a finished member.
var errWaveTestFinished = errors.New("the member's task has finished: the wave does not launch it again")

// waveCapped is the limit in force under the wave's cap.
func (m *migration) waveCapped(l speedlimit.Limit) speedlimit.Limit {
	if c := m.st.Wave.Cap; m.waveMember && c > 0 && (l.Mbps <= 0 || l.Mbps > c) {
		l.Mbps = c
	}
	return l
}

// ackWaveCap tells the wave its cap is applied: the limit it gives is
// recorded and, while the agent works, queued for it.
func (m *migration) ackWaveCap(ctx workflow.Context) {
	if !m.waveMember || m.st.Wave.Cap == m.st.Wave.Acked {
		return
	}
	m.st.Wave.Acked = m.st.Wave.Cap
	ev := WaveMemberEvent{TaskID: m.in.TaskID, Kind: WaveEventCap, At: workflow.Now(ctx), CapMbps: m.st.Wave.Cap}
	if err := workflow.SignalExternalWorkflow(ctx, WaveWorkflowID(m.in.WaveID), "", SignalWaveMember, ev).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("wave cap ack not delivered", "wave", m.in.WaveID, "err", err)
	}
}

// waveEvent tells the wave what happened to this member. A wave that is
// gone (canceled, done) cannot hear it: that is logged, not a failure.
func (m *migration) waveEvent(ctx workflow.Context, kind WaveEventKind, cause ...string) {
	if !m.waveMember {
		return
	}
	ev := WaveMemberEvent{TaskID: m.in.TaskID, Kind: kind, At: workflow.Now(ctx)}
	switch kind {
	case WaveEventFinalPass:
		m.st.Wave.FinalPassAt = ev.At
	case WaveEventFailed:
		ev.Step = m.st.FailedStep
		if len(cause) == 2 {
			ev.Code, ev.Msg = cause[0], cause[1]
		}
	}
	err := workflow.SignalExternalWorkflow(ctx, WaveWorkflowID(m.in.WaveID), "", SignalWaveMember, ev).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("wave event not delivered", "wave", m.in.WaveID, "event", kind, "err", err)
	}
}
