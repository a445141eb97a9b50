package activities

import (
	"context"
	"errors"
	"time"

	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/sms/speedlimit"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/wave"
)

// WaveStore is what the wave activities need of the database. It speaks in
// the activities' own plain types so the workflow's history never holds a
// store row; the store's wave methods (Wave, WaveMembers, RecordWaveState,
// RecordWaveMembers) implement it through a thin adapter (StoreWaves).
type WaveStore interface {
	// WavePlan is the wave's spec and its members, each with its task id
	// and state. A missing wave is store.ErrNotFound.
	WavePlan(ctx context.Context, t store.Tenant, waveID string) (WavePlan, error)
	// SetWaveState records the wave's state (and stamps started/finished).
	SetWaveState(ctx context.Context, t store.Tenant, waveID string, ch WaveStateChange) error
	// UpdateWaveMembers applies member changes at once, in one transaction.
	UpdateWaveMembers(ctx context.Context, t store.Tenant, waveID string, chs []WaveMemberChange) error
	// WaveState is a wave's state (store.ErrNotFound when it is gone).
	WaveState(ctx context.Context, t store.Tenant, waveID string) (wave.WaveState, error)
}

// MemberOptions tune the MigrationWorkflow of every wave member, as
// web's TaskOptions tune a task's.
type MemberOptions struct {
	TimeZone         string
	SyncInterval     time.Duration
	AgentStepTimeout time.Duration
}

// WaveRef names a wave and its tenant.
type WaveRef struct {
	WaveID    string
	DomainID  string
	ProjectID string
}

// tenant scopes by domain, as a task's Ref does: a wave's rows and its
// members' tasks are the domain's whatever their project.
func (r WaveRef) tenant() store.Tenant { return store.Tenant{DomainID: r.DomainID} }

// WavePlan is what a wave's run works from.
type WavePlan struct {
	// Spec holds the settings (its Members are not used: see Members).
	Spec    wave.Spec
	State   wave.WaveState
	Members []WavePlanMember
}

// WavePlanMember is one member as the database has it.
type WavePlanMember struct {
	ID       string
	SourceID string
	Name     string
	TaskID   string // "" until the API created its task
	Priority int32
	State    wave.MemberState
}

// WaveStateChange is a wave's new state.
type WaveStateChange struct {
	State  wave.WaveState
	Reason string
	At     time.Time
	// Started and Finished stamp the wave's start and end at At.
	Started  bool
	Finished bool
}

// WaveMemberChange is what changed of one member; zero fields are left as
// they are.
type WaveMemberChange struct {
	MemberID string
	State    wave.MemberState
	// Error: a failure (code and message); ClearError forgets the last.
	ErrorCode  string
	ErrorMsg   string
	ClearError bool
	// Time stamps of the member's life.
	CopyStarted    time.Time
	SyncedAt       time.Time // full copy done
	CutoverStarted time.Time // final pass began
	TargetStarted  time.Time
	// DowntimeSeconds: final pass start → target started, to the
	// millisecond. (A float: histories from before it hold whole seconds,
	// which decode the same.)
	DowntimeSeconds *float64
	// ShareMbps: the member's share of the budget (0: none).
	ShareMbps *int32
}

// TaskSpec is what a task's MigrationWorkflow input is built from
// (workflows.TaskInput): the task row's settings and the run options.
type TaskSpec struct {
	TaskID, DomainID, ProjectID, SourceID, MigProjectID string
	Type                                                sms.TaskType
	OSType                                              sms.OSType
	AutoStart, Syncing, StartTargetServer, ExistServer  bool
	StartNetworkCheck, NeedMigrationTest                bool
	SkipConsistencyCheck                                bool
	Priority                                            int32
	SpeedLimit                                          int32
	OverSpeedThreshold                                  float64
	SpeedRules                                          []speedlimit.Rule
	TimeZone                                            string
	SyncInterval, AgentStepTimeout                      time.Duration
}

// TaskSpecOf is a task row's TaskSpec with the run options.
func TaskSpecOf(task *store.Task, domainID string, o MemberOptions) TaskSpec {
	rules := SpeedRulesOf(task.SpeedRules)
	return TaskSpec{TaskID: task.ID, DomainID: domainID, ProjectID: task.ProjectID, SourceID: task.SourceID,
		MigProjectID: task.MigProjectID, Type: task.Type, OSType: task.OSType, AutoStart: task.AutoStart,
		Syncing: task.Syncing, StartTargetServer: task.StartTargetServer, ExistServer: task.ExistServer,
		StartNetworkCheck: task.StartNetworkCheck, NeedMigrationTest: task.NeedMigrationTest,
		SkipConsistencyCheck: !task.IsNeedConsistencyCheck, Priority: task.Priority, SpeedLimit: task.SpeedLimit,
		OverSpeedThreshold: task.OverSpeedThreshold, SpeedRules: rules,
		TimeZone: o.TimeZone, SyncInterval: o.SyncInterval, AgentStepTimeout: o.AgentStepTimeout}
}

// SpeedRulesOf is a task row's speed rules as the workflow reads them.
func SpeedRulesOf(rs []store.SpeedRule) []speedlimit.Rule {
	out := make([]speedlimit.Rule, len(rs))
	for i, r := range rs {
		out[i] = speedlimit.Rule{Start: r.Start, End: r.End, Speed: ptr.Deref(r.Speed), OverSpeedThreshold: ptr.Deref(r.OverSpeedThreshold)}
	}
	return out
}

// waveStore refuses to run wave activities on a worker wired without one.
func (a *Activities) waveStore() (WaveStore, error) {
	if a.Waves == nil {
		return nil, failure(smserr.SMS9001, errors.New("this worker has no wave store"))
	}
	return a.Waves, nil
}

// waveErr makes a missing wave or task, and a change the store refuses,
// non-retryable failures: retrying cannot help, and the workflow logs them
// and goes on.
func waveErr(err error, code smserr.Code, id string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return failure(code, err, id)
	case refused(err):
		return failure(wave.ErrBadTransition.Code, err, id)
	}
	return err
}

// LoadWave reads the wave's spec and members.
func (a *Activities) LoadWave(ctx context.Context, ref WaveRef) (WavePlan, error) {
	ws, err := a.waveStore()
	if err != nil {
		return WavePlan{}, err
	}
	p, err := ws.WavePlan(ctx, ref.tenant(), ref.WaveID)
	if err != nil {
		return WavePlan{}, waveErr(err, wave.ErrNotFound.Code, ref.WaveID)
	}
	p.Spec.Members = nil // the plan's Members are the ones that count
	return p, nil
}

// WaveMemberInput is the TaskSpec of a member's task (created by the API in
// READY, its workflow not started): the wave starts it as a child.
func (a *Activities) WaveMemberInput(ctx context.Context, ref WaveRef, taskID string) (TaskSpec, error) {
	task, err := a.Store.Task(ctx, ref.tenant(), taskID)
	if err != nil {
		return TaskSpec{}, waveErr(err, smserr.SMS7703, taskID)
	}
	spec := TaskSpecOf(task, ref.DomainID, a.MemberOptions)
	// A member's run reads its speed windows in an IANA zone, as a task
	// the API starts does: never "Local", never UTC for a zone that fails.
	zone, err := wave.ResolveZone(spec.TimeZone)
	if err != nil {
		return TaskSpec{}, failure(wave.ErrTimeZone.Code, err, spec.TimeZone)
	}
	spec.TimeZone = zone
	return spec, nil
}

// SetWaveState records the wave's state.
func (a *Activities) SetWaveState(ctx context.Context, ref WaveRef, ch WaveStateChange) error {
	ws, err := a.waveStore()
	if err != nil {
		return err
	}
	return waveErr(ws.SetWaveState(ctx, ref.tenant(), ref.WaveID, ch), wave.ErrNotFound.Code, ref.WaveID)
}

// DependencyState is the state of the wave ref's wave depends on (a wave
// deleted since reads CANCELED: it will never be DONE).
func (a *Activities) DependencyState(ctx context.Context, ref WaveRef, waveID string) (wave.WaveState, error) {
	ws, err := a.waveStore()
	if err != nil {
		return "", err
	}
	st, err := ws.WaveState(ctx, ref.tenant(), waveID)
	if errors.Is(err, store.ErrNotFound) {
		return wave.WaveCanceled, nil
	}
	return st, err
}

// UpdateWaveMembers records member changes.
func (a *Activities) UpdateWaveMembers(ctx context.Context, ref WaveRef, chs []WaveMemberChange) error {
	ws, err := a.waveStore()
	if err != nil {
		return err
	}
	return waveErr(ws.UpdateWaveMembers(ctx, ref.tenant(), ref.WaveID, chs), wave.ErrNotFound.Code, ref.WaveID)
}
