package activities_test

import (
	"context"
	"encoding/json"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/agent/transport"
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
