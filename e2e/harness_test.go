// Package e2e runs smsflow end to end: the real `smsflow serve` binary with
// its embedded Temporal server, driven over HTTP by a scripted agent and an
// operator. It is the one test package that builds the Temporal server.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/identity/signer"
	"github.com/smsflow/smsflow/internal/netport"
	"github.com/smsflow/smsflow/internal/testkit/testutil"
)

var (
	binary      string
	agentBinary string
	demoBinary  string
	statOnce    sync.Once
	statSrcErr  error
)

// dependOnSources makes the calling test's cached result depend on the
// sources of the binary.
func dependOnSources(t testing.TB) {
	statOnce.Do(func() { statSrcErr = statSources("..") })
	require.NoError(t, statSrcErr)
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smsflow-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "smsflow")
	agentBinary = filepath.Join(dir, "sms-agent")
	demoBinary = filepath.Join(dir, "demo")
	for out, pkg := range map[string]string{binary: "../cmd/smsflow", agentBinary: "../cmd/sms-agent", demoBinary: "../internal/tools/demo"} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// statSources stats every Go source and the module files the binary is built
// from. go test records the files a test looks at and reuses a cached pass
// only while they are unchanged; without this, the binary this package
// builds (from packages it does not import) could change under a cached pass.
// It runs from the tests (the record starts with m.Run, not in TestMain).
func statSources(root string) error {
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "data", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") || d.Name() == "go.mod" || d.Name() == "go.sum" {
			_, err = os.Stat(path)
		}
		return err
	})
}

func freePort(t testing.TB) string {
	t.Helper()
	addr, err := netport.Addr("127.0.0.1")
	require.NoError(t, err)
	return addr
}

// server is a running `smsflow serve` process.
type server struct {
	t       testing.TB
	dataDir string
	http    string
	front   string
	ui      string
	extra   []string
	// cmdName is the smsflow command run: serve (default), web or worker.
	cmdName string
	// health is the worker's health address (worker only).
	health string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *testutil.Buffer
	creds  iam.Credentials
	client *http.Client
}

func newServer(t testing.TB, extra ...string) *server {
	dependOnSources(t)
	s := &server{t: t, dataDir: t.TempDir(), http: freePort(t), front: freePort(t), ui: freePort(t), extra: extra,
		client: &http.Client{Timeout: 60 * time.Second}}
	s.start()
	t.Cleanup(func() { s.stop() })
	raw, err := os.ReadFile(filepath.Join(s.dataDir, iam.CredentialsFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &s.creds))
	return s
}

// agentKey makes an agent user and its agent key with `smsflow admin`, on
// the server's database, as the install instructions do for each source
// server.
func (s *server) agentKey(t testing.TB) (ak, sk string) {
	t.Helper()
	args := []string{"--data-dir", s.dataDir, "--domain", s.creds.DomainName}
	for i, a := range s.extra {
		switch {
		case strings.HasPrefix(a, "--db-dsn=") || strings.HasPrefix(a, "--secret-key="):
			args = append(args, a)
		case (a == "--db-dsn" || a == "--secret-key") && i+1 < len(s.extra):
			args = append(args, a, s.extra[i+1])
		}
	}
	user := "agent-" + secret.RandomString(8, secret.Hex)
	admin := func(sub ...string) []byte {
		out, err := exec.Command(binary, append(append([]string{"admin"}, sub...), args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return out
	}
	admin("user", "create", "--role", "agent", user)
	var k struct {
		AK   string `json:"ak"`
		SK   string `json:"sk"`
		Role string `json:"role"`
	}
	require.NoError(t, json.Unmarshal(admin("aksk", "create", "--user", user, "--role", "agent", "--json"), &k))
	require.Equal(t, "agent", k.Role)
	return k.AK, k.SK
}

func (s *server) command() string {
	if s.cmdName == "" {
		return "serve"
	}
	return s.cmdName
}

func (s *server) readyURL() string {
	if s.command() == "worker" {
		return "http://" + s.health + "/healthz"
	}
	return "http://" + s.http + "/readyz"
}

// start launches the process and waits for it to answer. A process that
// exits before it answers because a port it was given was taken meanwhile
// (the ports are checked free, then bound by the process seconds later) is
// started again on fresh ports, at most twice; any other early exit fails
// the test at once, with the process's log.
func (s *server) start() {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		exited := s.launch()
		err := s.waitReady(exited)
		if err == nil {
			return
		}
		if !errors.Is(err, errPortTaken) || attempt == 2 {
			s.t.Fatalf("smsflow did not start: %v\n%s", err, s.log.String())
		}
		s.t.Logf("smsflow lost a port before binding it; starting again on fresh ports:\n%s", lastLines(s.log.String(), 5))
		s.refreshPorts()
	}
}

var errPortTaken = errors.New("a port was taken before the process bound it")

func (s *server) launch() <-chan struct{} {
	args := append([]string{s.command(), "--data-dir", s.dataDir, "--http-addr", s.http, "--agent-timeout", "30s",
		"--sync-interval", "2s", "--agent-step-timeout", "2m", "--log-format", "json"}, s.extra...)
	if s.command() == "serve" && s.front != "" {
		args = append(args, "--temporal-embedded-addr", s.front, "--temporal-ui-addr", s.ui)
	}
	if s.command() == "worker" && s.health != "" {
		args = append(args, "--worker-health-addr", s.health)
	}
	s.cmd = exec.Command(binary, args...)
	s.log = &testutil.Buffer{}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.Env = append(os.Environ(), "HOME="+s.dataDir)
	require.NoError(s.t, s.cmd.Start())
	// One waiter per process: kill and stop wait on this channel, never on
	// the process a second time.
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(s.cmd, s.exited)
	return s.exited
}

func (s *server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	// A short timeout per probe: whatever else holds the port may accept
	// the connection and never answer.
	probe := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := probe.Get(s.readyURL())
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("answered %s", resp.Status) // not ready: never nil at the deadline
		}
		select {
		case <-exited:
			if strings.Contains(s.log.String(), "address already in use") {
				return fmt.Errorf("%w: %s", errPortTaken, s.cmd.ProcessState)
			}
			return fmt.Errorf("exited before it answered: %s", s.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no ready answer within 60 s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// refreshPorts picks new ports for the ones this harness chose. The
// embedded Temporal server's internal services pick their own at each start.
func (s *server) refreshPorts() {
	fresh := func(cur string) string {
		if cur == "" {
			return ""
		}
		return freePort(s.t)
	}
	s.http, s.front, s.ui, s.health = fresh(s.http), fresh(s.front), fresh(s.ui), fresh(s.health)
}

// kill ends the process at once (kill -9): no shutdown, no flush.
func (s *server) kill() {
	s.t.Helper()
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	if s.t.Failed() {
		s.t.Logf("smsflow log:\n%s", lastLines(s.log.String(), 80))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// do sends an AK/SK-signed request, as the SDK and the agent do.
func (s *server) do(method, path string, body any) (int, []byte, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return 0, nil, err
		}
	}
	req, err := http.NewRequestWithContext(context.Background(), method, "http://"+s.http+path, bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Project-Id", s.creds.ProjectID)
	if err := signer.Sign(req, raw, s.creds.AK, s.creds.SK, time.Now()); err != nil {
		return 0, nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// localTask creates a task that migrates sourceID into a new target of
// the local provider; extra adds or overrides body fields (syncing,
// speed_limit…). It returns the task id.
func (s *server) localTask(name, typ, sourceID string, extra map[string]any) string {
	body := map[string]any{"name": name, "type": typ, "os_type": "LINUX", "source_server": map[string]any{"id": sourceID},
		"target_server": map[string]any{"vm_id": "", "name": name + "-target"}, "region_name": "local", "region_id": "local",
		"project_name": "default", "project_id": s.creds.ProjectID, "syncing": false}
	maps.Copy(body, extra)
	var out struct {
		ID string `json:"id"`
	}
	s.call("POST", "/v3/tasks", body, &out)
	return out.ID
}

// call is do for the operator: it must succeed with 200.
func (s *server) call(method, path string, body any, out any) {
	s.t.Helper()
	code, b, err := s.do(method, path, body)
	require.NoError(s.t, err)
	require.Equal(s.t, http.StatusOK, code, "%s %s: %s", method, path, b)
	if out != nil {
		require.NoError(s.t, json.Unmarshal(b, out), string(b))
	}
}

type task struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	ErrorJSON string `json:"error_json"`
	SubTasks  []struct {
		Name     string `json:"name"`
		Progress int32  `json:"progress"`
	} `json:"sub_tasks"`
	TargetServer struct {
		VMID     string `json:"vm_id"`
		Location string `json:"location"`
	} `json:"target_server"`
	SourceServer struct {
		State          string `json:"state"`
		MigrationCycle string `json:"migration_cycle"`
	} `json:"source_server"`
	CloneServer struct {
		VMID       string `json:"vm_id"`
		CloneState string `json:"clone_state"`
	} `json:"clone_server"`
	WorkflowURL string `json:"workflow_url"`
	// TargetSnapshotID: the target's snapshot from before a finished
	// task's last sync pass ("" without one).
	TargetSnapshotID string `json:"target_snapshot_id"`
}

func (s *server) task(id string) task {
	s.t.Helper()
	var tk task
	s.call("GET", "/v3/tasks/"+id, nil, &tk)
	return tk
}

// waitState waits for the task to reach a state.
func (s *server) waitState(id, state string, within time.Duration) task {
	s.t.Helper()
	deadline := time.Now().Add(within)
	var tk task
	for time.Now().Before(deadline) {
		tk = s.task(id)
		if tk.State == state {
			return tk
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("task %s is %s (%s), not %s after %s\n%s", id, tk.State, tk.ErrorJSON, state, within, lastLines(s.log.String(), 40))
	return tk
}

// runBinary runs a short smsflow command and returns its combined output.
func runBinary(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	return string(out), err
}
