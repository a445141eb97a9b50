package workflows

import (
	"time"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/wave"
)

// WaveWorkflowID names a wave's run: "wave/<waveID>".
func WaveWorkflowID(waveID string) string { return "wave/" + waveID }

// WaveScheduleID names a scheduled wave's Temporal Schedule:
// "wave-schedule/<waveID>".
func WaveScheduleID(waveID string) string { return "wave-schedule/" + waveID }

// Names of the wave's Update, signals and query, and of its search
// attribute.
const (
	// UpdateWaveAction is an operator's action on a running wave (pause,
	// resume, cancel, approve_test, approve_cutover, retry_failed),
	// validated by the wave's own view of its state.
	UpdateWaveAction = "wave-action"
	// SignalWavePause, SignalWaveResume and SignalWaveRetryFailed are the
	// actions an operator may send from the Temporal UI ("Send a Signal",
	// no input). A signal the wave's state does not allow is logged and
	// dropped (a signal cannot be refused).
	SignalWavePause       = "wave-pause"
	SignalWaveResume      = "wave-resume"
	SignalWaveRetryFailed = "wave-retry-failed"
	// SignalWaveMember carries a member's MigrationWorkflow events to the
	// wave (WaveMemberEvent).
	SignalWaveMember = "wave-member"
	// SignalWaveCap carries the wave's bandwidth share to a member's
	// MigrationWorkflow (WaveCap).
	SignalWaveCap = "wave-cap"
	// SignalWaveCommand asks a member's MigrationWorkflow to run a task
	// action for the wave (WaveCommand): start (retry), clone_test, test.
	SignalWaveCommand = "wave-command"
	// QueryWaveState answers the wave's WaveStatus.
	QueryWaveState = "wave-state"
	// SearchWaveID is on a wave's runs and on its members' runs, so the
	// Temporal UI lists a wave with one filter: SmsWaveId="<id>".
	SearchWaveID = "SmsWaveId"
)

// WaveInput starts a WaveWorkflow. The wave's spec and members are read from
// the database when the run starts (and again on resume), so a wave edited
// while PAUSED runs with its new settings.
type WaveInput struct {
	WaveID    string
	DomainID  string
	ProjectID string
	// TimeZone is the IANA name the wave's windows are read in (never
	// "Local": every worker must read them the same way).
	TimeZone string
	// OpsPerRun overrides WaveOpsPerRun (0: the default); the recorded
	// histories of the replay test use a small one.
	OpsPerRun int
	// Resume carries the state across a continue-as-new.
	Resume *WaveRunState
}

// WaveActionRequest is an operator's action on a running wave.
type WaveActionRequest struct {
	Action wave.Action
}

// WaveEventKind is what a member's MigrationWorkflow tells its wave.
type WaveEventKind string

// The member events.
const (
	// WaveEventSyncing: the full copy is done and the task syncs (it left
	// the copy window and can be tested or cut over).
	WaveEventSyncing WaveEventKind = "syncing"
	// WaveEventTested: the test clone of the target was made.
	WaveEventTested WaveEventKind = "tested"
	// WaveEventFinalPass: the final sync pass before the target starts
	// began (the downtime starts here).
	WaveEventFinalPass WaveEventKind = "final_pass"
	// WaveEventDone: the task finished; the target was started.
	WaveEventDone WaveEventKind = "done"
	// WaveEventFailed: the task failed (MIGRATE_FAIL).
	WaveEventFailed WaveEventKind = "failed"
	// WaveEventCap: the member applied the wave's cap CapMbps (its limit
	// was recorded and queued for its agent). The wave waits for it
	// before it gives the bandwidth a member gave up to another.
	WaveEventCap WaveEventKind = "cap"
	// WaveEventSpeed: the member's copy runs at SpeedMbps (sent when it
	// changed by a fifth, at most every SpeedReportInterval), so the wave
	// gives what a slow or idle member leaves to the others.
	WaveEventSpeed WaveEventKind = "speed"
)

// WaveMemberEvent is a member's event, signalled to its wave.
type WaveMemberEvent struct {
	TaskID string
	Kind   WaveEventKind
	At     time.Time
	// Step, Code and Msg describe a failure.
	Step sms.Step
	Code string
	Msg  string
	// CapMbps is the cap a WaveEventCap acknowledges.
	CapMbps int32
	// SpeedMbps is a WaveEventSpeed's measured speed.
	SpeedMbps float64
}

// WaveCap is the wave's bandwidth share for one member in Mbit/s; 0 lifts
// the wave's cap (the task's own rules apply alone).
type WaveCap struct {
	Mbps int32
}

// WaveCommand is a task action the wave asks of a member.
type WaveCommand struct {
	Operation sms.Action // start, clone_test or test
}

// WaveStatus is what QueryWaveState returns.
type WaveStatus struct {
	State      wave.WaveState
	Reason     string
	BudgetMbps int32
	Members    []WaveMemberStatus
}

// WaveMemberStatus is one member in WaveStatus.
type WaveMemberStatus struct {
	ID        string
	TaskID    string
	State     wave.MemberState
	ShareMbps int32
}
