package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// browser is a console client: a cookie jar, no redirects followed, the
// CSRF token read from the last page.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
	csrf string
}

func newBrowser(t testing.TB, e *env) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, base: e.srv.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

func (b *browser) get(path string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	require.NoError(b.t, err)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	return b.send(req)
}

func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.send(req)
}

func (b *browser) send(req *http.Request) response {
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	if m := csrfMeta.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

var loginCSRF = regexp.MustCompile(`<input type="hidden" name="csrf" value="([^"]+)">`)

// login opens the sign-in page, as a browser does first, and posts form
// with that page's CSRF token.
func (b *browser) login(form url.Values) response {
	b.t.Helper()
	page := b.get("/console/login")
	require.Equal(b.t, http.StatusOK, page.status)
	m := loginCSRF.FindStringSubmatch(page.body)
	require.NotNil(b.t, m, page.body)
	form.Set("csrf", m[1])
	return b.post("/console/login", form)
}

// sessionCookie is the console session cookie an answer sets ("" if none).
func (r response) sessionCookie() string {
	for _, ck := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(ck, "smsflow_console=") {
			return ck
		}
	}
	return ""
}

// signIn signs in through the form and opens the dashboard.
func (b *browser) signIn(domain, user, password string) {
	b.t.Helper()
	r := b.login(url.Values{"domain": {domain}, "user": {user}, "password": {password}, "next": {"/console/"}})
	require.Equal(b.t, http.StatusSeeOther, r.status, r.body)
	r = b.get("/console/")
	require.Equal(b.t, http.StatusOK, r.status, r.body)
	require.NotEmpty(b.t, b.csrf)
}

// otherUser creates a user in the env's other domain and returns its password.
func otherUser(t *testing.T, e *env) string {
	_, pw, err := e.iam.CreateUser(context.Background(), "other", "carol", "")
	require.NoError(t, err)
	return pw
}

func projectForm(b *browser, name string) url.Values {
	return url.Values{"csrf": {b.csrf}, "name": {name}, "region": {"local"}, "type": {"MIGRATE_BLOCK"},
		"speed_limit": {"0"}, "enterprise_project": {"default"}, "form_id": {"f-" + name}}
}

func TestConsoleRootAnswersBrowsersAndSDKs(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		b := newBrowser(t, e)
		for _, tc := range []struct {
			accept string
			html   bool
		}{
			{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
			{"application/json", false},
			{"", false},
			{"application/json, text/html", false},
			{"*/*", false},
		} {
			req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/", nil)
			require.NoError(t, err)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			r := b.send(req)
			if tc.html {
				assert.Equal(t, http.StatusFound, r.status, tc.accept)
				assert.Equal(t, "/console/", r.header.Get("Location"))
			} else {
				assert.Equal(t, http.StatusOK, r.status, tc.accept)
				assert.Contains(t, r.body, `"versions"`, tc.accept)
			}
		}
	})
}

func TestConsoleSignInAndReturn(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		b := newBrowser(t, e)
		r := b.get("/console/projects?x=1")
		require.Equal(t, http.StatusSeeOther, r.status)
		loc := r.header.Get("Location")
		assert.Equal(t, "/console/login?next="+url.QueryEscape("/console/projects?x=1"), loc)

		r = b.get(loc)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, `name="next" value="/console/projects?x=1"`)

		r = b.login(url.Values{"domain": {e.creds.DomainName}, "user": {e.creds.User},
			"password": {"wrong"}, "next": {"/console/projects?x=1"}})
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Contains(t, r.body, "Wrong domain, user name or password")
		assert.Empty(t, r.sessionCookie())

		r = b.login(url.Values{"domain": {e.creds.DomainName}, "user": {e.creds.User},
			"password": {e.creds.Password}, "next": {"/console/projects?x=1"}})
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		assert.Equal(t, "/console/projects?x=1", r.header.Get("Location"))
		ck := r.sessionCookie()
		assert.Contains(t, ck, "HttpOnly")
		assert.Contains(t, ck, "SameSite=Lax")
		assert.NotContains(t, ck, "Secure", "plain HTTP: no Secure flag")
		assert.NotContains(t, ck, e.token[:16], "the token is sealed, not in clear")

		r = b.get("/console/projects")
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, e.creds.DomainName)

		// Logout ends the session.
		r = b.post("/console/logout", url.Values{"csrf": {b.csrf}})
		assert.Equal(t, http.StatusSeeOther, r.status)
		assert.Equal(t, http.StatusSeeOther, b.get("/console/").status)
	})
}

func TestConsoleOpenRedirectRefused(t *testing.T) {
	e := newEnv(t, testdb.Open(t, store.SQLite))
	b := newBrowser(t, e)
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/v3/tasks", "/console\\..\\x"} {
		r := b.login(url.Values{"domain": {e.creds.DomainName}, "user": {e.creds.User},
			"password": {e.creds.Password}, "next": {next}})
		require.Equal(t, http.StatusSeeOther, r.status)
		assert.Equal(t, "/console/", r.header.Get("Location"), next)
	}
}

func TestConsoleIdleExpiry(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	e := newEnvWith(t, testdb.Open(t, store.SQLite), envOptions{now: now})
	b := newBrowser(t, e)
	b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
	// Activity keeps the session: 20 minutes, a page, 20 more minutes.
	clock.Add(int64(20 * time.Minute))
	require.Equal(t, http.StatusOK, b.get("/console/tasks").status)
	clock.Add(int64(20 * time.Minute))
	require.Equal(t, http.StatusOK, b.get("/console/tasks").status)
	// Polled fragments are not activity: a page left open does not keep
	// the session.
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/console/tasks", nil)
	require.NoError(t, err)
	req.Header.Set("HX-Request", "true")
	clock.Add(int64(20 * time.Minute))
	require.Equal(t, http.StatusOK, b.send(req).status)
	// 31 idle minutes end it; the sign-in page brings the operator back.
	clock.Add(int64(11 * time.Minute))
	r := b.get("/console/sources?state=error")
	require.Equal(t, http.StatusSeeOther, r.status)
	assert.Equal(t, "/console/login?next="+url.QueryEscape("/console/sources?state=error"), r.header.Get("Location"))
}

func TestConsoleCSRF(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		for _, tok := range []string{"", "forged"} {
			f := projectForm(b, "nocsrf")
			f.Set("csrf", tok)
			r := b.post("/console/projects", f)
			assert.Equal(t, http.StatusForbidden, r.status, tok)
			assert.Contains(t, r.body, "CSRF")
			assert.Regexp(t, `Request id: <code class="reqid">[0-9a-f]{32}</code>`, r.body)
		}
		r := e.do("GET", "/v3/migprojects", "", e.token)
		assert.NotContains(t, r.body, "nocsrf")
		// The header htmx sends is accepted like the field.
		f := projectForm(b, "viaheader")
		f.Del("csrf")
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/console/projects", strings.NewReader(f.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-CSRF-Token", b.csrf)
		assert.Equal(t, http.StatusSeeOther, b.send(req).status)
	})
}

func TestConsoleProjectForms(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		for _, tc := range []struct {
			field, value, code string
		}{
			{"name", "", "SMS.6013"},
			{"name", "x", "SMS.9001"},
			{"speed_limit", "abc", "SMS.9001"},
			{"speed_limit", "20000", "SMS.9001"},
			{"type", "MIGRATE_TAPE", "SMS.9001"},
		} {
			f := projectForm(b, "valid-"+tc.field)
			f.Set(tc.field, tc.value)
			r := b.post("/console/projects", f)
			require.Equal(t, http.StatusOK, r.status, tc) // the form again, as a browser shows it
			// The message sits in the field's block, with the API's code.
			re := regexp.MustCompile(`(?s)<div class="field invalid">\s*<label for="` + tc.field + `">.*?<p class="ferr"[^>]*>([^<]*)</p>`)
			m := re.FindStringSubmatch(r.body)
			require.NotNil(t, m, "no error next to %s: %s", tc.field, r.body)
			assert.Contains(t, m[1], tc.code, tc)
		}
		// The API agrees on a code.
		r := e.do("POST", "/v3/migprojects", `{"name":"x","region":"r","type":"MIGRATE_BLOCK"}`, e.token)
		code, _ := r.smsError(t)
		assert.Equal(t, "SMS.9001", code)

		// Create, twice with the same form: one project.
		f := projectForm(b, "wave-one")
		r = b.post("/console/projects", f)
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		r2 := b.post("/console/projects", f)
		require.Equal(t, http.StatusSeeOther, r2.status, r2.body)
		assert.Equal(t, r.header.Get("Location"), r2.header.Get("Location"))
		list := e.do("GET", "/v3/migprojects", "", e.token).body
		assert.Equal(t, 1, strings.Count(list, `"wave-one"`), list)
		id := strings.TrimPrefix(r.header.Get("Location"), "/console/projects?created=")
		require.NotEmpty(t, id)

		// Edit then delete through the forms.
		r = b.get("/console/projects/" + id)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, `value="wave-one"`)
		f = projectForm(b, "wave-two")
		f.Set("speed_limit", "300")
		r = b.post("/console/projects/"+id, f)
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		show := e.do("GET", "/v3/migprojects/"+id, "", e.token).json(t)
		assert.Equal(t, "wave-two", show["name"])
		assert.EqualValues(t, 300, show["speed_limit"])
		// The first project is the default: the store refuses to delete
		// it and the page says why, with the code.
		r = b.post("/console/projects/"+id+"/delete", url.Values{"csrf": {b.csrf}})
		require.Equal(t, http.StatusConflict, r.status, r.body)
		assert.Contains(t, r.body, "SMS.7303")
		r = b.post("/console/projects", projectForm(b, "wave-three"))
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		id3 := strings.TrimPrefix(r.header.Get("Location"), "/console/projects?created=")
		r = b.post("/console/projects/"+id3+"/delete", url.Values{"csrf": {b.csrf}})
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		assert.Equal(t, http.StatusNotFound, e.do("GET", "/v3/migprojects/"+id3, "", e.token).status)
	})
}

func TestConsoleTenancy(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		admin := newBrowser(t, e)
		admin.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		r := admin.post("/console/projects", projectForm(admin, "mine"))
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		pid := strings.TrimPrefix(r.header.Get("Location"), "/console/projects?created=")
		sid := register(t, e, e.token, linuxSource("srv-a", "52:54:00:00:00:01"))
		require.Equal(t, http.StatusOK, admin.get("/console/sources/"+sid).status)
		assert.Contains(t, admin.get("/console/sources").body, "srv-a")

		other := newBrowser(t, e)
		other.signIn("other", "carol", otherUser(t, e))
		for _, path := range []string{"/console/projects/" + pid, "/console/sources/" + sid} {
			r := other.get(path)
			assert.Equal(t, http.StatusNotFound, r.status, path)
			assert.Contains(t, r.body, "Request id:")
		}
		f := projectForm(other, "stolen")
		r = other.post("/console/projects/"+pid, f)
		assert.Equal(t, http.StatusNotFound, r.status)
		r = other.post("/console/projects/"+pid+"/delete", url.Values{"csrf": {other.csrf}})
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, "mine", e.do("GET", "/v3/migprojects/"+pid, "", e.token).json(t)["name"])
		assert.NotContains(t, other.get("/console/sources").body, "srv-a")
		assert.NotContains(t, other.get("/console/projects").body, "mine")
		// A session's CSRF token is its own: the admin's does not pass for carol.
		f.Set("csrf", admin.csrf)
		assert.Equal(t, http.StatusForbidden, other.post("/console/projects", f).status)
	})
}

func TestConsoleAssetsAndNotFound(t *testing.T) {
	e := newEnv(t, testdb.Open(t, store.SQLite))
	b := newBrowser(t, e)
	r := b.get("/console/login")
	require.Equal(t, http.StatusOK, r.status)
	m := regexp.MustCompile(`href="(/console/assets/style\.[0-9a-f]{12}\.css)"`).FindStringSubmatch(r.body)
	require.NotNil(t, m, r.body)
	a := b.get(m[1])
	assert.Equal(t, http.StatusOK, a.status)
	assert.Equal(t, "public, max-age=31536000, immutable", a.header.Get("Cache-Control"))
	assert.Contains(t, a.header.Get("Content-Type"), "text/css")
	js := regexp.MustCompile(`src="(/console/assets/htmx\.min\.[0-9a-f]{12}\.js)"`).FindStringSubmatch(r.body)
	require.NotNil(t, js)
	assert.Equal(t, http.StatusOK, b.get(js[1]).status)
	assert.Equal(t, http.StatusNotFound, b.get("/console/assets/style.css").status)
	nf := b.get("/console/nowhere")
	assert.Equal(t, http.StatusNotFound, nf.status)
	assert.Contains(t, nf.header.Get("Content-Type"), "text/html")
	assert.Contains(t, nf.body, nf.header.Get("X-Request-Id"))
}

func TestConsoleTaskLiveFragment(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		tid, _ := newSourceTask(t, e, "db-01")
		setTask(t, e, tid, map[string]any{"state": "RUNNING", "replicatesize": int64(3 << 30), "totalsize": int64(12 << 30),
			"migrate_speed": 412.5, "remain_seconds": int64(95)})
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		r := b.get("/console/tasks/" + tid)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, `hx-get="/console/tasks/`+tid+`/live" hx-trigger="every 2s"`)
		assert.Contains(t, b.get("/console/tasks").body, `/console/tasks/`+tid)

		live := b.get("/console/tasks/" + tid + "/live")
		require.Equal(t, http.StatusOK, live.status)
		assert.Contains(t, live.body, `value="25"`)
		assert.Contains(t, live.body, "3.0 GiB of 12.0 GiB")
		assert.Contains(t, live.body, "412.5 Mbit/s")
		assert.Contains(t, live.body, "1m35s")
		assert.NotContains(t, live.body, "<html", "a fragment, not a page")
		assert.Contains(t, live.body, "No speed samples yet")

		// Progress reports leave samples; the chart draws them, the limit
		// in force dashed, and stays small at its point bound.
		ten := store.Tenant{DomainID: taskRow(t, e, tid).DomainID}
		for i := range int64(300) {
			require.NoError(t, e.store.UpdateTaskProgress(context.Background(), ten, tid, func(tk *store.Task) error {
				tk.LastProgressAt, tk.MigrateSpeed, tk.CurrentLimit = 1_800_000_000_000+i*10_000, float64(300+i%50), 400
				return nil
			}))
		}
		live = b.get("/console/tasks/" + tid + "/live")
		speed := regexp.MustCompile(`<polyline class="speed" points="([^"]*)"`).FindStringSubmatch(live.body)
		require.NotNil(t, speed, live.body)
		assert.Len(t, strings.Fields(speed[1]), 120, "thinned to the chart's bound")
		assert.Contains(t, live.body, `<polyline class="limit" points="44,12 640,12"/>`, "a constant limit is one segment")
		assert.Contains(t, live.body, "49m50s ago")
		assert.Less(t, len(live.body), 5<<10, "with its chart, a live tick stays under 5 KB")
		assert.Less(t, len(live.body), 5<<10, "a live tick stays under 5 KB")

		other := newBrowser(t, e)
		other.signIn("other", "carol", otherUser(t, e))
		assert.Equal(t, http.StatusNotFound, other.get("/console/tasks/"+tid).status)
		assert.Equal(t, http.StatusNotFound, other.get("/console/tasks/"+tid+"/live").status)
		assert.NotContains(t, other.get("/console/tasks").body, "db-01")
	})
}

func TestConsoleSourcesEmptyStateAndPaging(t *testing.T) {
	e := newEnv(t, testdb.Open(t, store.SQLite))
	b := newBrowser(t, e)
	b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
	r := b.get("/console/sources")
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, r.body, "No sources yet")
	assert.Contains(t, r.body, "sms-agent run --server "+e.srv.URL)
	assert.Regexp(t, `--project [0-9a-f]{32}`, r.body)

	for i := range 55 {
		register(t, e, e.token, linuxSource(fmt.Sprintf("host-%02d", i), nextMAC()))
	}
	r = b.get("/console/sources")
	assert.Contains(t, r.body, "Page 1 of 2 · 55 source(s)")
	assert.Contains(t, r.body, `href="/console/sources?page=2"`)
	r = b.get("/console/sources?page=2")
	assert.Equal(t, 5, strings.Count(r.body, `<a href="/console/sources/`))
	r = b.get("/console/sources?name=host-07")
	assert.Contains(t, r.body, "1 source(s)")
	r = b.get("/console/sources?state=error")
	assert.Contains(t, r.body, "No source matches these filters.")
}

// TestTemporalUIConsoleSession: an administrator's console session opens
// the proxied Temporal UI (the dashboard links it), another domain's does
// not, and the UI never sees the console's cookie.
func TestTemporalUIConsoleSession(t *testing.T) {
	var mu sync.Mutex
	var cookies string
	ui := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cookies = r.Header.Get("Cookie")
		mu.Unlock()
		_, _ = io.WriteString(w, "temporal ui at "+r.URL.Path)
	}))
	t.Cleanup(ui.Close)
	backend, err := url.Parse(ui.URL)
	require.NoError(t, err)
	e := newEnvWith(t, testdb.Open(t, store.SQLite), envOptions{uiBackend: backend})

	admin := newBrowser(t, e)
	admin.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
	assert.Contains(t, admin.get("/console/").body, `href="/temporal/"`)
	r := admin.get("/temporal/namespaces")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "temporal ui at /temporal/namespaces", r.body)
	mu.Lock()
	assert.NotContains(t, cookies, "smsflow_console")
	mu.Unlock()

	other := newBrowser(t, e)
	other.signIn("other", "carol", otherUser(t, e))
	assert.Equal(t, http.StatusUnauthorized, other.get("/temporal/namespaces").status)
	// Signed out, the admin's browser is refused too.
	admin.post("/console/logout", url.Values{"csrf": {admin.csrf}})
	assert.Equal(t, http.StatusUnauthorized, admin.get("/temporal/namespaces").status)
}

func TestConsoleTaskActions(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		tid, _ := newSourceTask(t, e, "app-01")
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		r := b.get("/console/tasks/" + tid)
		require.Equal(t, http.StatusOK, r.status)
		// READY: start is offered, stop is disabled with the run's reason.
		assert.Contains(t, r.body, `<button type="submit" name="operation" value="start">Start</button>`)
		assert.Regexp(t, `<button type="submit" name="operation" value="stop" data-confirm="Stop this migration\?[^"]*" disabled>Stop</button>`, r.body)
		assert.Regexp(t, `<li><strong>Stop</strong> is unavailable: SMS.7714: [^<]*\(task is READY\)</li>`, r.body)

		for _, bad := range []url.Values{{"operation": {"start"}}, {"operation": {"start"}, "csrf": {"nope"}}} {
			assert.Equal(t, http.StatusForbidden, b.post("/console/tasks/"+tid+"/action", bad).status)
		}
		assert.Empty(t, eng.calls().actions, "no action without the CSRF token")

		r = b.post("/console/tasks/"+tid+"/action", url.Values{"operation": {"start"}, "csrf": {b.csrf}})
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		assert.Equal(t, "/console/tasks/"+tid, r.header.Get("Location"))
		calls := eng.calls().actions
		require.Len(t, calls, 1)
		assert.Equal(t, tid, calls[0].TaskID)
		assert.EqualValues(t, "start", calls[0].Req.Operation)

		// The run refuses stop on a READY task: the page says why, with the code.
		r = b.post("/console/tasks/"+tid+"/action", url.Values{"operation": {"stop"}, "csrf": {b.csrf}})
		assert.GreaterOrEqual(t, r.status, 400)
		assert.Less(t, r.status, 500)
		assert.Contains(t, r.body, "SMS.7714")
		r = b.post("/console/tasks/"+tid+"/action", url.Values{"operation": {"explode"}, "csrf": {b.csrf}})
		assert.Equal(t, http.StatusBadRequest, r.status)

		other := newBrowser(t, e)
		other.signIn("other", "carol", otherUser(t, e))
		r = other.post("/console/tasks/"+tid+"/action", url.Values{"operation": {"start"}, "csrf": {other.csrf}})
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Len(t, eng.calls().actions, 2, "another domain's click reaches no run")
	})
}

// BenchmarkConsoleSources: the sources page over 10,000 realistic sources
// (first page, a far page, filtered), server time p50/p99 per page.
func BenchmarkConsoleSources(b *testing.B) {
	for _, d := range testdb.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			e := newEnvTB(b, testdb.Open(b, d))
			seedSources(b, e, 10000)
			br := newBrowser(b, e)
			r := br.login(url.Values{"domain": {e.creds.DomainName}, "user": {e.creds.User},
				"password": {e.creds.Password}})
			require.Equal(b, http.StatusSeeOther, r.status)
			u, err := url.Parse(e.srv.URL)
			require.NoError(b, err)
			cookie := br.c.Jar.Cookies(u)[0]
			for _, path := range []string{"/console/sources", "/console/sources?page=150", "/console/sources?state=replicate&connected=yes"} {
				b.Run(strings.TrimPrefix(path, "/console/sources"), func(b *testing.B) {
					lat := make([]time.Duration, 0, b.N)
					for b.Loop() {
						req := httptest.NewRequest("GET", path, nil)
						req.AddCookie(cookie)
						w := httptest.NewRecorder()
						start := time.Now()
						e.handler.ServeHTTP(w, req)
						lat = append(lat, time.Since(start))
						if w.Code != http.StatusOK {
							b.Fatalf("%s: %d", path, w.Code)
						}
					}
					p50, p99 := percentiles(lat)
					b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
				})
			}
		})
	}
}

func TestConsoleTemplateForms(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		form := func(id string) url.Values {
			return url.Values{"csrf": {b.csrf}, "form_id": {id}, "name": {"web-tier"}, "region": {"local"},
				"projectid": {"p-1"}, "volumetype": {"SSD"}, "flavor": {"s6.large"}, "target_password": {"S3cret-pw!"}}
		}
		f := form("t1")
		f.Set("volumetype", "TAPE")
		r := b.post("/console/templates", f)
		require.Equal(t, http.StatusOK, r.status)
		m := regexp.MustCompile(`(?s)<div class="field invalid">\s*<label for="volumetype">.*?<p class="ferr"[^>]*>([^<]*)</p>`).FindStringSubmatch(r.body)
		require.NotNil(t, m, r.body)
		assert.Contains(t, m[1], "SMS.9001")
		assert.NotContains(t, r.body, "S3cret-pw!", "the password is write-only")
		f = form("t2")
		f.Del("name")
		r = b.post("/console/templates", f)
		assert.Regexp(t, `(?s)<label for="name">.*?<p class="ferr"[^>]*>SMS.6013`, r.body)

		// Created once, however often the form is sent.
		f = form("t3")
		require.Equal(t, http.StatusSeeOther, b.post("/console/templates", f).status)
		require.Equal(t, http.StatusSeeOther, b.post("/console/templates", f).status)
		list := e.do("GET", "/v3/vm/templates", "", e.token).json(t)
		tpls := list["templates"].([]any)
		require.Len(t, tpls, 1)
		id := tpls[0].(map[string]any)["id"].(string)
		page := b.get("/console/templates").body
		assert.Contains(t, page, "web-tier")
		assert.NotContains(t, page, "S3cret-pw!")
		pw := e.do("GET", "/v3/vm/templates/"+id+"/target-password", "", e.token).body
		assert.Contains(t, pw, "S3cret-pw!", "sealed by the API's box, readable through the API")

		other := newBrowser(t, e)
		other.signIn("other", "carol", otherUser(t, e))
		assert.NotContains(t, other.get("/console/templates").body, "web-tier")
		assert.Equal(t, http.StatusNotFound, other.post("/console/templates/"+id+"/delete", url.Values{"csrf": {other.csrf}}).status)
		assert.Equal(t, http.StatusSeeOther, b.post("/console/templates/"+id+"/delete", url.Values{"csrf": {b.csrf}}).status)
		assert.Equal(t, http.StatusNotFound, e.do("GET", "/v3/vm/templates/"+id, "", e.token).status)
	})
}
