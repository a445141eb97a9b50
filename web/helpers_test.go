package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/dispatch"
	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/provider/local"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/web"
)

// env is a running API on a fresh database with a bootstrapped admin tenant
// and a second tenant, for isolation tests.
type env struct {
	t       testing.TB
	queue   *dispatch.Dispatcher
	api     *web.Server
	handler http.Handler
	srv     *httptest.Server
	store   *store.Store
	iam     *iam.Service
	box     *secret.Box // seals the tenant secrets the API hands out
	creds   iam.Credentials
	token   string // admin token of the first tenant
	other   string // token of a user of another domain
	// otherDomain is the other domain's id.
	otherDomain string
	// targets is the local provider the API checks existing servers with.
	targets *local.Provider
}

func newEnv(t *testing.T, s *store.Store) *env { return newEnvTB(t, s) }

func newEnvTB(t testing.TB, s *store.Store) *env { return newEnvWith(t, s, envOptions{}) }

// envOptions are the optional collaborators of a test API: a task engine
// (nil: none, as newEnv has) with its options, a logger for the API and iam
// (nil: discard), and the body and sign-in limits (zero: the defaults).
type envOptions struct {
	engine      web.TaskEngine
	taskOptions web.TaskOptions
	logger      *slog.Logger
	// now and agentTimeout replace the clock and the 90 s agent timeout.
	now          func() time.Time
	agentTimeout time.Duration
	body         web.BodyOptions
	login        iam.LoginThrottle
	uiBackend    *url.URL // a Temporal UI to mount at /temporal/
	waves        web.WaveEngine
	capacity     web.CapacityChecker
}

// newEnvWithEngine is newEnv with a task engine wired in.
func newEnvWithEngine(t testing.TB, s *store.Store, eng web.TaskEngine, opts web.TaskOptions) *env {
	return newEnvWith(t, s, envOptions{engine: eng, taskOptions: opts})
}

func newEnvWith(t testing.TB, s *store.Store, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	box, err := secret.NewBox(bytes.Repeat([]byte{7}, secret.KeySize))
	require.NoError(t, err)
	svc := iam.New(s, box, iam.Options{CacheTTL: 30 * time.Second, Logger: o.logger, Login: o.login})
	dir := t.TempDir()
	path, err := svc.Bootstrap(ctx, dir, func(string) string { return "" })
	require.NoError(t, err)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var creds iam.Credentials
	require.NoError(t, json.Unmarshal(raw, &creds))

	queue := dispatch.New(s, dispatch.Options{Redeliver: time.Minute, PollInterval: 20 * time.Millisecond})
	qctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go queue.Run(qctx)
	if o.agentTimeout == 0 {
		o.agentTimeout = 90 * time.Second
	}
	targets, err := local.New(t.TempDir())
	require.NoError(t, err)
	api := web.New(web.Deps{Store: s, IAM: svc, Box: box, Queue: queue, AgentTimeout: o.agentTimeout,
		Engine: o.engine, TaskOptions: o.taskOptions, Logger: o.logger, Now: o.now, Targets: targets, Body: o.body,
		Waves: o.waves, Capacity: o.capacity})
	if o.uiBackend != nil {
		api.MountTemporalUI(o.uiBackend)
	}
	h := api.Handler()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{t: t, queue: queue, api: api, handler: h, srv: srv, store: s, iam: svc, box: box, creds: creds, targets: targets}
	e.token = e.login(creds.DomainName, creds.User, creds.Password)

	od, err := svc.CreateDomain(ctx, "other")
	require.NoError(t, err)
	e.otherDomain = od.ID
	_, err = svc.CreateProject(ctx, "other", "p", "")
	require.NoError(t, err)
	_, pw, err := svc.CreateUser(ctx, "other", "bob", "")
	require.NoError(t, err)
	e.other = e.login("other", "bob", pw)
	return e
}

func (e *env) login(domain, user, password string) string {
	e.t.Helper()
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":` + q(user) +
		`,"password":` + q(password) + `,"domain":{"name":` + q(domain) + `}}}},"scope":{"domain":{"name":` + q(domain) + `}}}}`
	resp := e.do("POST", "/v3/auth/tokens", body, "")
	require.Equal(e.t, http.StatusCreated, resp.status, resp.body)
	tok := resp.header.Get("X-Subject-Token")
	require.NotEmpty(e.t, tok)
	return tok
}

func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

type response struct {
	status int
	header http.Header
	body   string
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &m), r.body)
	return m
}

// smsError decodes and checks the spec's error body.
func (r response) smsError(t *testing.T) (code string, params []string) {
	t.Helper()
	var b struct {
		Code    string   `json:"error_code"`
		Msg     string   `json:"error_msg"`
		Params  []string `json:"error_param"`
		Details []struct {
			Code string `json:"error_code"`
			Msg  string `json:"error_msg"`
		} `json:"details"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &b), r.body)
	require.NotEmpty(t, b.Code, r.body)
	require.NotEmpty(t, b.Msg, r.body)
	require.NotEmpty(t, r.header.Get("X-Request-Id"))
	return b.Code, b.Params
}

func (e *env) do(method, path, body, token string) response {
	return e.doH(method, path, body, map[string]string{"X-Auth-Token": token})
}

func (e *env) doH(method, path, body string, headers map[string]string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		switch {
		case v == "":
		case k == "Host": // the client sends req.Host, not a Host header
			req.Host = v
		default:
			req.Header.Set(k, v)
		}
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// each runs fn on every database of the suite.
func each(t *testing.T, fn func(t *testing.T, e *env)) {
	testdb.Each(t, func(t *testing.T, s *store.Store) { fn(t, newEnv(t, s)) })
}
