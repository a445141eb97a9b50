package activities_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/provider/local"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// TestCopyCommandTakesTheTaskRoute: the agent dials the task's migration_ip
// (with the receiver's port), not the provider's advertised address; a task
// on IPv6 whose target has no IPv6 address fails with SMS.1406 instead of
// going over IPv4.
func TestCopyCommandTakesTheTaskRoute(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		// Advertised on a documentation address nothing answers on: only
		// the task's route reaches the receiver.
		f.acts.Provider.(*local.Provider).Net = local.ReceiverNet{Listen: "127.0.0.1", Advertise: "192.0.2.1"}
		f.prepareTarget()
		set := func(fn func(task *store.Task)) {
			require.NoError(t, s.UpdateTask(context.Background(), f.tenant, f.ref.TaskID, func(task *store.Task) error {
				fn(task)
				return nil
			}))
		}
		set(func(task *store.Task) { task.MigrationIP, task.UsePublicIP = "127.0.0.1", false })
		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, Command: "START"}, nil))
		cs := f.commands()
		require.Len(t, cs, 1)
		var params struct {
			TargetAddr string `json:"target_addr"`
		}
		require.NoError(t, json.Unmarshal([]byte(cs[0].Params), &params))
		host, _, err := net.SplitHostPort(params.TargetAddr)
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1", host, "the migration IP, not the advertised 192.0.2.1")
		creds, err := f.acts.TaskCreds(context.Background(), f.tenant.DomainID, f.ref.TaskID)
		require.NoError(t, err)
		c, err := transport.Dial(context.Background(), params.TargetAddr, creds, transport.KindVerify)
		require.NoError(t, err, "the receiver answers there")
		c.Close()

		set(func(task *store.Task) { task.MigrationIP, task.UseIPv6 = "", true })
		err = f.run(a.Apply, activities.Transition{Ref: f.ref, Command: "SYNC"}, nil)
		code, retry := smsCode(err)
		assert.Equal(t, "SMS.1406", code, "%v", err)
		assert.False(t, retry)
		assert.Len(t, f.commands(), 1, "nothing queued over IPv4")

		set(func(task *store.Task) { task.MigrationIP = "::1" })
		require.NoError(t, f.run(a.Apply, activities.Transition{Ref: f.ref, Command: "SYNC"}, nil))
		cs = f.commands()
		require.Len(t, cs, 2)
		require.NoError(t, json.Unmarshal([]byte(cs[1].Params), &params))
		host, _, err = net.SplitHostPort(params.TargetAddr)
		require.NoError(t, err)
		assert.Equal(t, "::1", host)
	})
}

// TestTargetOptionsReachTheProvider: the target's spec carries the task's
// target_disk_ids, snapshot_ids and enterprise project, the run's own copy
// of a PUT winning over the row (the local provider records the spec in
// target.json).
func TestTargetOptionsReachTheProvider(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		a := (*activities.Activities)(nil)
		require.NoError(t, s.UpdateTask(context.Background(), f.tenant, f.ref.TaskID, func(task *store.Task) error {
			task.EnterpriseProjectID = "ep-row"
			task.TargetServer = &store.TargetServer{TargetDiskIDs: " d-1, d-2 ,", SnapshotIDs: "s-row"}
			return nil
		}))
		var out activities.StepOutput
		require.NoError(t, f.run(a.RunStep, activities.StepInput{Ref: f.ref, Step: "CREATE_CLOUD_SERVER",
			SnapshotIDs: new("s-run"), EnterpriseProject: new("ep-run")}, &out))
		require.NotNil(t, out.Target)
		raw, err := os.ReadFile(filepath.Join(out.Target.Location, "target.json"))
		require.NoError(t, err)
		var m struct {
			Spec provider.Spec `json:"spec"`
		}
		require.NoError(t, json.Unmarshal(raw, &m))
		assert.Equal(t, []string{"d-1", "d-2"}, m.Spec.DiskIDs)
		assert.Equal(t, []string{"s-run"}, m.Spec.SnapshotIDs, "the run's copy of the PUT")
		assert.Equal(t, "ep-run", m.Spec.EnterpriseProject)
		f.t.Cleanup(f.acts.Provider.(*local.Provider).StopReceivers)
	})
}
