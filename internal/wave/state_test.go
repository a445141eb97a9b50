package wave

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/smsflow/smsflow/internal/sms/smserr"
)

func codeOf(t *testing.T, err error) smserr.Code {
	t.Helper()
	e, ok := smserr.As(err)
	if !ok {
		t.Fatalf("%v is not an *smserr.Error", err)
	}
	return e.Code
}

func TestCheckWaveMove(t *testing.T) {
	tests := []struct {
		from, to WaveState
		want     smserr.Code // "" = allowed
	}{
		{WaveDraft, WaveScheduled, ""},
		{WaveDraft, WaveReplicating, ""},
		{WaveScheduled, WaveReplicating, ""},
		{WaveReplicating, WaveSynced, ""},
		{WaveSynced, WaveTesting, ""},
		{WaveSynced, WaveAwaitingCutover, ""},
		{WaveTesting, WaveAwaitingCutover, ""},
		{WaveAwaitingCutover, WaveCuttingOver, ""},
		{WaveCuttingOver, WaveDone, ""},
		{WaveReplicating, WavePaused, ""},
		{WavePaused, WaveReplicating, ""},
		{WavePaused, WaveCuttingOver, ""},
		{WaveFailed, WaveReplicating, ""},
		{WaveCuttingOver, WaveCanceled, ""},
		// Illegal moves.
		{WaveDraft, WaveDone, ErrBadTransition.Code},
		{WaveReplicating, WaveCuttingOver, ErrBadTransition.Code},
		{WaveReplicating, WaveDraft, ErrBadTransition.Code},
		{WaveDone, WaveReplicating, ErrBadTransition.Code},
		{WaveCanceled, WaveReplicating, ErrBadTransition.Code},
		{WaveDone, WaveCanceled, ErrBadTransition.Code},
		{WaveDraft, WaveCanceled, ErrBadTransition.Code}, // a draft is deleted, not canceled
		{WavePaused, WaveDone, ErrBadTransition.Code},
		{WaveReplicating, WaveReplicating, ErrBadTransition.Code},
		// Unknown states.
		{"RUNNING", WaveDone, ErrInvalid.Code},
		{WaveDraft, "draft", ErrInvalid.Code},
		{"", WaveDraft, ErrInvalid.Code},
	}
	for _, tt := range tests {
		err := CheckWaveMove(tt.from, tt.to)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s -> %s refused: %v", tt.from, tt.to, err)
		case tt.want != "" && err == nil:
			t.Errorf("%s -> %s allowed", tt.from, tt.to)
		case tt.want != "" && codeOf(t, err) != tt.want:
			t.Errorf("%s -> %s: code %s, want %s", tt.from, tt.to, codeOf(t, err), tt.want)
		}
	}
}

// TestWaveGraph checks the move table as a whole: every state is listed,
// every target is a known state, DONE and CANCELED end, and DONE is
// reachable from DRAFT along the happy path.
func TestWaveGraph(t *testing.T) {
	if len(waveMoves) != len(WaveStates) {
		t.Fatalf("%d states have moves, %d states exist", len(waveMoves), len(WaveStates))
	}
	for _, s := range WaveStates {
		for _, n := range s.Next() {
			if !n.Valid() {
				t.Errorf("%s -> unknown %s", s, n)
			}
		}
		if s.Terminal() != (len(s.Next()) == 0) {
			t.Errorf("%s: terminal %v with %d moves", s, s.Terminal(), len(s.Next()))
		}
	}
	path := []WaveState{WaveDraft, WaveScheduled, WaveReplicating, WaveSynced, WaveTesting,
		WaveAwaitingCutover, WaveCuttingOver, WaveDone}
	for i := 1; i < len(path); i++ {
		if err := CheckWaveMove(path[i-1], path[i]); err != nil {
			t.Error(err)
		}
	}
}

func TestWaveStatePredicates(t *testing.T) {
	tests := []struct {
		s                                WaveState
		editable, active, running, final bool
	}{
		{WaveDraft, true, false, false, false},
		{WaveScheduled, true, true, false, false},
		{WaveReplicating, false, true, true, false},
		{WaveCuttingOver, false, true, true, false},
		{WavePaused, true, true, true, false},
		{WaveFailed, false, true, true, false},
		{WaveDone, false, false, false, true},
		{WaveCanceled, false, false, false, true},
		{"BOGUS", false, false, false, false},
	}
	for _, tt := range tests {
		if tt.s.Editable() != tt.editable || tt.s.Active() != tt.active || tt.s.Running() != tt.running || tt.s.Terminal() != tt.final {
			t.Errorf("%s: editable %v active %v running %v terminal %v", tt.s, tt.s.Editable(), tt.s.Active(), tt.s.Running(), tt.s.Terminal())
		}
	}
}

func TestCheckMemberMove(t *testing.T) {
	tests := []struct {
		from, to MemberState
		ok       bool
	}{
		{MemberPending, MemberCopying, true},
		{MemberCopying, MemberSyncing, true},
		{MemberSyncing, MemberTesting, true},
		{MemberTesting, MemberTested, true},
		{MemberTested, MemberCuttingOver, true},
		{MemberTested, MemberSyncing, true}, // the test target is dropped and syncing goes on
		{MemberSyncing, MemberCuttingOver, true},
		{MemberCuttingOver, MemberDone, true},
		{MemberFailed, MemberCopying, true},
		{MemberFailed, MemberCuttingOver, true},
		{MemberPending, MemberDone, false},
		{MemberCopying, MemberCuttingOver, false},
		{MemberDone, MemberFailed, false},
		{MemberCanceled, MemberPending, false},
		{MemberFailed, MemberDone, false},
		{"LOST", MemberDone, false},
	}
	for _, tt := range tests {
		err := CheckMemberMove(tt.from, tt.to)
		if (err == nil) != tt.ok {
			t.Errorf("%s -> %s: %v, want ok=%v", tt.from, tt.to, err, tt.ok)
		}
	}
	for _, s := range MemberStates {
		if s.InWindow() != (s == MemberCopying) {
			t.Errorf("%s InWindow = %v", s, s.InWindow())
		}
		if s.Terminal() != (len(s.Next()) == 0) {
			t.Errorf("%s: terminal %v with %d moves", s, s.Terminal(), len(s.Next()))
		}
	}
	if len(memberMoves) != len(MemberStates) {
		t.Errorf("%d member states have moves, %d exist", len(memberMoves), len(MemberStates))
	}
}

func TestCheckAction(t *testing.T) {
	tests := []struct {
		s    WaveState
		a    Action
		want smserr.Code
	}{
		{WaveDraft, ActionSchedule, ""},
		{WaveScheduled, ActionSchedule, ErrBadTransition.Code},
		{WaveDraft, ActionStart, ""},
		{WaveScheduled, ActionStart, ""},
		{WaveReplicating, ActionStart, ErrBadTransition.Code},
		{WaveReplicating, ActionPause, ""},
		{WavePaused, ActionPause, ErrBadTransition.Code},
		{WavePaused, ActionResume, ""},
		{WaveReplicating, ActionResume, ErrBadTransition.Code},
		{WaveReplicating, ActionCancel, ""},
		{WaveDraft, ActionCancel, ErrBadTransition.Code},
		{WaveDone, ActionCancel, ErrBadTransition.Code},
		{WaveTesting, ActionApproveTest, ""},
		{WaveReplicating, ActionApproveTest, ErrNotAwaiting.Code},
		{WaveAwaitingCutover, ActionApproveCutover, ""},
		{WaveSynced, ActionApproveCutover, ""},
		{WaveReplicating, ActionApproveCutover, ErrNotAwaiting.Code},
		{WavePaused, ActionRetryFailed, ""},
		{WaveFailed, ActionRetryFailed, ""},
		{WaveDone, ActionRetryFailed, ErrBadTransition.Code},
		{WaveDraft, "explode", ErrInvalid.Code},
		{"BOGUS", ActionStart, ErrInvalid.Code},
	}
	for _, tt := range tests {
		err := CheckAction(tt.s, tt.a)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s in %s: %v", tt.a, tt.s, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s in %s allowed", tt.a, tt.s)
		} else if c := codeOf(t, err); c != tt.want {
			t.Errorf("%s in %s: %s, want %s", tt.a, tt.s, c, tt.want)
		}
	}
	var e *smserr.Error
	if err := CheckAction(WaveDone, ActionPause); !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Errorf("illegal action: %v, want a 409", err)
	}
}

func TestCheckRetry(t *testing.T) {
	if err := CheckRetry(WaveReplicating, 0); codeOf(t, err) != "SMS.8503" || !strings.Contains(err.Error(), "no member failed") {
		t.Errorf("retry with no failed member: %v, want SMS.8503 naming why", err)
	}
	if err := CheckRetry(WaveReplicating, 2); err != nil {
		t.Errorf("retry with failed members: %v", err)
	}
}

func TestPauseAfter(t *testing.T) {
	for _, tt := range []struct {
		failed, max int
		want        bool
	}{{0, 0, false}, {1, 0, true}, {2, 2, false}, {3, 2, true}} {
		if got := PauseAfter(tt.failed, tt.max); got != tt.want {
			t.Errorf("PauseAfter(%d, %d) = %v", tt.failed, tt.max, got)
		}
	}
}
