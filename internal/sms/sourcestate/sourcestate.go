// Package sourcestate owns the life cycle of a source server: its state
// (what the spec calls copystate) within its migration cycle. Every change of
// either, from the API (PUT /v3/sources/{id}/changestate) or from a migration
// workflow, goes through Check, which enforces the matrix of error SMS.7728.
// The package is pure (no I/O) so workflows may use it.
package sourcestate

import (
	"fmt"
	"strings"

	"github.com/smsflow/smsflow/internal/sms"
)

// State and Cycle are the vocabulary's types, named here for brevity; the
// words themselves are declared once, in package sms.
type (
	State = sms.SourceState
	Cycle = sms.Cycle
)

// allowed is the SMS.7728 matrix: the states a source may be in during each
// cycle (spec §5.1, SMS.7728, "处理措施").
var allowed = map[Cycle][]State{
	sms.CycleChecking:    {sms.SourceUnavailable, sms.SourceWaiting, sms.SourceUnconnected},
	sms.CycleSetting:     {sms.SourceWaiting, sms.SourceUnconnected},
	sms.CycleReplicating: {sms.SourceInitialize, sms.SourceReplicate, sms.SourceDeleting, sms.SourceStopping, sms.SourceError, sms.SourceStopped, sms.SourceUnconnected},
	sms.CycleSyncing:     {sms.SourceSyncing, sms.SourceCloning, sms.SourceDeleting, sms.SourceStopping, sms.SourceError, sms.SourceStopped, sms.SourceUnconnected},
	sms.CycleCutovering:  {sms.SourceCutovering, sms.SourceDeleting, sms.SourceStopping, sms.SourceError, sms.SourceStopped, sms.SourceUnconnected},
	sms.CycleCutovered:   {sms.SourceFinished, sms.SourceDeleting, sms.SourceStopping, sms.SourceError, sms.SourceStopped, sms.SourceUnconnected},
}

// Allowed lists the states permitted in a cycle.
func Allowed(c Cycle) []State { return append([]State(nil), allowed[c]...) }

// ParseState reads a copystate as the API sends it: upper case in the spec
// (INIT for initialize), lower case from the SDK.
func ParseState(s string) (State, bool) {
	l := strings.ToLower(strings.TrimSpace(s))
	if l == "init" { // the spec's upper-case spelling of initialize
		l = string(sms.SourceInitialize)
	}
	st := State(l)
	if !st.Valid() {
		return "", false
	}
	return st, true
}

// ParseCycle reads a migration cycle, case-insensitively.
func ParseCycle(s string) (Cycle, bool) {
	c := Cycle(strings.ToLower(strings.TrimSpace(s)))
	if !c.Valid() {
		return "", false
	}
	return c, true
}

// MismatchError says a state is not allowed in a cycle (SMS.7728).
type MismatchError struct {
	Cycle Cycle
	State State
}

func (e *MismatchError) Error() string {
	names := make([]string, 0, len(allowed[e.Cycle]))
	for _, s := range allowed[e.Cycle] {
		names = append(names, string(s))
	}
	return fmt.Sprintf("state %q is not allowed while the migration cycle is %q (allowed: %s)",
		e.State, e.Cycle, strings.Join(names, ", "))
}

// Check tells whether a source may be in state s during cycle c. An unknown
// cycle or state is refused, never let through unchecked.
func Check(c Cycle, s State) error {
	states, ok := allowed[c]
	if !ok {
		return fmt.Errorf("unknown migration cycle %q", c)
	}
	if !s.Valid() {
		return fmt.Errorf("unknown source state %q", s)
	}
	for _, a := range states {
		if a == s {
			return nil
		}
	}
	return &MismatchError{Cycle: c, State: s}
}

// Busy tells whether a task is working on a source in this state, so the
// source may not be deleted (SMS.7601).
func Busy(s State) bool {
	switch s {
	case sms.SourceInitialize, sms.SourceReplicate, sms.SourceSyncing, sms.SourceStopping, sms.SourceDeleting,
		sms.SourceCloning, sms.SourceCutovering:
		return true
	}
	return false
}
