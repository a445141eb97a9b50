package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/workflows"
)

// TestExternalTemporal runs the production layout: `smsflow web` and
// `smsflow worker` as two processes on one database, both against an
// external Temporal (here the embedded server of another `serve`, in a
// namespace of their own). The API process starts the run, the worker
// process executes it, and agent commands cross between the two processes
// through the database.
func TestExternalTemporal(t *testing.T) {
	host := newServer(t) // provides the Temporal cluster
	const ns = "smsflow-prod"
	registerNamespace(t, host.front, ns)

	dataDir := t.TempDir()
	common := []string{"--temporal-address", host.front, "--temporal-namespace", ns, "--temporal-ui-addr", host.ui}
	api := &server{t: t, dataDir: dataDir, http: freePort(t), cmdName: "web", extra: common,
		client: &http.Client{Timeout: 60 * time.Second}}
	api.start()
	t.Cleanup(api.stop)
	raw, err := os.ReadFile(filepath.Join(dataDir, iam.CredentialsFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &api.creds))

	wk := &server{t: t, dataDir: dataDir, http: freePort(t), cmdName: "worker", health: freePort(t)}
	wk.extra = common // launch adds --worker-health-addr from wk.health, which a restart renews
	wk.start()        // waits for /healthz
	t.Cleanup(wk.stop)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newAgent(t, api, "ext-01")
	a.onCommand = copyAll(ctx)
	go a.run(ctx)
	id := createTask(t, api, a, false)
	tk := api.waitState(id, "MIGRATE_SUCCESS", 90*time.Second)
	assert.Equal(t, "cutovered", tk.SourceServer.MigrationCycle)
	assert.Contains(t, tk.WorkflowURL, "/namespaces/"+ns+"/workflows/", "the link names the namespace")
	assert.Equal(t, 1, a.count("START"))

	// The run lives in the external cluster's namespace, with its search
	// attributes, and the host's own worker never saw it.
	c := dialTemporal(t, host.front, ns)
	// (The frontend's namespace cache learns of attributes registered after
	// the namespace within its refresh interval.)
	var resp *workflowservice.ListWorkflowExecutionsResponse
	require.Eventually(t, func() bool {
		resp, err = c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: ns, Query: `SmsTaskId = "` + id + `"`})
		return err == nil && len(resp.Executions) == 1
	}, 60*time.Second, 500*time.Millisecond, "list by SmsTaskId: %v", err)
	assert.Equal(t, workflows.MigrationWorkflowID(id), resp.Executions[0].Execution.WorkflowId)

	// Without a Temporal address the split processes refuse to start.
	out, err := runBinary("web", "--data-dir", t.TempDir(), "--http-addr", freePort(t))
	require.Error(t, err)
	assert.Contains(t, out, "--temporal-address")
}

// quietLogger keeps the Temporal client's chatter out of test output.
func quietLogger() tlog.Logger {
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func dialTemporal(t testing.TB, addr, ns string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: addr, Namespace: ns, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func registerNamespace(t *testing.T, addr, ns string) {
	t.Helper()
	nc, err := client.NewNamespaceClient(client.Options{HostPort: addr,
		Logger: quietLogger()})
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.Register(context.Background(), &workflowservice.RegisterNamespaceRequest{
		Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)}))
	// The frontend learns of a new namespace within its cache refresh.
	require.Eventually(t, func() bool {
		_, err := nc.Describe(context.Background(), ns)
		return err == nil
	}, 30*time.Second, 200*time.Millisecond)
}

// TestServeGuardsItsDataAndPorts: a second serve on a data dir in use is
// refused before it touches the Temporal database; a taken UI port is
// reported by name before anything starts.
func TestServeGuardsItsDataAndPorts(t *testing.T) {
	s := newServer(t)
	out, err := runBinary("serve", "--data-dir", s.dataDir, "--http-addr", freePort(t),
		"--temporal-embedded-addr", freePort(t), "--temporal-ui-addr", freePort(t))
	require.Error(t, err)
	assert.Contains(t, out, "in use by another smsflow process")

	// /readyz does not wait for the UI's listener; this does.
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", s.ui)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "the first serve's Temporal UI never listened")
	out, err = runBinary("serve", "--data-dir", t.TempDir(), "--http-addr", freePort(t),
		"--temporal-embedded-addr", freePort(t), "--temporal-ui-addr", s.ui)
	require.Error(t, err)
	assert.Contains(t, out, "temporal UI address "+s.ui)

	// Finished runs stay for audits: the namespace keeps them 30 days.
	nc, err := client.NewNamespaceClient(client.Options{HostPort: s.front,
		Logger: quietLogger()})
	require.NoError(t, err)
	defer nc.Close()
	desc, err := nc.Describe(context.Background(), "default")
	require.NoError(t, err)
	assert.Equal(t, 720*time.Hour, desc.Config.WorkflowExecutionRetentionTtl.AsDuration())

	// The first server did not notice.
	var out2 struct {
		Count int `json:"count"`
	}
	s.call("GET", "/v3/tasks", nil, &out2)
	assert.Equal(t, 0, out2.Count)
}

// TestHarnessStartsAgainOnATakenPort: a port taken between the harness's
// check and the process's bind (CI saw one: a Temporal service's) makes the
// harness start the process again on fresh ports, not fail the test.
func TestHarnessStartsAgainOnATakenPort(t *testing.T) {
	dependOnSources(t)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer held.Close()
	taken := held.Addr().String()
	s := &server{t: t, dataDir: t.TempDir(), http: taken, front: freePort(t), ui: freePort(t),
		client: &http.Client{Timeout: 60 * time.Second}}
	s.start()
	t.Cleanup(s.stop)
	assert.NotEqual(t, taken, s.http, "the taken port was given up")
	resp, err := http.Get("http://" + s.http + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
