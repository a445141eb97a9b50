package wave

import (
	"fmt"
	"slices"
)

// WaveState is where a wave is in its life. The happy path is DRAFT →
// SCHEDULED → REPLICATING → SYNCED → TESTING → AWAITING_CUTOVER →
// CUTTING_OVER → DONE; PAUSED, FAILED and CANCELED are reached from the
// running states.
type WaveState string

// The wave states.
const (
	WaveDraft           WaveState = "DRAFT"            // being planned; editable, nothing runs
	WaveScheduled       WaveState = "SCHEDULED"        // a Temporal Schedule will start it at start_at
	WaveReplicating     WaveState = "REPLICATING"      // members copy within max_concurrent
	WaveSynced          WaveState = "SYNCED"           // every member copied and syncing
	WaveTesting         WaveState = "TESTING"          // test targets launched, awaiting approve_test
	WaveAwaitingCutover WaveState = "AWAITING_CUTOVER" // awaiting approval and/or the next cutover window
	WaveCuttingOver     WaveState = "CUTTING_OVER"     // final passes and target launches
	WaveDone            WaveState = "DONE"
	WavePaused          WaveState = "PAUSED" // by an operator or after max_failures; members keep syncing
	WaveFailed          WaveState = "FAILED" // could not go on (e.g. its dependency failed); retry_failed resumes
	WaveCanceled        WaveState = "CANCELED"
)

// WaveStates lists every state in life order.
var WaveStates = []WaveState{WaveDraft, WaveScheduled, WaveReplicating, WaveSynced, WaveTesting,
	WaveAwaitingCutover, WaveCuttingOver, WaveDone, WavePaused, WaveFailed, WaveCanceled}

// running is every state a wave is live in; PAUSED and FAILED resume into
// any of them (the workflow remembers where it stopped).
var running = []WaveState{WaveReplicating, WaveSynced, WaveTesting, WaveAwaitingCutover, WaveCuttingOver}

var waveMoves = map[WaveState][]WaveState{
	WaveDraft:           {WaveScheduled, WaveReplicating},
	WaveScheduled:       {WaveDraft, WaveReplicating, WavePaused, WaveCanceled},
	WaveReplicating:     {WaveSynced, WavePaused, WaveFailed, WaveCanceled},
	WaveSynced:          {WaveTesting, WaveAwaitingCutover, WavePaused, WaveFailed, WaveCanceled},
	WaveTesting:         {WaveAwaitingCutover, WavePaused, WaveFailed, WaveCanceled},
	WaveAwaitingCutover: {WaveCuttingOver, WavePaused, WaveFailed, WaveCanceled},
	WaveCuttingOver:     {WaveDone, WavePaused, WaveFailed, WaveCanceled},
	WaveDone:            nil,
	WavePaused:          append([]WaveState{WaveScheduled, WaveCanceled}, running...),
	WaveFailed:          append([]WaveState{WaveCanceled}, running...),
	WaveCanceled:        nil,
}

// Valid tells whether s is one of the wave states.
func (s WaveState) Valid() bool { _, ok := waveMoves[s]; return ok }

// Terminal tells whether nothing follows s (DONE, CANCELED).
func (s WaveState) Terminal() bool { return s == WaveDone || s == WaveCanceled }

// Editable tells whether the spec may change: DRAFT, SCHEDULED or PAUSED.
func (s WaveState) Editable() bool {
	return s == WaveDraft || s == WaveScheduled || s == WavePaused
}

// Active tells whether a wave holds its members: every state but DRAFT,
// DONE and CANCELED. A source is a member of at most one active wave, and a
// wave that is active and not merely SCHEDULED cannot be deleted (cancel
// first).
func (s WaveState) Active() bool {
	return s.Valid() && s != WaveDraft && !s.Terminal()
}

// Running tells whether a workflow is working on the wave (the states a
// delete refuses): REPLICATING through CUTTING_OVER, PAUSED and FAILED
// (their members still sync).
func (s WaveState) Running() bool { return s.Active() && s != WaveScheduled }

// Next lists the states s may move to, in a fixed order.
func (s WaveState) Next() []WaveState { return append([]WaveState(nil), waveMoves[s]...) }

// CheckWaveMove refuses an unknown state or a move the life cycle does not
// allow. The error is ErrBadTransition's (409) with from and to.
func CheckWaveMove(from, to WaveState) error { return checkMove("wave", "", waveMoves, from, to) }

// MemberState is where one member is. A member takes one slot of
// max_concurrent while COPYING only: it leaves the window once its full copy
// is done (SYNCING) or when it fails.
type MemberState string

// The member states.
const (
	MemberPending     MemberState = "PENDING"      // waiting for a slot in the window
	MemberCopying     MemberState = "COPYING"      // task created, full copy running (holds a slot)
	MemberSyncing     MemberState = "SYNCING"      // full copy done, incremental syncs keep it current
	MemberTesting     MemberState = "TESTING"      // a test target is being launched and checked
	MemberTested      MemberState = "TESTED"       // test target ran; waiting for approve_test
	MemberCuttingOver MemberState = "CUTTING_OVER" // final pass and target launch
	MemberDone        MemberState = "DONE"
	MemberFailed      MemberState = "FAILED" // retry_failed resumes it from its failed step
	MemberCanceled    MemberState = "CANCELED"
)

// MemberStates lists every member state in life order.
var MemberStates = []MemberState{MemberPending, MemberCopying, MemberSyncing, MemberTesting,
	MemberTested, MemberCuttingOver, MemberDone, MemberFailed, MemberCanceled}

var memberMoves = map[MemberState][]MemberState{
	MemberPending:     {MemberCopying, MemberFailed, MemberCanceled},
	MemberCopying:     {MemberSyncing, MemberFailed, MemberCanceled},
	MemberSyncing:     {MemberTesting, MemberCuttingOver, MemberFailed, MemberCanceled},
	MemberTesting:     {MemberTested, MemberFailed, MemberCanceled},
	MemberTested:      {MemberSyncing, MemberCuttingOver, MemberFailed, MemberCanceled},
	MemberCuttingOver: {MemberDone, MemberFailed, MemberCanceled},
	MemberDone:        nil,
	// A retried member goes back to the step it failed in (PENDING when its
	// task could not even be created).
	MemberFailed:   {MemberPending, MemberCopying, MemberSyncing, MemberTesting, MemberCuttingOver, MemberCanceled},
	MemberCanceled: nil,
}

// Valid tells whether s is one of the member states.
func (s MemberState) Valid() bool { _, ok := memberMoves[s]; return ok }

// Terminal tells whether nothing follows s (DONE, CANCELED).
func (s MemberState) Terminal() bool { return s == MemberDone || s == MemberCanceled }

// InWindow tells whether the member holds one of max_concurrent's slots.
func (s MemberState) InWindow() bool { return s == MemberCopying }

// Synced tells whether the member's full copy is done and it is current
// enough to test or cut over.
func (s MemberState) Synced() bool {
	return s == MemberSyncing || s == MemberTesting || s == MemberTested || s == MemberCuttingOver || s == MemberDone
}

// Next lists the states s may move to, in a fixed order.
func (s MemberState) Next() []MemberState { return append([]MemberState(nil), memberMoves[s]...) }

// CheckMemberMove refuses an unknown state or a move a member cannot make.
func CheckMemberMove(from, to MemberState) error {
	return checkMove("member", "member ", memberMoves, from, to)
}

// checkMove is CheckWaveMove and CheckMemberMove: an unknown state is
// ErrInvalid's error naming kind; a move that moves does not list is
// ErrBadTransition's, from written after prefix.
func checkMove[S interface {
	~string
	Valid() bool
}](kind, prefix string, moves map[S][]S, from, to S) error {
	if !from.Valid() {
		return ErrInvalid.New(fmt.Sprintf("unknown %s state %q", kind, from))
	}
	if !to.Valid() {
		return ErrInvalid.New(fmt.Sprintf("unknown %s state %q", kind, to))
	}
	if slices.Contains(moves[from], to) {
		return nil
	}
	return ErrBadTransition.New(prefix+string(from), "move to "+string(to))
}

// CutoverMode says what starts the cutover once every member is in sync.
type CutoverMode string

// The cutover modes.
const (
	// CutoverAuto cuts over at the first cutover window after every member
	// is in sync (and, with test_first, the tests are approved).
	CutoverAuto CutoverMode = "auto"
	// CutoverApprove waits for approve_cutover, then for the next window.
	CutoverApprove CutoverMode = "approve"
)

// Valid tells whether m is a known mode.
func (m CutoverMode) Valid() bool { return m == CutoverAuto || m == CutoverApprove }

// Action is an operator's action on a wave (POST /v3/waves/{id}/actions).
type Action string

// The actions.
const (
	ActionSchedule       Action = "schedule"
	ActionStart          Action = "start"
	ActionPause          Action = "pause"
	ActionResume         Action = "resume"
	ActionCancel         Action = "cancel"
	ActionApproveTest    Action = "approve_test"
	ActionApproveCutover Action = "approve_cutover"
	ActionRetryFailed    Action = "retry_failed"
)

// Actions lists every action.
var Actions = []Action{ActionSchedule, ActionStart, ActionPause, ActionResume, ActionCancel,
	ActionApproveTest, ActionApproveCutover, ActionRetryFailed}

// CheckRetry refuses retry_failed while no member has failed: the
// workflow's Update validator (it counts its members) and the console's
// button (it reads them from the store) apply the same rule.
func CheckRetry(s WaveState, failed int) error {
	if failed == 0 {
		return ErrBadTransition.New(string(s), string(ActionRetryFailed)+" (no member failed)")
	}
	return nil
}

// CheckAction refuses an action the wave's state does not allow, before
// the API bothers the workflow (whose Update validator checks again, with
// the workflow's own view: approve_cutover, for one, is accepted from
// SYNCED on, so an operator may approve before the tests end).
func CheckAction(s WaveState, a Action) error {
	if !s.Valid() {
		return ErrInvalid.New(fmt.Sprintf("unknown wave state %q", s))
	}
	ok := false
	switch a {
	case ActionSchedule:
		ok = s == WaveDraft
	case ActionStart:
		ok = s == WaveDraft || s == WaveScheduled
	case ActionPause:
		ok = s == WaveScheduled || (s.Running() && s != WavePaused && s != WaveFailed)
	case ActionResume:
		ok = s == WavePaused
	case ActionCancel:
		ok = s != WaveDraft && s.Active()
	case ActionApproveTest:
		if s != WaveTesting {
			return ErrNotAwaiting.New("approve_test")
		}
		ok = true
	case ActionApproveCutover:
		if s != WaveSynced && s != WaveTesting && s != WaveAwaitingCutover {
			return ErrNotAwaiting.New("approve_cutover")
		}
		ok = true
	case ActionRetryFailed:
		ok = s.Running()
	default:
		return ErrInvalid.New(fmt.Sprintf("unknown action %q", a))
	}
	if !ok {
		return ErrBadTransition.New(string(s), string(a))
	}
	return nil
}

// PauseAfter tells whether failed members reached the point where the wave
// pauses itself: more than maxFailures of them (0 pauses at the first).
func PauseAfter(failed, maxFailures int) bool { return failed > maxFailures }
