package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/config"
	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/netport"
	"github.com/smsflow/smsflow/internal/testkit/testutil"
)

func init() { secret.PasswordIterations = 1000 }

// run executes the CLI in-process.
func run(t *testing.T, ctx context.Context, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut testutil.Buffer
	cmd := newRootCmd(&out, &errOut, func(k string) string { return env[k] })
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestHelpListsEveryFlag(t *testing.T) {
	for _, sub := range [][]string{{"serve"}, {"web"}, {"admin"}, {"admin", "aksk", "create"}} {
		out, _, err := run(t, context.Background(), nil, append(sub, "--help")...)
		require.NoError(t, err)
		for _, f := range config.Fields() {
			assert.Contains(t, out, "--"+f.Flag, "%v --help", sub)
			assert.Contains(t, out, f.Env, "%v --help names the variable", sub)
		}
		assert.Contains(t, out, "--config")
	}
	out, _, err := run(t, context.Background(), nil, "--help")
	require.NoError(t, err)
	for _, c := range []string{"serve", "web", "admin", "healthcheck"} {
		assert.Contains(t, out, c)
	}
}

func TestAdminCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	env := map[string]string{"SMSFLOW_DATA_DIR": dir}
	adm := func(args ...string) string {
		t.Helper()
		out, errOut, err := run(t, ctx, env, append([]string{"admin"}, args...)...)
		require.NoError(t, err, errOut)
		return out
	}
	var d map[string]string
	require.NoError(t, json.Unmarshal([]byte(adm("domain", "create", "acme", "--json")), &d))
	assert.Len(t, d["id"], 32)
	assert.Contains(t, adm("domain", "list"), "acme")

	adm("project", "create", "--domain", "acme", "region-1", "--id", "acmeproject0001")
	assert.Contains(t, adm("project", "list", "--domain", "acme"), "acmeproject0001")

	var u map[string]string
	require.NoError(t, json.Unmarshal([]byte(adm("user", "create", "--domain", "acme", "bob", "--json")), &u))
	assert.GreaterOrEqual(t, len(u["password"]), 20, "generated password printed once")
	assert.Contains(t, adm("user", "list", "--domain", "acme"), "bob")
	assert.NotContains(t, adm("user", "list", "--domain", "acme", "--json"), u["password"])

	var k map[string]string
	require.NoError(t, json.Unmarshal([]byte(adm("aksk", "create", "--domain", "acme", "--user", "bob", "--json")), &k))
	assert.Len(t, k["ak"], 20)
	assert.Len(t, k["sk"], 40)
	list := adm("aksk", "list", "--domain", "acme")
	assert.Contains(t, list, k["ak"])
	assert.Contains(t, list, "active")
	assert.NotContains(t, list, k["sk"], "the SK is never listed")
	adm("aksk", "revoke", "--domain", "acme", k["ak"])
	assert.Contains(t, adm("aksk", "list", "--domain", "acme"), "revoked")
	assert.Contains(t, adm("token", "revoke", "--domain", "acme", "--user", "bob"), "0 tokens revoked")
	adm("user", "disable", "--domain", "acme", "bob")

	// Errors are clear and non-zero.
	_, _, err := run(t, ctx, env, "admin", "aksk", "revoke", "--domain", "acme", k["ak"])
	assert.ErrorContains(t, err, "no active access key")
	_, _, err = run(t, ctx, env, "admin", "user", "create", "--domain", "nowhere", "x")
	assert.ErrorContains(t, err, "nowhere")
	_, _, err = run(t, ctx, env, "admin", "domain", "create", "acme")
	assert.Error(t, err, "duplicate domain")
	_, _, err = run(t, ctx, env, "admin", "project", "list")
	assert.ErrorContains(t, err, "domain", "--domain is required")

	// The database holds the SK only encrypted.
	db, err := os.ReadFile(filepath.Join(dir, "smsflow.db"))
	require.NoError(t, err)
	assert.False(t, bytes.Contains(db, []byte(k["sk"])))
	assert.False(t, bytes.Contains(db, []byte(u["password"])))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := netport.Addr("127.0.0.1")
	require.NoError(t, err)
	return addr
}

// TestServe: on a fresh data dir, serve bootstraps, answers, logs the
// credentials file but no secret, and stops cleanly on cancel.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	// Not the default 7233/8233: another Temporal on this machine may hold them.
	temporalAddrs := []string{"--temporal-embedded-addr", freeAddr(t), "--temporal-ui-addr", freeAddr(t)}
	ctx, cancel := context.WithCancel(context.Background())
	var errOut testutil.Buffer
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd(&testutil.Buffer{}, &errOut, func(string) string { return "" })
		cmd.SetArgs(append([]string{"serve", "--data-dir", dir, "--http-addr", addr, "--log-format", "json"}, temporalAddrs...))
		done <- cmd.ExecuteContext(ctx)
	}()
	waitServing(t, done, &errOut, func() bool {
		r, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})

	raw, err := os.ReadFile(filepath.Join(dir, iam.CredentialsFile))
	require.NoError(t, err)
	var c iam.Credentials
	require.NoError(t, json.Unmarshal(raw, &c))

	// curl-style token call works against the running server.
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","password":"` + c.Password +
		`","domain":{"name":"` + c.DomainName + `"}}}}}}`
	r, err := http.Post("http://"+addr+"/v3/auth/tokens", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusCreated, r.StatusCode)
	tok := r.Header.Get("X-Subject-Token")
	req, _ := http.NewRequest("GET", "http://"+addr+"/v3/migprojects", nil)
	req.Header.Set("X-Auth-Token", tok)
	r, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusOK, r.StatusCode)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	logs := errOut.String()
	assert.Contains(t, logs, iam.CredentialsFile)
	for _, s := range []string{c.Password, c.SK, tok} {
		assert.NotContains(t, logs, s, "a secret leaked into the logs")
	}

	// Restart on the same data dir: no second bootstrap, same credentials work.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	var errOut2 testutil.Buffer
	go func() {
		cmd := newRootCmd(&testutil.Buffer{}, &errOut2, func(string) string { return "" })
		cmd.SetArgs(append([]string{"serve", "--data-dir", dir, "--http-addr", addr}, temporalAddrs...))
		done <- cmd.ExecuteContext(ctx2)
	}()
	waitServing(t, done, &errOut2, func() bool {
		r, err := http.Post("http://"+addr+"/v3/auth/tokens", "application/json", strings.NewReader(body))
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusCreated
	})
	raw2, err := os.ReadFile(filepath.Join(dir, iam.CredentialsFile))
	require.NoError(t, err)
	assert.Equal(t, raw, raw2)
	cancel2()
	require.NoError(t, <-done)
}

// waitServing waits until ready says the server answers, failing at once,
// with its log, if serve returns first; the deadline is for a loaded CI
// machine building race binaries beside it (a start there took over 20 s).
func waitServing(t *testing.T, done <-chan error, log *testutil.Buffer, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !ready() {
		select {
		case err := <-done:
			t.Fatalf("serve returned before it answered: %v\n%s", err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer within 90 s:\n%s", log.String())
		}
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	_, _, err := run(t, context.Background(), map[string]string{"SMSFLOW_LOG_LEVEL": "chatty"}, "serve", "--http-addr", "nope")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--http-addr")
	assert.Contains(t, err.Error(), "SMSFLOW_LOG_LEVEL")
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8233": true, "localhost:8233": true, "[::1]:8233": true, "127.9.9.9:1": true,
		"0.0.0.0:8233": false, ":8233": false, "[::]:8233": false, "10.0.0.5:8233": false, "example.com:80": false,
		"nonsense": false,
	} {
		assert.Equal(t, want, isLoopback(addr), addr)
	}
	assert.Equal(t, "127.0.0.1:8233", dialable("0.0.0.0:8233"))
	assert.Equal(t, "127.0.0.1:8233", dialable(":8233"))
	assert.Equal(t, "10.0.0.5:8233", dialable("10.0.0.5:8233"))
}

// TestServeTemporalUIProxy: with --temporal-ui-proxy the real embedded UI
// loads at /temporal/ for the administrator, is refused to anyone else, and
// a UI listening beyond loopback is warned about; serve --help says who can
// reach the UI.
func TestServeTemporalUIProxy(t *testing.T) {
	help, _, err := run(t, context.Background(), nil, "serve", "--help")
	require.NoError(t, err)
	assert.Contains(t, help, "no sign-in")
	assert.Contains(t, help, "--temporal-ui-proxy")

	dir := t.TempDir()
	addr := freeAddr(t)
	_, uiPort, err := net.SplitHostPort(freeAddr(t))
	require.NoError(t, err)
	front := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var errOut testutil.Buffer
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd(&testutil.Buffer{}, &errOut, func(string) string { return "" })
		cmd.SetArgs([]string{"serve", "--data-dir", dir, "--http-addr", addr, "--temporal-embedded-addr", front,
			"--temporal-ui-addr", "0.0.0.0:" + uiPort, "--temporal-ui-proxy=true"})
		done <- cmd.ExecuteContext(ctx)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	waitServing(t, done, &errOut, func() bool {
		r, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
	assert.Contains(t, errOut.String(), "THE TEMPORAL UI IS REACHABLE BEYOND THIS HOST")

	raw, err := os.ReadFile(filepath.Join(dir, iam.CredentialsFile))
	require.NoError(t, err)
	var c iam.Credentials
	require.NoError(t, json.Unmarshal(raw, &c))

	get := func(user, pw string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/temporal/", nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		r, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	status, body := get("", "")
	assert.Equal(t, http.StatusUnauthorized, status, body)
	assert.Contains(t, body, `"error_code"`)
	status, body = get("admin", "wrong-password")
	assert.Equal(t, http.StatusUnauthorized, status, body)
	// The UI may take a moment after the API: ask until it answers.
	require.Eventually(t, func() bool {
		status, body = get("smsflow/admin", c.Password)
		return status == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "last answer %d %.200s", status, body)
	assert.Contains(t, strings.ToLower(body), "<html")
	assert.Contains(t, body, "/temporal/", "the page refers to its assets under the public path")
}

func TestUILinkBase(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		proxy bool
		want  string
	}{
		{"", false, ""},
		{"", true, ""},
		{"127.0.0.1:8233", false, "http://127.0.0.1:8233"},
		// Behind the proxy the run links stay on the API's listener.
		{"127.0.0.1:8233", true, "/temporal"},
	} {
		assert.Equal(t, tc.want, uiLinkBase(config.Config{TemporalUIAddr: tc.addr, TemporalUIProxy: tc.proxy}), tc)
	}
}
