package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/signer"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/web"
)

// caller is one credential of the role tests: a token or an AK/SK.
type caller struct {
	name  string
	role  iam.Role
	token string
	ak    string
	sk    string
}

// call sends a request as c: with its token, or signed with its AK/SK as
// the SDK and the agent sign.
func (e *env) call(c caller, method, path, body string) response {
	e.t.Helper()
	if c.token != "" {
		return e.do(method, path, body, c.token)
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	require.NoError(e.t, signer.Sign(req, []byte(body), c.ak, c.sk, time.Now()))
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// newUser makes a user of the first tenant with role r and signs it in.
func newUser(t *testing.T, e *env, name string, r iam.Role) caller {
	t.Helper()
	_, pw, err := e.iam.CreateUserRole(context.Background(), iam.BootstrapDomain, name, "", r)
	require.NoError(t, err)
	return caller{name: name + " token", role: r, token: e.login(iam.BootstrapDomain, name, pw)}
}

// newKey issues an AK/SK of role r to user (of the first tenant).
func newKey(t *testing.T, e *env, user string, r iam.Role) caller {
	t.Helper()
	k, err := e.iam.CreateAccessKeyRole(context.Background(), iam.BootstrapDomain, user, "test", r)
	require.NoError(t, err)
	require.Equal(t, r, k.Role)
	return caller{name: user + " key " + string(r), role: r, ak: k.AK, sk: k.SK}
}

// newAgent makes an agent user and its key: what the install instructions do.
func newAgent(t *testing.T, e *env, name string) caller {
	t.Helper()
	_, _, err := e.iam.CreateUserRole(context.Background(), iam.BootstrapDomain, name, "", iam.RoleAgent)
	require.NoError(t, err)
	return newKey(t, e, name, iam.RoleAgent)
}

// refused checks the spec's 403 SMS.9004 body.
func refused(t *testing.T, r response, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, http.StatusForbidden, r.status, append(msgAndArgs, r.body)...)
	code, params := r.smsError(t)
	assert.Equal(t, "SMS.9004", code, msgAndArgs...)
	require.Len(t, params, 1, msgAndArgs...)
	assert.Contains(t, params[0], "You do not have permission to perform action", msgAndArgs...)
}

// passed checks that the authorization let the request through: whatever
// the handler made of it, it is not a refusal of the caller's role.
func passed(t *testing.T, r response, msgAndArgs ...any) {
	t.Helper()
	assert.NotEqual(t, http.StatusUnauthorized, r.status, append(msgAndArgs, r.body)...)
	if r.status == http.StatusForbidden {
		code, _ := r.smsError(t)
		assert.NotEqual(t, "SMS.9004", code, append(msgAndArgs, r.body)...)
	}
	assert.Less(t, r.status, 500, append(msgAndArgs, r.body)...)
}

// The role matrix the tests hold the router to, written out apart from the
// router's own table (authz.go): the README's "Security" section.
var (
	// agentRoutes are the agent's calls; those naming a source or a task
	// must name its own.
	agentRoutes = map[string]bool{
		"POST /v3/sources": true, "GET /v3/sources/:source_id": true,
		"GET /v3/sources/:source_id/command": true, "POST /v3/sources/:source_id/command_result": true,
		"POST /v3/privacy-agreements": true, "GET /v3/privacy-agreements": true, "GET /v3/config": true,
		"PUT /v3/tasks/:task_id/progress": true, "GET /v3/tasks/:task_id/certkey": true,
		"GET /v3/tasks/:task_id/passphrase": true, "POST /v3/tasks/:task_id/consistency-result": true,
		"PUT /v3/tasks/:task_id/agent-log": true, "POST /v3/:task_id/update-network-check-info": true,
	}
	// viewerSecrets are reads a viewer is refused: secrets, and the
	// command poll, which hands a command out.
	viewerSecrets = map[string]bool{
		"GET /v3/vm/templates/:id/target-password": true, "GET /v3/tasks/:task_id/certkey": true,
		"GET /v3/tasks/:task_id/passphrase": true, "GET /v3/sources/:source_id/command": true,
	}
	// viewerPosts are the writes' methods a viewer may use: the export,
	// which only reads.
	viewerPosts = map[string]bool{"POST /v3/tasks/consistency-results/export": true}
)

// expectAllowed is the matrix above for one role and route.
func expectAllowed(r iam.Role, route, method string) bool {
	switch r {
	case iam.RoleAdmin, iam.RoleOperator:
		return true
	case iam.RoleViewer:
		if method == http.MethodGet {
			return !viewerSecrets[route]
		}
		return viewerPosts[route]
	case iam.RoleAgent:
		return agentRoutes[route]
	}
	return false
}

// TestRouteRoles runs every role, by token and by AK/SK, against every
// route of the router (gin's own list, so a route added without a rule
// fails here), and the agent also against another source's ids.
func TestRouteRoles(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		eng := newFakeEngine(s)
		e := newEnvWithEngine(t, s, eng, taskOpts)
		ctx := context.Background()

		operator := newUser(t, e, "op", iam.RoleOperator)
		viewer := newUser(t, e, "viewer", iam.RoleViewer)
		agent := newAgent(t, e, "agent-web01")
		admin := caller{name: "admin token", role: iam.RoleAdmin, token: e.token}
		callers := []caller{admin, operator, newKey(t, e, "op", iam.RoleOperator), viewer,
			newKey(t, e, "viewer", iam.RoleViewer), newKey(t, e, "op", iam.RoleViewer), agent}

		// The agent's own source (registered with its key, which binds
		// it) and task; another source and task of the same domain.
		r := e.call(agent, "POST", "/v3/sources", linuxSource("own", nextMAC()))
		require.Equal(t, http.StatusOK, r.status, r.body)
		own := r.json(t)["id"].(string)
		ownTask := createTask(t, e, e.token, taskBody("own", own))
		otherTask, other := newSourceTask(t, e, "other")

		const missing = "no-such-id-00000000"
		fill := func(path, sourceID, taskID string) string {
			return strings.NewReplacer(":source_id", sourceID, ":task_id", taskID, ":mig_project_id", missing,
				":wave_id", missing, ":id", missing).Replace(path)
		}
		routes := e.api.Engine().Routes()
		require.Greater(t, len(routes), 60)
		var api int
		for _, rt := range routes {
			route := rt.Method + " " + rt.Path
			gate, ok := web.RouteGate(rt.Method, rt.Path)
			require.True(t, ok, "%s has no access rule (web/authz.go routeRules)", route)
			if gate != web.GateAPI {
				assert.False(t, strings.HasPrefix(rt.Path, "/v3/") && rt.Path != "/v3/auth/tokens",
					"%s is an API route outside the role rules", route)
				continue
			}
			api++
			body := ""
			if rt.Method != http.MethodGet && rt.Method != http.MethodDelete {
				body = "{}"
			}
			for _, c := range callers {
				// Everyone names the agent's own ids on agent routes;
				// other routes get ids nobody has, so that no call
				// changes what the next one sees.
				path := fill(rt.Path, missing, missing)
				if agentRoutes[route] {
					path = fill(rt.Path, own, ownTask)
				}
				if rt.Path == "/v3/sources/:source_id/command" {
					path += "?wait=0"
				}
				got := e.call(c, rt.Method, path, body)
				if expectAllowed(c.role, route, rt.Method) {
					passed(t, got, c.name+" "+route)
				} else {
					refused(t, got, c.name+" "+route)
				}
				if c.role == iam.RoleAgent && agentRoutes[route] && path != fill(rt.Path, other, otherTask) &&
					(strings.Contains(rt.Path, ":source_id") || strings.Contains(rt.Path, ":task_id")) {
					refused(t, e.call(c, rt.Method, fill(rt.Path, other, otherTask), body), "agent on another source: "+route)
				}
			}
		}
		assert.GreaterOrEqual(t, api, 60, "the API's routes were walked")

		// The agent's refused calls changed nothing: the other source
		// still has its task, its facts, no command result.
		src, err := s.Source(ctx, store.Tenant{DomainID: e.creds.DomainID, ProjectID: e.creds.ProjectID}, other)
		require.NoError(t, err)
		assert.Equal(t, "other", src.Name)
	})
}

// TestAgentKeyBoundToItsSource: the first registration binds an agent key;
// the same machine registers again, another machine, another source's id,
// another source's commands and tasks are refused with SMS.9004, nothing
// written; a key of another domain gets 404s; a deleted source frees the
// key.
func TestAgentKeyBoundToItsSource(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		eng := newFakeEngine(s)
		e := newEnvWithEngine(t, s, eng, taskOpts)
		ctx := context.Background()
		ten := store.Tenant{DomainID: e.creds.DomainID, ProjectID: e.creds.ProjectID}
		agent := newAgent(t, e, "agent-a")
		count := func() int64 {
			_, n, err := s.Sources(ctx, ten, store.SourceFilter{}, store.Page{Limit: 1})
			require.NoError(t, err)
			return n
		}

		// Not bound yet: no source's calls.
		otherTask, other := newSourceTask(t, e, "b")
		refused(t, e.call(agent, "GET", "/v3/sources/"+other+"/command", ""), "unbound key")

		mac := nextMAC()
		r := e.call(agent, "POST", "/v3/sources", linuxSource("a", mac))
		require.Equal(t, http.StatusOK, r.status, r.body)
		own := r.json(t)["id"].(string)
		keys, err := s.AccessKeys(ctx, e.creds.DomainID)
		require.NoError(t, err)
		var bound string
		for _, k := range keys {
			if k.AK == agent.ak {
				require.NotNil(t, k.SourceID)
				bound = *k.SourceID
				assert.Equal(t, "agent", k.Role)
			}
		}
		assert.Equal(t, own, bound, "the first registration binds the key")

		// The same machine again (the agent restarted): the same source.
		r = e.call(agent, "POST", "/v3/sources", linuxSource("a", mac))
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, own, r.json(t)["id"])
		// The key was cached unbound when it registered: its own calls
		// pass at once all the same.
		r = e.call(agent, "GET", "/v3/sources/"+own+"/command?wait=0", "")
		require.Equal(t, http.StatusOK, r.status, r.body)

		n := count()
		refused(t, e.call(agent, "POST", "/v3/sources", linuxSource("c", nextMAC())), "another machine")
		assert.Equal(t, n, count(), "the refused registration created nothing")
		before, err := s.Source(ctx, ten, other)
		require.NoError(t, err)
		refused(t, e.call(agent, "POST", "/v3/sources", strings.Replace(linuxSource("hijack", nextMAC()), `{"name"`, `{"id":`+q(other)+`,"name"`, 1)),
			"another source's id in the body")
		after, err := s.Source(ctx, ten, other)
		require.NoError(t, err)
		assert.Equal(t, before.Name, after.Name)
		assert.Equal(t, before.Hostname, after.Hostname, "the other source's facts are untouched")

		// A second agent key cannot take the source over (the same
		// machine's identity), until the first key is revoked.
		_, _, err = e.iam.CreateUserRole(ctx, iam.BootstrapDomain, "agent-b", "", iam.RoleAgent)
		require.NoError(t, err)
		second := newKey(t, e, "agent-b", iam.RoleAgent)
		refused(t, e.call(second, "POST", "/v3/sources", linuxSource("a", mac)), "a second key on a held source")
		refused(t, e.call(second, "GET", "/v3/sources/"+own+"/command?wait=0", ""), "a second key on a held source")

		refused(t, e.call(agent, "GET", "/v3/sources/"+other+"/command?wait=0", ""))
		refused(t, e.call(agent, "POST", "/v3/sources/"+other+"/command_result", `{"command_name":"START","result":"success"}`))
		refused(t, e.call(agent, "PUT", "/v3/tasks/"+otherTask+"/progress", `{"subtask_name":"MIGRATE_LINUX_BLOCK","progress":5,"replicatesize":1,"totalsize":10,"process_trace":"x"}`))
		refused(t, e.call(agent, "GET", "/v3/tasks/"+otherTask+"/certkey", ""))
		refused(t, e.call(agent, "GET", "/v3/tasks/"+otherTask+"/passphrase", ""))
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/v3/sources", ""},
			{"GET", "/v3/tasks", ""},
			{"GET", "/v3/tasks/" + otherTask, ""},
			{"POST", "/v3/tasks", taskBody("x", own)},
			{"GET", "/v3/vm/templates", ""},
			{"DELETE", "/v3/sources/" + own, ""},
		} {
			refused(t, e.call(agent, c.method, c.path, c.body), c.method+" "+c.path)
		}
		_, err = s.Source(ctx, ten, own)
		require.NoError(t, err, "the agent could not delete its own source")

		// Its own task's calls pass.
		ownTask := createTask(t, e, e.token, taskBody("a", own))
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/v3/tasks/" + ownTask + "/certkey", ""},
			{"PUT", "/v3/tasks/" + ownTask + "/progress", `{"subtask_name":"MIGRATE_LINUX_BLOCK","progress":5,"replicatesize":1,"totalsize":10,"process_trace":"x"}`},
		} {
			passed(t, e.call(agent, c.method, c.path, c.body), c.path)
		}

		// Tenancy first: another domain's agent gets 404 for our task, as
		// for a missing one.
		_, _, err = e.iam.CreateUserRole(ctx, "other", "agent-x", "", iam.RoleAgent)
		require.NoError(t, err)
		ok, err := e.iam.CreateAccessKeyRole(ctx, "other", "agent-x", "", iam.RoleAgent)
		require.NoError(t, err)
		foreign := caller{name: "other domain's agent", role: iam.RoleAgent, ak: ok.AK, sk: ok.SK}
		r = e.call(foreign, "GET", "/v3/tasks/"+ownTask+"/certkey", "")
		assert.Equal(t, http.StatusNotFound, r.status, r.body)

		// The first key revoked, a new key may take the machine over.
		require.NoError(t, e.iam.RevokeAccessKey(ctx, iam.BootstrapDomain, agent.ak))
		r = e.call(second, "POST", "/v3/sources", linuxSource("a", mac))
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, own, r.json(t)["id"])
		agent = second

		// The operator deletes the source (and its task): the key may
		// register its machine anew.
		r = e.do("DELETE", "/v3/tasks/"+ownTask, "", e.token)
		require.Less(t, r.status, 300, r.body)
		r = e.do("DELETE", "/v3/sources/"+own, "", e.token)
		require.Less(t, r.status, 300, r.body)
		// Not by taking over another source no key holds (one an operator
		// registered) by naming its id.
		refused(t, e.call(agent, "POST", "/v3/sources", strings.Replace(linuxSource("hijack2", nextMAC()), `{"name"`, `{"id":`+q(other)+`,"name"`, 1)),
			"a key whose source was deleted names an unheld source")
		after, err = s.Source(ctx, ten, other)
		require.NoError(t, err)
		assert.Equal(t, before.Name, after.Name, "the unheld source is untouched")
		r = e.call(agent, "POST", "/v3/sources", linuxSource("a2", nextMAC()))
		require.Equal(t, http.StatusOK, r.status, r.body)
		again := r.json(t)["id"].(string)
		assert.NotEqual(t, own, again)
		passed(t, e.call(agent, "GET", "/v3/sources/"+again+"/command?wait=0", ""))
	})
}

// TestViewerCannotWrite: a viewer reads, and every change is refused with
// SMS.9004 and leaves nothing behind; its keys are viewers too, and an
// operator's key made viewer is one.
func TestViewerCannotWrite(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		viewer := newUser(t, e, "vera", iam.RoleViewer)
		r := e.do("POST", "/v3/migprojects", `{"name":"mp1","region":"r","type":"MIGRATE_BLOCK"}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		list := func() string {
			r := e.call(viewer, "GET", "/v3/migprojects", "")
			require.Equal(t, http.StatusOK, r.status, r.body)
			return r.body
		}
		before := list()
		assert.Contains(t, before, "mp1")
		for _, c := range []caller{viewer, newKey(t, e, "vera", iam.RoleViewer)} {
			refused(t, e.call(c, "POST", "/v3/migprojects", `{"name":"mp2","region":"r","type":"MIGRATE_BLOCK"}`), c.name)
		}
		assert.Equal(t, before, list(), "nothing was created")
		assert.NotContains(t, list(), "mp2")

		// A viewer user cannot hold a broader key.
		_, err := e.iam.CreateAccessKeyRole(context.Background(), iam.BootstrapDomain, "vera", "", iam.RoleOperator)
		require.Error(t, err)
		// A user demoted to viewer drags its operator key down with it.
		_ = newUser(t, e, "otto", iam.RoleOperator)
		k := newKey(t, e, "otto", iam.RoleOperator)
		r = e.call(k, "POST", "/v3/migprojects", `{"name":"mp3","region":"r","type":"MIGRATE_BLOCK"}`)
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.NoError(t, e.iam.SetUserRole(context.Background(), iam.BootstrapDomain, "otto", iam.RoleViewer))
		refused(t, e.call(k, "POST", "/v3/migprojects", `{"name":"mp4","region":"r","type":"MIGRATE_BLOCK"}`), "demoted user's key")
		passed(t, e.call(k, "GET", "/v3/migprojects", ""))
	})
}

// TestAgentUserCannotSignIn: an agent user's right password gets 403
// SMS.9004, no token (its key is its credential); a wrong one stays 401.
func TestAgentUserCannotSignIn(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		_, pw, err := e.iam.CreateUserRole(context.Background(), iam.BootstrapDomain, "agent-1", "", iam.RoleAgent)
		require.NoError(t, err)
		body := func(pw string) string {
			return `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"agent-1","password":` + q(pw) +
				`,"domain":{"name":"smsflow"}}}}}}`
		}
		r := e.do("POST", "/v3/auth/tokens", body(pw), "")
		refused(t, r)
		assert.Empty(t, r.header.Get("X-Subject-Token"))
		r = e.do("POST", "/v3/auth/tokens", body("wrong-password"), "")
		assert.Equal(t, http.StatusUnauthorized, r.status, r.body)

		b := newBrowser(t, e)
		r = b.post("/console/login", url.Values{"domain": {"smsflow"}, "user": {"agent-1"}, "password": {pw}, "next": {"/console/"}})
		assert.NotEqual(t, http.StatusSeeOther, r.status, "no console session for an agent")
	})
}

// TestAgentRoleNeedsItsKey: a user made an agent while holding a token
// (issued when it was an operator) cannot use that token for agent calls:
// only a key binds an agent to its one source, and the token would reach
// every source of the domain.
func TestAgentRoleNeedsItsKey(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnvWithEngine(t, s, newFakeEngine(s), taskOpts)
		ctx := context.Background()
		_, pw, err := e.iam.CreateUserRole(ctx, iam.BootstrapDomain, "ops-1", "", iam.RoleOperator)
		require.NoError(t, err)
		it, err := e.iam.IssueToken(ctx, iam.PasswordAuth{DomainName: iam.BootstrapDomain, UserName: "ops-1", Password: pw})
		require.NoError(t, err)
		_, other := newSourceTask(t, e, "held")
		require.NoError(t, e.iam.SetUserRole(ctx, iam.BootstrapDomain, "ops-1", iam.RoleAgent))
		n := func() int64 {
			_, n, err := s.Sources(ctx, store.Tenant{DomainID: e.creds.DomainID}, store.SourceFilter{}, store.Page{Limit: 1})
			require.NoError(t, err)
			return n
		}
		before := n()
		refused(t, e.do("POST", "/v3/sources", linuxSource("via-token", nextMAC()), it.Token), "an agent's token registers nothing")
		refused(t, e.do("GET", "/v3/sources/"+other+"/command?wait=0", "", it.Token), "an agent's token reads no source's commands")
		assert.Equal(t, before, n(), "nothing was registered")
	})
}

// TestConsoleViewer: a viewer's console shows the pages; its forms and
// buttons answer the 403 page and change nothing.
func TestConsoleViewer(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		_, pw, err := e.iam.CreateUserRole(context.Background(), iam.BootstrapDomain, "vic", "", iam.RoleViewer)
		require.NoError(t, err)
		b := newBrowser(t, e)
		b.signIn("smsflow", "vic", pw)
		for _, p := range []string{"/console/projects", "/console/sources", "/console/tasks", "/console/templates", "/console/waves"} {
			r := b.get(p)
			assert.Equal(t, http.StatusOK, r.status, p)
		}
		r := b.post("/console/projects", projectForm(b, "viewer-made"))
		assert.Equal(t, http.StatusForbidden, r.status, r.body)
		assert.Contains(t, r.body, "viewer")
		r = b.get("/console/projects")
		assert.NotContains(t, r.body, "viewer-made")
		// Signing out is not a change.
		r = b.post("/console/logout", url.Values{"csrf": {b.csrf}})
		assert.Equal(t, http.StatusSeeOther, r.status)

		// An operator's form works (the refusal is the role's).
		_, pw, err = e.iam.CreateUserRole(context.Background(), iam.BootstrapDomain, "olga", "", iam.RoleOperator)
		require.NoError(t, err)
		o := newBrowser(t, e)
		o.signIn("smsflow", "olga", pw)
		r = o.post("/console/projects", projectForm(o, "operator-made"))
		assert.Equal(t, http.StatusSeeOther, r.status, r.body)
		assert.Contains(t, e.do("GET", "/v3/migprojects", "", e.token).body, "operator-made")
	})
}

// TestTemporalUIRoles: the Temporal UI opens to every admin of the
// bootstrap domain, not to its operators or viewers, nor to another
// domain's admins.
func TestTemporalUIRoles(t *testing.T) {
	ui := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "temporal ui")
	}))
	t.Cleanup(ui.Close)
	backend, err := url.Parse(ui.URL)
	require.NoError(t, err)
	e := newEnvWith(t, testdb.Open(t, store.SQLite), envOptions{uiBackend: backend})
	ctx := context.Background()
	_, pw, err := e.iam.CreateUserRole(ctx, "other", "root", "", iam.RoleAdmin)
	require.NoError(t, err)
	foreignAdmin := e.login("other", "root", pw)
	for _, tc := range []struct {
		name  string
		token string
		open  bool
	}{
		{"bootstrap admin", e.token, true},
		{"another admin", newUser(t, e, "ada", iam.RoleAdmin).token, true},
		{"operator", newUser(t, e, "oscar", iam.RoleOperator).token, false},
		{"viewer", newUser(t, e, "vince", iam.RoleViewer).token, false},
		{"another domain's admin", foreignAdmin, false},
	} {
		r := e.do("GET", "/temporal/namespaces/default/workflows", "", tc.token)
		if tc.open {
			assert.Equal(t, http.StatusOK, r.status, tc.name)
			assert.Equal(t, "temporal ui", r.body, tc.name)
		} else {
			assert.Equal(t, http.StatusForbidden, r.status, tc.name)
			assert.NotContains(t, r.body, "temporal ui", tc.name)
		}
	}
}
