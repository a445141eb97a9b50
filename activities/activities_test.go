package activities_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/agent/discover"
	"github.com/smsflow/smsflow/agent/netcheck"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/dispatch"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/provider/local"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/sourcestate"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// fixture is a real store with one tenant, one registered Linux source and a
// READY task on it, activities wired to a real dispatcher and local provider.
type fixture struct {
	t      *testing.T
	store  *store.Store
	acts   *activities.Activities
	box    *secret.Box
	tenant store.Tenant
	ref    activities.Ref
	suite  testsuite.WorkflowTestSuite
}

func newFixture(t *testing.T, s *store.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	box, err := secret.NewBox(bytes.Repeat([]byte{3}, secret.KeySize))
	require.NoError(t, err)
	dom := &store.Domain{ID: uuid.NewString(), Name: "acme-" + uuid.NewString()[:8], Enabled: true, CreatedAt: time.Now()}
	require.NoError(t, s.CreateDomain(ctx, dom))
	ten := store.Tenant{DomainID: dom.ID, ProjectID: "p1"}
	rsync, tc := true, true
	src := &store.Source{Name: "web-01", Hostname: "web-01", IP: "10.0.0.1", OSType: "LINUX", OSVersion: "CENTOS7.9",
		AgentVersion: "test", HasRsync: &rsync, HasTc: &tc, LinuxBlockCheck: new(`{"architecture":"x86_64"}`),
		BootLoader: new("GRUB"), State: "unavailable", MigrationCycle: "checking",
		Disks: []store.SourceDisk{{Name: new("/dev/vda"), DeviceUse: new("BOOT"), PartitionStyle: new("MBR"),
			Size: new(int64(2 << 30)), UsedSize: new(int64(64 << 20))}}}
	id, _, err := s.RegisterSource(ctx, ten, store.Registration{Source: src, NewID: uuid.NewString})
	require.NoError(t, err)
	require.NoError(t, s.UpdateSource(ctx, ten, id, func(src *store.Source) error {
		src.State, src.MigrationCycle = "waiting", "cutoverready"
		return nil
	}))
	require.NoError(t, s.TouchSource(ctx, ten, id, time.Now().UnixMilli(), 0))
	task := &store.Task{ID: uuid.NewString(), SourceID: id, Name: "t", Type: "MIGRATE_BLOCK", OSType: "LINUX", State: "READY"}
	require.NoError(t, s.CreateTask(ctx, ten, task))

	q := dispatch.New(s, dispatch.Options{Redeliver: time.Minute, PollInterval: 20 * time.Millisecond})
	prov, err := local.New(filepath.Join(t.TempDir(), "targets"))
	require.NoError(t, err)
	return &fixture{t: t, store: s, box: box, tenant: ten,
		acts: &activities.Activities{Store: s, Queue: q, Provider: prov, Box: box, AgentTimeout: 90 * time.Second},
		ref:  activities.Ref{TaskID: task.ID, DomainID: dom.ID, SourceID: id, Type: "MIGRATE_BLOCK", OSType: "LINUX"}}
}

// prepareTarget runs the steps that give the task a target with its disks
// and TLS material (CREATE_CLOUD_SERVER, SSL_CONFIG, FORMAT_DISK); the
// receivers it may start stop with the test.
func (f *fixture) prepareTarget() {
	f.t.Helper()
	a := (*activities.Activities)(nil)
	var out activities.StepOutput
	require.NoError(f.t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "CREATE_CLOUD_SERVER"}, &out))
	require.NoError(f.t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "SSL_CONFIG"}, nil))
	require.NoError(f.t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "FORMAT_DISK", Target: out.Target}, nil))
	f.t.Cleanup(f.acts.Provider.(*local.Provider).StopReceivers)
}

// run executes one activity in a fresh test activity environment, as a
// worker would (activity context, info, heartbeats).
func (f *fixture) run(fn any, in any, out any) error {
	env := f.suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	v, err := env.ExecuteActivity(fn, in)
	if err == nil && out != nil {
		return v.Get(out)
	}
	return err
}

func (f *fixture) task() *store.Task {
	tk, err := f.store.Task(context.Background(), f.tenant, f.ref.TaskID)
	require.NoError(f.t, err)
	return tk
}

func (f *fixture) source() *store.Source {
	src, err := f.store.Source(context.Background(), f.tenant, f.ref.SourceID)
	require.NoError(f.t, err)
	return src
}

func (f *fixture) commands() []store.Command {
	var cs []store.Command
	require.NoError(f.t, f.store.DB().Where("domain_id = ? AND source_id = ?", f.tenant.DomainID, f.ref.SourceID).
		Order("seq").Find(&cs).Error)
	return cs
}

// smsCode is the SMS code an activity error carries, and whether Temporal
// may retry it.
func smsCode(err error) (string, bool) {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type(), !ae.NonRetryable()
	}
	return "", true
}

func TestApply(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)

		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, TaskState: "RUNNING", Started: true,
			SourceState: "replicate", SourceCycle: "replicating", BeginSubtask: "MIGRATE_LINUX_BLOCK",
			Command: "NETWORK_CHECK", CommandParams: map[string]any{"speed_limit": 40}}, nil))
		tk := f.task()
		assert.Equal(t, sms.TaskRunning, tk.State)
		assert.NotZero(t, tk.StartDate)
		require.Len(t, tk.SubTasks, 1)
		assert.Equal(t, sms.Subtask("MIGRATE_LINUX_BLOCK"), tk.SubTasks[0].Name)
		assert.NotNil(t, tk.SubTasks[0].StartDate)
		src := f.source()
		assert.Equal(t, sms.SourceReplicate, src.State)
		assert.Equal(t, sms.CycleReplicating, src.MigrationCycle)
		cs := f.commands()
		require.Len(t, cs, 1)
		assert.Equal(t, sms.CmdNetworkCheck, cs[0].Name)
		assert.Equal(t, f.ref.TaskID, cs[0].TaskID)
		assert.JSONEq(t, `{"speed_limit":40}`, cs[0].Params)

		// The same activity retried after its first attempt queued: the
		// agent gets the command once.
		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, Command: "NETWORK_CHECK"}, nil))
		assert.Len(t, f.commands(), 1, "a retried attempt does not queue twice")

		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, FinishSubtask: "MIGRATE_LINUX_BLOCK"}, nil))
		tk = f.task()
		assert.Equal(t, int32(100), tk.SubTasks[0].Progress)
		assert.NotNil(t, tk.SubTasks[0].EndDate)

		fail := &activities.Fail{Code: "SMS.1801", Msg: "disk read error", Step: "MIGRATE", Param: []string{"/dev/vda"}}
		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, TaskState: "MIGRATE_FAIL",
			SourceState: "error", SourceCycle: "replicating", Failure: fail}, nil))
		tk = f.task()
		var ej map[string]string
		require.NoError(t, json.Unmarshal([]byte(tk.ErrorJSON), &ej))
		assert.Equal(t, "SMS.1801", ej["error_code"])
		assert.JSONEq(t, `["/dev/vda"]`, ej["error_param"], "error_param is a JSON array in a string")
		assert.Equal(t, sms.StepMigrate, tk.FailedStep)
		assert.Equal(t, tk.ErrorJSON, f.source().ErrorJSON, "the source shows the error too")

		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, TaskState: "RUNNING", ClearFailure: true,
			ResetSubtasks: []sms.Subtask{"MIGRATE_LINUX_BLOCK"}}, nil))
		tk = f.task()
		assert.Empty(t, tk.ErrorJSON)
		assert.Equal(t, int32(0), tk.SubTasks[0].Progress, "a restart redoes the failed step")

		// clear forgets the target's snapshot and keeps the rest.
		require.NoError(t, s.UpdateTask(t.Context(), store.Tenant{DomainID: f.ref.DomainID}, f.ref.TaskID, func(task *store.Task) error {
			task.TargetServer = &store.TargetServer{VMID: "vm-9", SnapshotIDs: "snap-1"}
			return nil
		}))
		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, ClearSnapshot: true}, nil))
		tk = f.task()
		require.NotNil(t, tk.TargetServer)
		assert.Empty(t, tk.TargetServer.SnapshotIDs)
		assert.Equal(t, "vm-9", tk.TargetServer.VMID)
	})
}

func TestApplyRefuses(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		// A pair the SMS.7728 matrix forbids.
		require.Error(t, sourcestate.Check(sms.CycleCutovered, sms.SourceReplicate))
		err := f.run(a.Apply, activities.Transition{Ref: f.ref, TaskState: "RUNNING", SourceState: "replicate", SourceCycle: "cutovered"}, nil)
		code, retry := smsCode(err)
		assert.Equal(t, "SMS.7728", code)
		assert.False(t, retry, "a state-machine violation is not retried")
		assert.Equal(t, sms.TaskReady, f.task().State, "nothing was written")

		// An unknown state or cycle, or one without the other, is refused
		// too: the matrix is never skipped.
		for _, tr := range []activities.Transition{
			{SourceState: "paused", SourceCycle: sms.CycleReplicating},
			{SourceState: sms.SourceReplicate, SourceCycle: "done"},
			{SourceState: sms.SourceStopped},
			{SourceCycle: sms.CycleCutovered},
		} {
			tr.Ref, tr.TaskState = f.ref, sms.TaskRunning
			code, retry := smsCode(f.run(a.Apply, tr, nil))
			assert.Equal(t, "SMS.7728", code, "%+v", tr)
			assert.False(t, retry, "%+v", tr)
		}
		assert.Equal(t, sms.TaskReady, f.task().State, "nothing was written")
		assert.Equal(t, sms.SourceWaiting, f.source().State, "nothing was written")

		other := f.ref
		other.TaskID = uuid.NewString()
		code, retry = smsCode(f.run(a.Apply, activities.Transition{Ref: other, TaskState: "RUNNING"}, nil))
		assert.Equal(t, "SMS.7703", code)
		assert.False(t, retry)

		wrongTenant := f.ref
		wrongTenant.DomainID = uuid.NewString()
		code, _ = smsCode(f.run(a.Apply, activities.Transition{Ref: wrongTenant, TaskState: "ABORT"}, nil))
		assert.Equal(t, "SMS.7703", code, "another tenant's task is not found")
		assert.Equal(t, sms.TaskReady, f.task().State)
	})
}

func TestRunStepsLayOutTheTarget(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		step := func(name sms.Step, sub sms.Subtask, target *provider.Target) (activities.StepOutput, error) {
			var out activities.StepOutput
			err := f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: name, Subtask: sub, Target: target}, &out)
			return out, err
		}
		_, err := step("CHECK", "", nil)
		require.NoError(t, err)

		out, err := step("CREATE_CLOUD_SERVER", "CREATE_CLOUD_SERVER", nil)
		require.NoError(t, err)
		require.NotNil(t, out.Target)
		assert.True(t, out.Target.Created)
		tk := f.task()
		require.NotNil(t, tk.TargetServer)
		assert.Equal(t, out.Target.VMID, tk.TargetServer.VMID, "the target is recorded on the task")
		assert.Equal(t, int32(100), tk.SubTasks[0].Progress)

		_, err = step("SSL_CONFIG", "SSL_CONFIG", nil)
		require.NoError(t, err)
		tk = f.task()
		block, _ := pem.Decode([]byte(tk.CertPEM))
		require.NotNil(t, block)
		cert, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		assert.NoError(t, cert.VerifyHostname("127.0.0.1"), "the agent reaches the receiver on loopback in tests")
		assert.NotContains(t, tk.KeyPEMEnc, "PRIVATE KEY", "the key is stored encrypted")
		key, err := f.box.Open(tk.KeyPEMEnc)
		require.NoError(t, err)
		assert.Contains(t, key, "PRIVATE KEY")
		_, err = step("SSL_CONFIG", "SSL_CONFIG", nil)
		require.NoError(t, err)
		assert.Equal(t, tk.CertPEM, f.task().CertPEM, "a retry keeps the certificate the agent may hold")

		_, err = step("FORMAT_DISK", "FORMAT_DISK_LINUX_BLOCK", out.Target)
		require.NoError(t, err)
		st, err := os.Stat(local.DiskFile(out.Target.Location, 0))
		require.NoError(t, err)
		assert.Equal(t, int64(40<<30), st.Size(), "the recommended system disk: at least 40 GiB")

		err = f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "START_TARGET", Subtask: "START_TARGET", Target: out.Target, StartTarget: true}, nil)
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(out.Target.Location, "target.json"))
		require.NoError(t, err)
		assert.Contains(t, string(b), `"started": true`)

		_, err = step("CONFIGURE", "", nil)
		code, _ := smsCode(err)
		assert.Equal(t, "SMS.8103", code, "a step on a target never created")
	})
}

// The target's record keeps what PUT /v3/tasks/{id} gave it (disk and
// snapshot ids): the create step replaces only what the provider made.
func TestRunStepKeepsTheTargetUpdate(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		require.NoError(t, s.UpdateTask(t.Context(), store.Tenant{DomainID: f.ref.DomainID}, f.ref.TaskID, func(task *store.Task) error {
			task.TargetServer = &store.TargetServer{Name: "t", TargetDiskIDs: "d1,d2", SnapshotIDs: "s1"}
			return nil
		}))
		var out activities.StepOutput
		require.NoError(t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "CREATE_CLOUD_SERVER"}, &out))
		ts := f.task().TargetServer
		require.NotNil(t, ts)
		assert.Equal(t, out.Target.VMID, ts.VMID)
		assert.Equal(t, "d1,d2", ts.TargetDiskIDs)
		assert.Equal(t, "s1", ts.SnapshotIDs)
	})
}

func TestRunStepFailures(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		// An existing server that is not there.
		require.NoError(t, s.UpdateTask(context.Background(), f.tenant, f.ref.TaskID, func(tk *store.Task) error {
			tk.TargetServer = &store.TargetServer{VMID: "prepared-vm"}
			return nil
		}))
		err := f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "CREATE_CLOUD_SERVER", ExistServer: true}, nil)
		code, retry := smsCode(err)
		assert.Equal(t, "SMS.0412", code)
		assert.False(t, retry)

		// The source changed OS under the task.
		wrong := f.ref
		wrong.OSType = "WINDOWS"
		code, _ = smsCode(f.run(a.RunStep, activities.StepInput{Ref: wrong, Step: "CHECK"}, nil))
		assert.Equal(t, "SMS.6610", code)

		// More used bytes than the target's file system holds.
		require.NoError(t, s.UpdateTask(context.Background(), f.tenant, f.ref.TaskID, func(tk *store.Task) error {
			tk.TargetServer = &store.TargetServer{Disks: []store.TargetDisk{{Name: new("/dev/vda"), Size: new(int64(1 << 50)),
				UsedSize: new(int64(1 << 50)), DeviceUse: new("BOOT")}}}
			return nil
		}))
		var out activities.StepOutput
		require.NoError(t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "CREATE_CLOUD_SERVER"}, &out))
		code, retry = smsCode(f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "FORMAT_DISK", Target: out.Target}, nil))
		assert.Equal(t, "SMS.0519", code)
		assert.False(t, retry)
	})
}

func TestCleanup(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		for _, created := range []bool{true, false} {
			f := newFixture(t, s)
			a := (*activities.Activities)(nil)
			var out activities.StepOutput
			require.NoError(t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "CREATE_CLOUD_SERVER"}, &out))
			out.Target.Created = created
			require.NoError(t, f.run(a.Cleanup, activities.CleanupInput{Ref: f.ref, Target: out.Target,
				DeleteTarget: created, AgentRunning: true}, nil))
			var names []sms.Command
			for _, c := range f.commands() {
				names = append(names, c.Name)
			}
			assert.Equal(t, []sms.Command{sms.CmdStop, sms.CmdDelete}, names)
			_, err := s.Task(context.Background(), f.tenant, f.ref.TaskID)
			assert.ErrorIs(t, err, store.ErrNotFound)
			assert.Nil(t, f.source().CurrentTaskID, "the source is free for a new task")
			_, err = os.Stat(out.Target.Location)
			assert.Equal(t, created, os.IsNotExist(err), "created targets go, bound ones stay (created=%v)", created)

			// Retried after the row went: still done, nothing twice.
			require.NoError(t, f.run(a.Cleanup, activities.CleanupInput{Ref: f.ref, Target: out.Target, DeleteTarget: created}, nil))
		}
	})
}

func TestCloneRecordsTheResult(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		var out activities.StepOutput
		require.NoError(t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "CREATE_CLOUD_SERVER"}, &out))
		require.NoError(t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "FORMAT_DISK", Target: out.Target}, nil))

		var res activities.CloneResult
		require.NoError(t, f.run(a.Clone, activities.CloneInput{Ref: f.ref, Target: *out.Target, Name: "c1"}, &res))
		assert.Equal(t, sms.CloneFinished, res.CloneState, "the result says the clone finished")
		cs := f.task().CloneServer
		require.NotNil(t, cs)
		assert.Equal(t, "FINISHED", cs.CloneState, "the SDK's clone_state")
		assert.Equal(t, "c1", cs.Name)
		assert.True(t, strings.HasSuffix(cs.VMID, "-c1"), cs.VMID)

		// The template names the clone; a template gone since the API
		// checked it is a clone ERROR with SMS.7101, and no clone.
		tpl := &store.Template{ID: "tpl-clone", Name: "clone-tpl", TargetServerName: "web-clone", Region: "r", ProjectID: "p"}
		require.NoError(t, s.CreateTemplate(t.Context(), store.Tenant{DomainID: f.ref.DomainID}, tpl))
		require.NoError(t, f.run(a.Clone, activities.CloneInput{Ref: f.ref, Target: *out.Target, Name: "c3", TemplateID: tpl.ID}, nil))
		cs = f.task().CloneServer
		assert.Equal(t, "FINISHED", cs.CloneState)
		assert.Equal(t, "web-clone", cs.Name, "named by its template")
		require.NoError(t, f.run(a.Clone, activities.CloneInput{Ref: f.ref, Target: *out.Target, Name: "c4", TemplateID: "gone"}, &res))
		assert.Equal(t, sms.CloneError, res.CloneState, "a clone from a template that is gone did not finish")
		cs = f.task().CloneServer
		assert.Equal(t, "ERROR", cs.CloneState)
		assert.Equal(t, "SMS.7101", cs.CloneError)
		assert.Empty(t, cs.VMID)

		gone := *out.Target
		gone.Location = filepath.Join(filepath.Dir(gone.Location), "missing")
		require.NoError(t, f.run(a.Clone, activities.CloneInput{Ref: f.ref, Target: gone, Name: "c2"}, &res),
			"a failed clone is a result for the operator, not a failed task")
		assert.Equal(t, sms.CloneError, res.CloneState)
		cs = f.task().CloneServer
		assert.Equal(t, "ERROR", cs.CloneState)
		assert.Equal(t, "SMS.1102", cs.CloneError)
		assert.NotEmpty(t, cs.ErrorMsg)
	})
}

// WaitAgent: a connected agent passes at once; a missing source is
// SMS.0507; an agent that stays away fails SMS.0508 (not retried) once the
// timeout has passed since the wait began — not since its last poll, which
// may be long before — and one that polls meanwhile passes.
func TestWaitAgent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		in := activities.WaitAgentInput{Ref: f.ref, Since: time.Now(), Timeout: 5 * time.Minute}
		require.NoError(t, f.run(a.WaitAgent, in, nil), "the agent polled just now")

		gone := in
		gone.SourceID = uuid.NewString()
		code, retry := smsCode(f.run(a.WaitAgent, gone, nil))
		assert.Equal(t, "SMS.0507", code)
		assert.False(t, retry)

		// Away: the clock runs two minutes a look.
		last := time.UnixMilli(f.source().LastVisitTime)
		var mu sync.Mutex
		clock := last
		f.acts.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(2 * time.Minute)
			return clock
		}
		in.Since = last
		code, retry = smsCode(f.run(a.WaitAgent, in, nil))
		assert.Equal(t, "SMS.0508", code)
		assert.False(t, retry)
		mu.Lock()
		assert.Equal(t, last.Add(6*time.Minute), clock, "failed at the first look past the timeout")
		mu.Unlock()

		// Away for an hour before the wait began: it still waits, and
		// the agent's poll ends the wait.
		in.Since = last.Add(time.Hour)
		f.acts.Now = func() time.Time { return in.Since.Add(time.Minute) }
		env := f.suite.NewTestActivityEnvironment()
		env.RegisterActivity(f.acts)
		waited := 0
		env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) {
			// It is waiting (a heartbeat per look): the agent polls.
			if waited++; waited == 1 {
				assert.NoError(t, s.TouchSource(context.Background(), f.tenant, f.ref.SourceID, in.Since.Add(time.Minute).UnixMilli(), 0))
			}
		})
		_, err := env.ExecuteActivity(a.WaitAgent, in)
		require.NoError(t, err)
		assert.Equal(t, 1, waited, "it waited one look, then saw the agent")
	})
}

func TestPushSpeedLimit(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		require.NoError(t, f.run(a.PushSpeedLimit, activities.SpeedInput{Ref: f.ref, Mbps: 40, Threshold: 10}, nil))
		tk := f.task()
		assert.Equal(t, int32(40), tk.CurrentLimit)
		assert.Equal(t, 10.0, tk.CurrentThreshold)
		assert.Empty(t, f.commands(), "an idle agent gets the limit with its next command")

		require.NoError(t, f.run(a.PushSpeedLimit, activities.SpeedInput{Ref: f.ref, Mbps: 20, Notify: true}, nil))
		cs := f.commands()
		require.Len(t, cs, 1)
		assert.Equal(t, sms.CmdSpeedLimit, cs[0].Name)
		assert.JSONEq(t, `{"speed_limit":20,"over_speed_threshold":0}`, cs[0].Params)
	})
}

// TestCopyCommandCarriesTheReceiver: START goes out with the address of the
// target's receiver (started on loopback by the local provider) and the
// disks in target order; the task's agent can dial it with the task's
// certificate and passphrase, another certificate cannot.
func TestCopyCommandCarriesTheReceiver(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		f.prepareTarget()

		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, Command: "START",
			CommandParams: map[string]any{"speed_limit": 40}}, nil))
		cs := f.commands()
		require.Len(t, cs, 1)
		var params struct {
			TargetAddr string `json:"target_addr"`
			SpeedLimit int    `json:"speed_limit"`
			Disks      []struct {
				Index int    `json:"index"`
				Name  string `json:"name"`
				Size  int64  `json:"size"`
			} `json:"disks"`
		}
		require.NoError(t, json.Unmarshal([]byte(cs[0].Params), &params))
		assert.Equal(t, 40, params.SpeedLimit)
		require.Len(t, params.Disks, 1)
		assert.Equal(t, "/dev/vda", params.Disks[0].Name)
		assert.Equal(t, int64(40<<30), params.Disks[0].Size)
		require.NotEmpty(t, params.TargetAddr)

		creds, err := f.acts.TaskCreds(context.Background(), f.tenant.DomainID, f.ref.TaskID)
		require.NoError(t, err)
		c, err := transport.Dial(context.Background(), params.TargetAddr, creds, transport.KindVerify)
		require.NoError(t, err, "the task's agent gets in")
		c.Close()
		bad := creds
		bad.Passphrase = "wrong"
		_, err = transport.Dial(context.Background(), params.TargetAddr, bad, transport.KindVerify)
		assert.ErrorIs(t, err, transport.ErrAuth)

		// SYNC later reuses the running receiver.
		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, Command: "SYNC"}, nil))
		cs = f.commands()
		require.Len(t, cs, 2)
		assert.Contains(t, cs[1].Params, params.TargetAddr)

		// After a worker restart the receiver comes back on the same port.
		prov := f.acts.Provider.(*local.Provider)
		prov.StopReceivers()
		require.NoError(t, prov.RestoreReceivers(context.Background(), f.acts.TaskCreds))
		c, err = transport.Dial(context.Background(), params.TargetAddr, creds, transport.KindVerify)
		require.NoError(t, err, "restored where the agent dials")
		c.Close()
	})
}

// TestFileLevelNeedsRsyncOnlyForOtherAgents: the hosted service's agent
// copies files with rsync (SMS.6517 without it); smsflow's agent does not.
func TestFileLevelNeedsRsyncOnlyForOtherAgents(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		ref := f.ref
		ref.Type = "MIGRATE_FILE"
		no := false
		for _, c := range []struct {
			agent string
			code  string
		}{{"sms-agent 23.1", "SMS.6517"}, {discover.AgentVersionPrefix + "dev", ""}} {
			src := f.source()
			src.HasRsync, src.AgentVersion = &no, c.agent
			_, _, err := s.RegisterSource(context.Background(), f.tenant, store.Registration{Source: src, BodyID: src.ID, NewID: uuid.NewString})
			require.NoError(t, err)
			code, _ := smsCode(f.run(a.RunStep, activities.StepInput{Ref: ref, Step: "CHECK"}, nil))
			assert.Equal(t, c.code, code, c.agent)
		}
	})
}

// TestNetworkCheckCommand: NETWORK_CHECK names the target's receiver once
// the target exists, and that receiver answers a real measurement; before,
// the command goes out without one (the agent checks the API link alone).
func TestNetworkCheckCommand(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		a := (*activities.Activities)(nil)
		addr := func(f *fixture) string {
			var p struct {
				TargetAddr string `json:"target_addr"`
			}
			cs := f.commands()
			require.Len(t, cs, 1)
			assert.Equal(t, sms.CmdNetworkCheck, cs[0].Name)
			if cs[0].Params != "" {
				require.NoError(t, json.Unmarshal([]byte(cs[0].Params), &p))
			}
			return p.TargetAddr
		}
		early := newFixture(t, s)
		require.NoError(t, early.run(a.Apply, activities.Transition{Ref: early.ref, Command: "NETWORK_CHECK"}, nil))
		assert.Empty(t, addr(early), "no target yet")

		f := newFixture(t, s)
		f.prepareTarget()
		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, Command: "NETWORK_CHECK"}, nil))
		target := addr(f)
		require.NotEmpty(t, target)

		creds, err := f.acts.TaskCreds(context.Background(), f.tenant.DomainID, f.ref.TaskID)
		require.NoError(t, err)
		c, err := transport.Dial(context.Background(), target, creds, transport.KindProbe)
		require.NoError(t, err)
		defer c.Close()
		res, err := netcheck.Run(context.Background(), c, netcheck.Options{Pings: 3, Duration: 100 * time.Millisecond})
		require.NoError(t, err, "the receiver answers a network check")
		assert.Positive(t, res.Mbps)
	})
}
