// Package activities does the side effects of migration workflows: database
// writes, target provisioning through a provider, agent commands, TLS
// material. Activities are methods on Activities, which holds their
// dependencies; workflows call them through a nil *Activities.
package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/smsflow/smsflow/agent/discover"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/identity/taskcert"
	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/envcheck"
	"github.com/smsflow/smsflow/internal/sms/layout"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/sms/sourcestate"
	"github.com/smsflow/smsflow/internal/store"
)

// Store is what the activities need of the database.
type Store interface {
	Task(ctx context.Context, t store.Tenant, id string) (*store.Task, error)
	UpdateTask(ctx context.Context, t store.Tenant, id string, fn func(task *store.Task) error) error
	TransitionTask(ctx context.Context, t store.Tenant, id string, fn func(task *store.Task) error, change store.SourceCycleChange) error
	DeleteTask(ctx context.Context, t store.Tenant, id string) error
	Source(ctx context.Context, t store.Tenant, id string) (*store.Source, error)
	Template(ctx context.Context, t store.Tenant, id string) (*store.Template, error)
}

// Queue queues agent commands.
type Queue interface {
	Enqueue(ctx context.Context, t store.Tenant, c *store.Command) error
}

// Activities holds the dependencies of every activity.
type Activities struct {
	Store    Store
	Queue    Queue
	Provider provider.Provider
	Box      *secret.Box
	Logger   *slog.Logger
	// AgentTimeout: an agent silent this long is disconnected.
	AgentTimeout time.Duration
	Now          func() time.Time
	// Waves and MemberOptions serve the wave activities (activities/wave.go).
	Waves         WaveStore
	MemberOptions MemberOptions
}

// Ref names a task and its tenant.
type Ref struct {
	TaskID   string
	DomainID string
	SourceID string
	Type     sms.TaskType
	OSType   sms.OSType
}

func (r Ref) tenant() store.Tenant { return store.Tenant{DomainID: r.DomainID} }

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Activities) log(ctx context.Context) *slog.Logger {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		l = l.With("workflow", info.WorkflowExecution.ID, "activity", info.ActivityType.Name, "attempt", info.Attempt)
	}
	return l
}

// failure is a non-retryable error carrying an SMS code: the workflow ends
// the task in MIGRATE_FAIL with it.
func failure(code smserr.Code, err error, params ...string) error {
	e := smserr.New(code, params...)
	msg := e.Message
	if err != nil {
		msg += ": " + err.Error()
	}
	return temporal.NewNonRetryableApplicationError(msg, string(code), err, params)
}

// Transition is a set of database changes the workflow makes at once.
type Transition struct {
	Ref
	TaskState sms.TaskState
	// Source state and cycle, checked against the SMS.7728 matrix: they
	// come together, and an unknown one is refused.
	SourceState sms.SourceState
	SourceCycle sms.Cycle
	// Subtask progress marks.
	BeginSubtask  sms.Subtask
	FinishSubtask sms.Subtask
	// ResetSubtasks clears progress from this sub-task on (restart).
	ResetSubtasks []sms.Subtask
	Started       bool        // stamp start_date (first start)
	Finished      bool        // stamp finish_date and total_time
	Failure       *Fail       // record a failure (error_json, failed step)
	ClearFailure  bool        // a restart clears the last failure
	TargetStarted *bool       // the target was booted
	Command       sms.Command // queue this agent command afterwards
	CommandParams map[string]any
	// ClearSnapshot forgets the target's snapshot (clear).
	ClearSnapshot bool
}

// Fail describes why a task failed.
type Fail struct {
	Code  string
	Msg   string
	Step  sms.Step
	Param []string
}

// errorJSON is the spec's error_json: {"error_code","error_param"} where
// error_param is a JSON array in a string, as the hosted service writes it.
func errorJSON(f *Fail) string {
	params, _ := json.Marshal(f.Param)
	if f.Param == nil {
		params = []byte("[]")
	}
	b, _ := json.Marshal(map[string]string{"error_code": f.Code, "error_param": string(params), "error_msg": f.Msg})
	return string(b)
}

// Apply performs a Transition in one database transaction, then queues the
// command, if any.
func (a *Activities) Apply(ctx context.Context, in Transition) error {
	now := a.now()
	ms := now.UnixMilli()
	t := in.tenant()
	if in.SourceState != "" || in.SourceCycle != "" {
		// Check refuses an unknown cycle or state, and an empty one when
		// only the other was given: nothing reaches the row unchecked.
		if err := sourcestate.Check(in.SourceCycle, in.SourceState); err != nil {
			return temporal.NewNonRetryableApplicationError(err.Error(), string(smserr.SMS7728), err)
		}
	}
	change := store.SourceCycleChange{State: in.SourceState, Cycle: in.SourceCycle, AtMs: ms}
	if in.Failure != nil {
		ej := errorJSON(in.Failure)
		change.ErrorJSON = &ej
	}
	err := a.Store.TransitionTask(ctx, t, in.TaskID, func(task *store.Task) error {
		if in.TaskState != "" {
			task.State = in.TaskState
		}
		if in.Started && task.StartDate == 0 {
			task.StartDate = ms
		}
		if in.Finished {
			task.FinishDate = ms
			if task.StartDate > 0 {
				task.TotalTime = ms - task.StartDate
			}
			task.RemainSeconds = 0
		}
		if in.ClearFailure {
			task.ErrorJSON, task.FailedStep = "", ""
		}
		if in.Failure != nil {
			task.ErrorJSON, task.FailedStep = *change.ErrorJSON, in.Failure.Step
		}
		if in.TargetStarted != nil {
			task.TargetStarted = *in.TargetStarted
		}
		if in.ClearSnapshot && task.TargetServer != nil {
			task.TargetServer.SnapshotIDs = ""
		}
		for _, name := range in.ResetSubtasks {
			for i := range task.SubTasks {
				if task.SubTasks[i].Name == name {
					task.SubTasks[i].Progress, task.SubTasks[i].StartDate, task.SubTasks[i].EndDate = 0, nil, nil
				}
			}
		}
		if in.BeginSubtask != "" {
			markSubtask(task, in.BeginSubtask, ms, false)
		}
		if in.FinishSubtask != "" {
			markSubtask(task, in.FinishSubtask, ms, true)
		}
		return nil
	}, change)
	if errors.Is(err, store.ErrNotFound) {
		return failure(smserr.SMS7703, err, in.TaskID)
	}
	if err != nil {
		return fmt.Errorf("apply transition: %w", err)
	}
	if in.Command != "" {
		return a.queue(ctx, in.Ref, in.Command, in.CommandParams)
	}
	return nil
}

func markSubtask(task *store.Task, name sms.Subtask, ms int64, done bool) {
	for i := range task.SubTasks {
		st := &task.SubTasks[i]
		if st.Name != name {
			continue
		}
		if done {
			st.Progress, st.EndDate = 100, &ms
			if st.StartDate == nil {
				st.StartDate = &ms
			}
		} else {
			st.StartDate, st.EndDate = &ms, nil
			if st.Progress >= 100 {
				st.Progress = 0
			}
		}
		return
	}
	st := store.SubTask{ID: int64(len(task.SubTasks) + 1), Name: name, StartDate: &ms}
	if done {
		st.Progress, st.EndDate = 100, &ms
	}
	task.SubTasks = append(task.SubTasks, st)
}

// commandNS is the UUID namespace of command ids derived from activities.
var commandNS = uuid.MustParse("6c1d8f0e-2b7a-4f59-9a43-0d5e2f6b8c11")

func (a *Activities) queue(ctx context.Context, r Ref, name sms.Command, params map[string]any) error {
	switch name {
	case sms.CmdStart, sms.CmdSync:
		var err error
		if params, err = a.dataPlane(ctx, r, params); err != nil {
			return err
		}
	case sms.CmdNetworkCheck:
		// The check measures the link to the target's receiver when there
		// is one; before the target exists (or has its certificate) the
		// agent checks the API link alone.
		withTarget, err := a.dataPlane(ctx, r, params)
		var ae *temporal.ApplicationError
		switch {
		case err == nil:
			params = withTarget
		case errors.As(err, &ae) && (ae.Type() == string(smserr.SMS8103) || ae.Type() == string(smserr.SMS0211)):
		default:
			return err
		}
	}
	var raw string
	if len(params) > 0 {
		b, err := json.Marshal(params)
		if err != nil {
			return err
		}
		raw = string(b)
	}
	c := &store.Command{SourceID: r.SourceID, Name: name, TaskID: r.TaskID, Params: raw}
	if activity.IsActivity(ctx) {
		// The same activity retried (its first attempt queued, then timed
		// out) names its command the same: the agent gets it once.
		info := activity.GetInfo(ctx)
		key := r.TaskID + "/" + info.WorkflowExecution.RunID + "/" + info.ActivityID + "/" + string(name)
		c.ID = uuid.NewSHA1(commandNS, []byte(key)).String()
	}
	err := a.Queue.Enqueue(ctx, r.tenant(), c)
	if errors.Is(err, store.ErrDuplicate) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("queue %s: %w", name, err)
	}
	a.log(ctx).InfoContext(ctx, "agent command queued", "task", r.TaskID, "command", name)
	return nil
}

// dataPlane adds to a copy command what the agent needs to reach the target:
// the receiver's address (started now if the provider hosts receivers) and
// the disks in target order.
func (a *Activities) dataPlane(ctx context.Context, r Ref, params map[string]any) (map[string]any, error) {
	host, ok := a.Provider.(provider.ReceiverHost)
	if !ok {
		return params, nil
	}
	task, err := a.Store.Task(ctx, r.tenant(), r.TaskID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, failure(smserr.SMS7703, err, r.TaskID)
		}
		return nil, err
	}
	if task.TargetServer == nil || task.TargetServer.Location == "" {
		return nil, failure(smserr.SMS8103, nil)
	}
	creds, err := a.taskCreds(task)
	if err != nil {
		return nil, err
	}
	addr, err := host.Receiver(ctx, provider.Target{VMID: task.TargetServer.VMID, Location: task.TargetServer.Location},
		provider.ReceiverTask{TaskID: task.ID, DomainID: task.DomainID, Type: task.Type, Creds: creds,
			PrivateIP: !task.UsePublicIP, IPv6: task.UseIPv6})
	if err != nil {
		return nil, fmt.Errorf("start the receiver: %w", err)
	}
	if addr, err = routeTo(addr, task.MigrationIP, task.UseIPv6); err != nil {
		return nil, err
	}
	spec, err := a.spec(ctx, StepInput{Ref: r})
	if err != nil {
		return nil, err
	}
	disks := make([]map[string]any, 0, len(spec.Disks))
	for i, d := range spec.Disks {
		disks = append(disks, map[string]any{"index": i, "name": d.Name, "size": d.Size})
	}
	out := map[string]any{}
	for k, v := range params {
		out[k] = v
	}
	out["target_addr"], out["disks"] = addr, disks
	return out, nil
}

// routeTo is the address the agent dials: the receiver's port at the
// task's migration_ip when it names one (the target's EIP or private IP,
// as the operator's network routes it), else the provider's address. A
// task on IPv6 (use_ipv6) dials only an IPv6 address: a provider that
// offers none fails the step (SMS.1406) rather than go over IPv4.
func routeTo(addr, migrationIP string, ipv6 bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("the receiver's address %q: %w", addr, err)
	}
	if migrationIP != "" {
		host = migrationIP
	}
	if ip := net.ParseIP(host); ipv6 && (ip == nil || ip.To4() != nil) {
		return "", failure(smserr.SMS1406, fmt.Errorf("use_ipv6 is set but the target's address %s is not IPv6", host),
			"no IPv6 address")
	}
	return net.JoinHostPort(host, port), nil
}

// taskCreds opens the task's TLS key and passphrase (SSL_CONFIG made them).
func (a *Activities) taskCreds(task *store.Task) (transport.Creds, error) {
	if task.CertPEM == "" || task.KeyPEMEnc == "" || task.PassphraseEnc == "" {
		return transport.Creds{}, failure(smserr.SMS0211, errors.New("the task has no certificate yet"))
	}
	key, err := a.Box.Open(task.KeyPEMEnc)
	if err != nil {
		return transport.Creds{}, fmt.Errorf("open task key: %w", err)
	}
	pass, err := a.Box.Open(task.PassphraseEnc)
	if err != nil {
		return transport.Creds{}, fmt.Errorf("open task passphrase: %w", err)
	}
	return transport.Creds{CertPEM: task.CertPEM, KeyPEM: key, Passphrase: pass}, nil
}

// TaskCreds is taskCreds for the worker's receiver restore.
func (a *Activities) TaskCreds(ctx context.Context, domainID, taskID string) (transport.Creds, error) {
	task, err := a.Store.Task(ctx, store.Tenant{DomainID: domainID}, taskID)
	if err != nil {
		return transport.Creds{}, err
	}
	return a.taskCreds(task)
}

// StepInput runs one non-agent step.
type StepInput struct {
	Ref
	Step    sms.Step
	Subtask sms.Subtask
	// Target is the provider's target (set by CREATE_CLOUD_SERVER).
	Target *provider.Target
	// ExistServer binds the given VM instead of creating one.
	ExistServer bool
	StartTarget bool
	// What PUT /v3/tasks/{id} told the run (nil: the task row's): the
	// existing server to bind, the target's disk ids, snapshot ids and
	// enterprise project.
	ExistVM, TargetDiskIDs, SnapshotIDs, EnterpriseProject *string
}

// StepOutput is what a step made.
type StepOutput struct {
	Target *provider.Target
}

// RunStep does a provider or check step, marking its sub-task begun and done.
func (a *Activities) RunStep(ctx context.Context, in StepInput) (StepOutput, error) {
	// Heartbeats tell Temporal the worker is alive: the workflow sets a
	// heartbeat timeout so a step lost with its worker is retried at once.
	stop := heartbeat(ctx, 5*time.Second)
	defer stop()
	t := in.tenant()
	if in.Subtask != "" {
		if err := a.Apply(ctx, Transition{Ref: in.Ref, BeginSubtask: in.Subtask}); err != nil {
			return StepOutput{}, err
		}
	}
	out, err := a.runStep(ctx, in)
	if err != nil {
		a.log(ctx).WarnContext(ctx, "step failed", "task", in.TaskID, "step", in.Step, "err", err)
		return StepOutput{}, err
	}
	if out.Target != nil {
		ts := targetRecord(*out.Target)
		err := a.Store.UpdateTask(ctx, t, in.TaskID, func(task *store.Task) error {
			keep := task.TargetServer
			if keep != nil {
				ts.Disks, ts.VolumeGroups, ts.OSType, ts.OSVersion = keep.Disks, keep.VolumeGroups, keep.OSType, keep.OSVersion
				ts.BtrfsList, ts.SystemDir = keep.BtrfsList, keep.SystemDir
				// PUT /v3/tasks/{id}'s disk and snapshot ids are the
				// operator's, not the provider's: GET shows them still.
				ts.TargetDiskIDs, ts.SnapshotIDs = keep.TargetDiskIDs, keep.SnapshotIDs
			}
			task.TargetServer = &ts
			return nil
		})
		if err != nil {
			return StepOutput{}, fmt.Errorf("record target: %w", err)
		}
	}
	if in.Subtask != "" {
		if err := a.Apply(ctx, Transition{Ref: in.Ref, FinishSubtask: in.Subtask}); err != nil {
			return StepOutput{}, err
		}
	}
	return out, nil
}

func targetRecord(p provider.Target) store.TargetServer {
	return store.TargetServer{ID: p.VMID, VMID: p.VMID, Name: p.Name, IP: p.IP, Location: p.Location}
}

func (a *Activities) runStep(ctx context.Context, in StepInput) (StepOutput, error) {
	switch in.Step {
	case sms.StepCheck:
		return StepOutput{}, a.check(ctx, in)
	case sms.StepCreate:
		spec, err := a.spec(ctx, in)
		if err != nil {
			return StepOutput{}, err
		}
		tg, err := a.Provider.Create(ctx, spec)
		if errors.Is(err, provider.ErrNotFound) {
			return StepOutput{}, failure(smserr.SMS0412, err, spec.ExistVM)
		}
		if errors.Is(err, provider.ErrInUse) {
			return StepOutput{}, failure(smserr.SMS7605, err)
		}
		if err != nil {
			return StepOutput{}, failure(smserr.SMS0601, err, err.Error())
		}
		return StepOutput{Target: &tg}, nil
	case sms.StepSSL:
		return StepOutput{}, a.tls(ctx, in)
	case sms.StepAttach:
		return StepOutput{}, a.onTarget(ctx, in, a.Provider.Prepare)
	case sms.StepFormat:
		spec, err := a.spec(ctx, in)
		if err != nil {
			return StepOutput{}, err
		}
		if in.Target == nil {
			return StepOutput{}, failure(smserr.SMS8103, nil)
		}
		if err := a.Provider.Format(ctx, *in.Target, spec); err != nil {
			if errors.Is(err, provider.ErrNoSpace) {
				return StepOutput{}, failure(smserr.SMS0519, err)
			}
			return StepOutput{}, fmt.Errorf("format target disks: %w", err)
		}
		return StepOutput{}, nil
	case sms.StepConfigure:
		return StepOutput{}, a.onTarget(ctx, in, a.Provider.Configure)
	case sms.StepDetach:
		return StepOutput{}, a.onTarget(ctx, in, a.Provider.Detach)
	case sms.StepStart:
		if !in.StartTarget {
			return StepOutput{}, nil
		}
		return StepOutput{}, a.onTarget(ctx, in, a.Provider.Start)
	}
	return StepOutput{}, temporal.NewNonRetryableApplicationError("unknown step "+string(in.Step), string(smserr.SMS6004), nil)
}

func (a *Activities) onTarget(ctx context.Context, in StepInput, fn func(context.Context, provider.Target) error) error {
	if in.Target == nil {
		return failure(smserr.SMS8103, nil)
	}
	if err := fn(ctx, *in.Target); err != nil {
		return fmt.Errorf("%s: %w", in.Step, err)
	}
	return nil
}

// check runs the environment checks on the source's current facts and
// writes them to the source; a failed check ends the task.
func (a *Activities) check(ctx context.Context, in StepInput) error {
	src, err := a.Store.Source(ctx, in.tenant(), in.SourceID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return failure(smserr.SMS0507, err)
		}
		return err
	}
	if src.OSType != in.OSType {
		return failure(smserr.SMS6610, nil)
	}
	if in.OSType == sms.Windows && in.Type == sms.MigrateFile {
		return failure(smserr.SMS7712, nil)
	}
	checks := envcheck.Run(envcheck.Facts{OSType: src.OSType, LinuxBlockCheck: ptr.Deref(src.LinuxBlockCheck),
		Firmware: ptr.Deref(src.Firmware), HasRsync: src.HasRsync, HasTc: src.HasTc, Disks: src.Disks})
	for _, c := range checks {
		if c.Result == envcheck.Error {
			return failure(smserr.Code(c.ErrorCode), nil, c.Params...)
		}
	}
	// The hosted service's agent copies files with rsync; smsflow's agent
	// copies them itself (agent/filesync), so only other agents need it.
	if in.Type == sms.MigrateFile && (src.HasRsync == nil || !*src.HasRsync) && !strings.HasPrefix(src.AgentVersion, discover.AgentVersionPrefix) {
		return failure(smserr.SMS6517, nil)
	}
	return nil
}

// spec builds the provider spec from the task's target server (the disks the
// operator configured at create time).
func (a *Activities) spec(ctx context.Context, in StepInput) (provider.Spec, error) {
	task, err := a.Store.Task(ctx, in.tenant(), in.TaskID)
	if err != nil {
		return provider.Spec{}, err
	}
	s := provider.Spec{TaskID: task.ID, DomainID: task.DomainID, Name: task.Name, OSType: task.OSType, Type: task.Type, Template: task.VMTemplateID,
		EnterpriseProject: task.EnterpriseProjectID}
	if task.TargetServer != nil {
		if in.ExistServer {
			s.ExistVM = task.TargetServer.VMID
		}
		s.DiskIDs, s.SnapshotIDs = splitIDs(task.TargetServer.TargetDiskIDs), splitIDs(task.TargetServer.SnapshotIDs)
	}
	// The run's own copy of a PUT wins over the row, which may be
	// written after the run took the change.
	if in.ExistServer && in.ExistVM != nil {
		s.ExistVM = *in.ExistVM
	}
	if in.TargetDiskIDs != nil {
		s.DiskIDs = splitIDs(*in.TargetDiskIDs)
	}
	if in.SnapshotIDs != nil {
		s.SnapshotIDs = splitIDs(*in.SnapshotIDs)
	}
	if in.EnterpriseProject != nil {
		s.EnterpriseProject = *in.EnterpriseProject
	}
	src, err := a.Store.Source(ctx, in.tenant(), in.SourceID)
	if err != nil {
		return provider.Spec{}, err
	}
	if task.TargetServer == nil || len(task.TargetServer.Disks) == 0 {
		rec := layout.Recommend(src.Disks, src.VolumeGroups)
		for _, d := range rec.Disks {
			s.Disks = append(s.Disks, provider.Disk{Name: d.Name, Size: d.Size, UsedSize: d.UsedSize, DeviceUse: d.DeviceUse})
		}
	} else {
		for _, d := range task.TargetServer.Disks {
			s.Disks = append(s.Disks, provider.Disk{Name: ptr.Deref(d.Name), Size: ptr.Deref(d.Size), UsedSize: ptr.Deref(d.UsedSize),
				DeviceUse: ptr.Deref(d.DeviceUse)})
		}
	}
	// What each source disk holds, for the target's check at start.
	for i := range s.Disks {
		for _, sd := range src.Disks {
			if ptr.Deref(sd.Name) != s.Disks[i].Name {
				continue
			}
			s.Disks[i].PartitionStyle = ptr.Deref(sd.PartitionStyle)
			for _, pv := range sd.PhysicalVolumes {
				if idx := ptr.Deref(pv.Index); idx > 0 {
					s.Disks[i].Partitions = append(s.Disks[i].Partitions, provider.Partition{Index: idx, FileSystem: ptr.Deref(pv.FileSystem)})
				}
			}
		}
	}
	return s, nil
}

// splitIDs reads a comma-separated id list (target_disk_ids, snapshot_ids).
func splitIDs(s string) []string {
	var out []string
	for _, id := range strings.Split(s, ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// tls makes the task's certificate, key and passphrase for the agent ↔
// target link (SSL_CONFIG), once: a retry keeps what exists.
func (a *Activities) tls(ctx context.Context, in StepInput) error {
	return a.Store.UpdateTask(ctx, in.tenant(), in.TaskID, func(task *store.Task) error {
		if task.CertPEM != "" && task.KeyPEMEnc != "" && task.PassphraseEnc != "" {
			return nil
		}
		cert, key, err := taskcert.New("smsflow-task-" + task.ID)
		if err != nil {
			return err
		}
		keyEnc, err := a.Box.Seal(key)
		if err != nil {
			return err
		}
		pass, err := a.Box.Seal(secret.RandomString(32, secret.AlphaNumeric))
		if err != nil {
			return err
		}
		task.CertPEM, task.CAPEM, task.KeyPEMEnc, task.PassphraseEnc = cert, cert, keyEnc, pass
		return nil
	})
}
