// Package sourcestate owns the life cycle of a source server: its state
// (what the spec calls copystate) within its migration cycle. Every change of
// either, from the API (PUT /v3/sources/{id}/changestate) or from a migration
// workflow, goes through Check, which enforces the matrix of error SMS.7728.
// The package is pure (no I/O) so workflows may use it.
package sourcestate

import (
	"fmt"
	"strings"
)

// State is a source's state (the spec's state / copystate), lower case.
type State string

const (
	Unavailable State = "unavailable" // environment checks failed
	Waiting     State = "waiting"
	Initialize  State = "initialize"
	Replicate   State = "replicate"
	Syncing     State = "syncing"
	Stopping    State = "stopping"
	Stopped     State = "stopped"
	Deleting    State = "deleting"
	Error       State = "error"
	Cloning     State = "cloning"
	Cutovering  State = "cutovering"
	Finished    State = "finished"
	// Unconnected is allowed by the SMS.7728 matrix in every cycle (the agent
	// lost its connection) although the enums of §4.1 do not list it.
	Unconnected State = "unconnected"
)

// States lists the states of the spec's enums (for validation and overview).
var States = []State{Unavailable, Waiting, Initialize, Replicate, Syncing, Stopping, Stopped, Deleting, Error, Cloning, Cutovering, Finished}

// Cycle is a source's migration cycle.
type Cycle string

const (
	Checking    Cycle = "checking"
	Setting     Cycle = "setting"
	Replicating Cycle = "replicating"
	SyncingC    Cycle = "syncing"
	CutoveringC Cycle = "cutovering"
	Cutovered   Cycle = "cutovered"
)

// Cycles lists every migration cycle.
var Cycles = []Cycle{Checking, Setting, Replicating, SyncingC, CutoveringC, Cutovered}

// allowed is the SMS.7728 matrix: the states a source may be in during each
// cycle (spec §5.1, SMS.7728, "处理措施").
var allowed = map[Cycle][]State{
	Checking:    {Unavailable, Waiting, Unconnected},
	Setting:     {Waiting, Unconnected},
	Replicating: {Initialize, Replicate, Deleting, Stopping, Error, Stopped, Unconnected},
	SyncingC:    {Syncing, Cloning, Deleting, Stopping, Error, Stopped, Unconnected},
	CutoveringC: {Cutovering, Deleting, Stopping, Error, Stopped, Unconnected},
	Cutovered:   {Finished, Deleting, Stopping, Error, Stopped, Unconnected},
}

// Allowed lists the states permitted in a cycle.
func Allowed(c Cycle) []State { return append([]State(nil), allowed[c]...) }

// ParseState reads a copystate as the API sends it: upper case in the spec
// (INIT for initialize), lower case from the SDK.
func ParseState(s string) (State, bool) {
	l := strings.ToLower(strings.TrimSpace(s))
	if l == "init" {
		l = string(Initialize)
	}
	st := State(l)
	if st == Unconnected {
		return st, true
	}
	for _, k := range States {
		if k == st {
			return st, true
		}
	}
	return "", false
}

// ParseCycle reads a migration cycle, case-insensitively.
func ParseCycle(s string) (Cycle, bool) {
	c := Cycle(strings.ToLower(strings.TrimSpace(s)))
	_, ok := allowed[c]
	return c, ok
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

// Check tells whether a source may be in state s during cycle c.
func Check(c Cycle, s State) error {
	states, ok := allowed[c]
	if !ok {
		return fmt.Errorf("unknown migration cycle %q", c)
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
	case Initialize, Replicate, Syncing, Stopping, Deleting, Cloning, Cutovering:
		return true
	}
	return false
}
