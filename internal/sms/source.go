package sms

// SourceState is a source server's state (the spec's state / copystate),
// lower case as the SDK sends it.
type SourceState string

// Source states.
const (
	SourceUnavailable SourceState = "unavailable" // environment checks failed
	SourceWaiting     SourceState = "waiting"
	SourceInitialize  SourceState = "initialize"
	SourceReplicate   SourceState = "replicate"
	SourceSyncing     SourceState = "syncing"
	SourceStopping    SourceState = "stopping"
	SourceStopped     SourceState = "stopped"
	SourceDeleting    SourceState = "deleting"
	SourceError       SourceState = "error"
	SourceCloning     SourceState = "cloning"
	SourceCutovering  SourceState = "cutovering"
	SourceFinished    SourceState = "finished"
	// SourceUnconnected is allowed by the SMS.7728 matrix in every cycle (the
	// agent lost its connection) although the enums of §4.1 do not list it.
	SourceUnconnected SourceState = "unconnected"
)

// SourceStates lists the states of the spec's enums (for validation and the
// overview).
var SourceStates = []SourceState{SourceUnavailable, SourceWaiting, SourceInitialize, SourceReplicate, SourceSyncing,
	SourceStopping, SourceStopped, SourceDeleting, SourceError, SourceCloning, SourceCutovering, SourceFinished}

// Valid tells whether s is a state the SMS.7728 matrix knows: one of
// SourceStates or SourceUnconnected.
func (s SourceState) Valid() bool { return s == SourceUnconnected || contains(SourceStates, s) }

// Cycle is a source's migration cycle.
type Cycle string

// Migration cycles.
const (
	CycleChecking    Cycle = "checking"
	CycleSetting     Cycle = "setting"
	CycleReplicating Cycle = "replicating"
	CycleSyncing     Cycle = "syncing"
	CycleCutovering  Cycle = "cutovering"
	CycleCutovered   Cycle = "cutovered"
)

// Cycles lists every migration cycle.
var Cycles = []Cycle{CycleChecking, CycleSetting, CycleReplicating, CycleSyncing, CycleCutovering, CycleCutovered}

// Valid tells whether c is one of Cycles.
func (c Cycle) Valid() bool { return contains(Cycles, c) }
