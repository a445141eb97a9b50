package web_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/testkit/testutil"
)

// fieldError is the message next to a form field (the shared field
// partial's markup), "" when there is none.
func fieldError(body, field string) string {
	re := regexp.MustCompile(`(?s)<div class="field invalid">\s*<label for="` + regexp.QuoteMeta(field) + `">.*?<p class="ferr"[^>]*>([^<]*)</p>`)
	if m := re.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return ""
}

func TestConsoleTemplateEdit(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		r := e.do("POST", "/v3/vm/templates", `{"template":{"name":"db-tier","is_template":true,"region":"local","projectid":"p-1",
			"flavor":"s6.large","volumetype":"SSD","target_password":"Old-pw-1!"}}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		id := r.json(t)["id"].(string)
		password := func() string { return e.do("GET", "/v3/vm/templates/"+id+"/target-password", "", e.token).body }
		require.Contains(t, password(), "Old-pw-1!")

		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		assert.Contains(t, b.get("/console/templates").body, `href="/console/templates/`+id+`"`)
		page := b.get("/console/templates/" + id)
		require.Equal(t, http.StatusOK, page.status)
		assert.Contains(t, page.body, `value="db-tier"`)
		assert.Contains(t, page.body, `value="s6.large"`)
		assert.Contains(t, page.body, "one is stored; leave blank to keep it")
		assert.NotContains(t, page.body, "Old-pw-1!", "the password is write-only")

		form := func() url.Values {
			return url.Values{"csrf": {b.csrf}, "name": {"db-tier"}, "region": {"local"}, "projectid": {"p-1"},
				"flavor": {"s6.xlarge"}, "volumetype": {"SAS"}, "target_password": {""}}
		}
		// Blank password: the other fields change, the password stays.
		r = b.post("/console/templates/"+id, form())
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		show := e.do("GET", "/v3/vm/templates/"+id, "", e.token).json(t)["template"].(map[string]any)
		assert.Equal(t, "s6.xlarge", show["flavor"])
		assert.Equal(t, "SAS", show["volumetype"])
		assert.Contains(t, password(), "Old-pw-1!")
		// A typed one replaces it.
		f := form()
		f.Set("target_password", "New-pw-2!")
		require.Equal(t, http.StatusSeeOther, b.post("/console/templates/"+id, f).status)
		assert.Contains(t, password(), "New-pw-2!")

		// Validation: the API's code next to the field, the typed password not sent back.
		f = form()
		f.Set("volumetype", "TAPE")
		f.Set("target_password", "Typo-pw-3!")
		r = b.post("/console/templates/"+id, f)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, fieldError(r.body, "volumetype"), "SMS.9001")
		assert.NotContains(t, r.body, "Typo-pw-3!")
		assert.Contains(t, password(), "New-pw-2!", "a refused form changes nothing")

		// CSRF.
		f = form()
		f.Del("csrf")
		f.Set("flavor", "forged")
		assert.Equal(t, http.StatusForbidden, b.post("/console/templates/"+id, f).status)

		// Another domain: 404 both ways, nothing changed.
		other := newBrowser(t, e)
		other.signIn("other", "carol", otherUser(t, e))
		assert.Equal(t, http.StatusNotFound, other.get("/console/templates/"+id).status)
		f = form()
		f.Set("csrf", other.csrf)
		f.Set("flavor", "stolen")
		assert.Equal(t, http.StatusNotFound, other.post("/console/templates/"+id, f).status)
		assert.Equal(t, "s6.xlarge", e.do("GET", "/v3/vm/templates/"+id, "", e.token).json(t)["template"].(map[string]any)["flavor"])
	})
}

func TestConsoleSourcesBulk(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		var ids []string
		for i := range 4 {
			ids = append(ids, register(t, e, e.token, linuxSource(fmt.Sprintf("bulk-%d", i), nextMAC())))
		}
		project := createMigProject(t, e, e.token, "target-proj")
		wave := createWave(t, e, waveJSON("bulk-wave", project, `[]`))
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		page := b.get("/console/sources")
		require.Equal(t, http.StatusOK, page.status)
		assert.Contains(t, page.body, `<input type="checkbox" name="ids" value="`+ids[0]+`"`)
		assert.Contains(t, page.body, `<option value="`+wave+`">bulk-wave`)

		bulk := func(br *browser, op string, extra url.Values, sel ...string) response {
			f := url.Values{"csrf": {br.csrf}, "op": {op}, "ids": sel, "back": {"/console/sources?name=bulk"}}
			for k, v := range extra {
				f[k] = v
			}
			return br.post("/console/sources/bulk", f)
		}
		projectOf := func(id string) string {
			return e.do("GET", "/v3/sources/"+id, "", e.token).json(t)["migprojectid"].(string)
		}

		// Move two.
		r := bulk(b, "move", url.Values{"project": {project}}, ids[0], ids[1])
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		assert.Contains(t, r.header.Get("Location"), "/console/sources?")
		assert.Contains(t, r.header.Get("Location"), "name=bulk")
		assert.Equal(t, project, projectOf(ids[0]))
		assert.Equal(t, project, projectOf(ids[1]))
		assert.NotEqual(t, project, projectOf(ids[2]))
		assert.Contains(t, b.get(r.header.Get("Location")).body, "2 source(s) moved.")

		// Add two to the wave, through the wave's members API.
		r = bulk(b, "wave", url.Values{"wave": {wave}}, ids[0], ids[1])
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		members := e.do("GET", "/v3/waves/"+wave, "", e.token).body
		assert.Contains(t, members, ids[0])
		assert.Contains(t, members, ids[1])
		// Again: the API's refusal, with its code, as a 4xx page.
		r = bulk(b, "wave", url.Values{"wave": {wave}}, ids[0])
		assert.GreaterOrEqual(t, r.status, 400)
		assert.Less(t, r.status, 500)
		assert.Regexp(t, `SMS\.\d{4}`, r.body)

		// Validation.
		r = bulk(b, "move", nil, ids[2])
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Contains(t, r.body, "SMS.6013")
		r = bulk(b, "move", url.Values{"project": {project}})
		assert.Equal(t, http.StatusBadRequest, r.status)
		r = bulk(b, "explode", nil, ids[2])
		assert.Equal(t, http.StatusBadRequest, r.status)

		// CSRF.
		f := url.Values{"op": {"delete"}, "ids": {ids[3]}}
		assert.Equal(t, http.StatusForbidden, b.post("/console/sources/bulk", f).status)
		assert.Equal(t, http.StatusOK, e.do("GET", "/v3/sources/"+ids[3], "", e.token).status)

		// Another domain's ids are missing: 404, nothing moved or deleted.
		other := newBrowser(t, e)
		other.signIn("other", "carol", otherUser(t, e))
		assert.Equal(t, http.StatusNotFound, bulk(other, "delete", nil, ids[2]).status)
		assert.Equal(t, http.StatusNotFound, bulk(other, "move", url.Values{"project": {project}}, ids[2]).status)
		assert.NotEqual(t, project, projectOf(ids[2]))
		assert.Equal(t, http.StatusOK, e.do("GET", "/v3/sources/"+ids[2], "", e.token).status)

		// Delete two: gone.
		r = bulk(b, "delete", nil, ids[2], ids[3])
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		assert.Equal(t, http.StatusNotFound, e.do("GET", "/v3/sources/"+ids[2], "", e.token).status)
		assert.Equal(t, http.StatusNotFound, e.do("GET", "/v3/sources/"+ids[3], "", e.token).status)
	})
}

func TestConsoleCreateTaskForm(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		sid := register(t, e, e.token, linuxSource("web-07", nextMAC()))
		tr := e.do("POST", "/v3/vm/templates", `{"template":{"name":"web-tpl","is_template":true,"region":"local","projectid":"p-1","target_server_name":"web-07-new"}}`, e.token)
		require.Equal(t, http.StatusOK, tr.status, tr.body)
		tpl := tr.json(t)["id"].(string)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		src := b.get("/console/sources/" + sid)
		assert.Contains(t, src.body, `href="/console/sources/`+sid+`/task"`)

		page := b.get("/console/sources/" + sid + "/task")
		require.Equal(t, http.StatusOK, page.status)
		assert.Contains(t, page.body, `id="name" name="name" value="web-07"`)
		assert.Contains(t, page.body, `value="web-07-target"`)
		assert.Contains(t, page.body, `<option value="`+tpl+`">web-tpl`)
		m := regexp.MustCompile(`name="form_id" value="([^"]+)"`).FindStringSubmatch(page.body)
		require.NotNil(t, m)
		form := func(id string) url.Values {
			return url.Values{"csrf": {b.csrf}, "form_id": {id}, "name": {"web-07"}, "type": {"MIGRATE_FILE"},
				"template": {tpl}, "target_name": {""}, "region_name": {"local"}, "region_id": {"local"},
				"project_name": {"p"}, "project_id": {"p-1"}, "speed_limit": {"50"}, "priority": {"1"}, "syncing": {"on"}}
		}
		for _, tc := range []struct{ field, value, code string }{
			{"name", strings.Repeat("n", 256), "SMS.9001"},
			{"type", "MIGRATE_TAPE", "SMS.7712"},
			{"speed_limit", "20000", "SMS.9001"},
			{"speed_limit", "fast", "SMS.9001"},
			{"priority", "7", "SMS.9001"},
			{"target_name", strings.Repeat("t", 256), "SMS.9001"},
		} {
			f := form("bad-" + tc.field + tc.value)
			f.Set(tc.field, tc.value)
			r := b.post("/console/sources/"+sid+"/task", f)
			require.Equal(t, http.StatusOK, r.status, tc)
			assert.Contains(t, fieldError(r.body, tc.field), tc.code, "%v: %s", tc, r.body)
		}
		f := form("bad-template")
		f.Set("template", "no-such-template")
		r := b.post("/console/sources/"+sid+"/task", f)
		require.Equal(t, http.StatusOK, r.status)
		assert.NotEmpty(t, fieldError(r.body, "template"), r.body)
		assert.Empty(t, eng.calls().starts, "no refused form started a run")

		// CSRF.
		f = form(m[1])
		f.Del("csrf")
		assert.Equal(t, http.StatusForbidden, b.post("/console/sources/"+sid+"/task", f).status)

		// Created once, however often the form is sent.
		f = form(m[1])
		r = b.post("/console/sources/"+sid+"/task", f)
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		r2 := b.post("/console/sources/"+sid+"/task", f)
		require.Equal(t, http.StatusSeeOther, r2.status)
		assert.Equal(t, r.header.Get("Location"), r2.header.Get("Location"))
		tid := strings.TrimPrefix(r.header.Get("Location"), "/console/tasks/")
		require.Len(t, eng.calls().starts, 1)
		task := taskRow(t, e, tid)
		assert.Equal(t, "web-07-new", task.TargetServer.Name, "the template named the target")
		assert.EqualValues(t, 50, task.SpeedLimit)
		assert.True(t, task.Syncing)
		assert.Equal(t, sid, task.SourceID)
		assert.Contains(t, b.get("/console/sources/"+sid).body, `href="/console/tasks/`+tid+`"`)

		// Another domain: the source is missing both ways.
		other := newBrowser(t, e)
		other.signIn("other", "carol", otherUser(t, e))
		assert.Equal(t, http.StatusNotFound, other.get("/console/sources/"+sid+"/task").status)
		f = form("other-1")
		f.Set("csrf", other.csrf)
		assert.Equal(t, http.StatusNotFound, other.post("/console/sources/"+sid+"/task", f).status)
		assert.Len(t, eng.calls().starts, 1)
	})
}

func TestConsoleTaskPageSpeedLimits(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		tid, _ := newSourceTask(t, e, "speed-01")
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		page := b.get("/console/tasks/" + tid)
		require.Equal(t, http.StatusOK, page.status)
		assert.Contains(t, page.body, `action="/console/tasks/`+tid+`/speed-limit"`)
		path := "/console/tasks/" + tid + "/speed-limit"
		rows := func(csrf string, r ...[4]string) url.Values {
			f := url.Values{"csrf": {csrf}}
			for _, x := range r {
				f.Add("start", x[0])
				f.Add("end", x[1])
				f.Add("speed", x[2])
				f.Add("threshold", x[3])
			}
			return f
		}
		// Two windows and a blank row (dropped).
		r := b.post(path, rows(b.csrf, [4]string{"08:00", "12:00", "100", ""}, [4]string{"18:00", "23:00", "300", "20"}, [4]string{}))
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		api := e.do("GET", "/v3/tasks/"+tid+"/speed-limit", "", e.token).body
		assert.Contains(t, api, `"start":"08:00"`)
		assert.Contains(t, api, `"speed":300`)
		require.Len(t, eng.calls().speeds, 1, "the run got the new windows")
		page = b.get("/console/tasks/" + tid)
		assert.Contains(t, page.body, `name="start" value="18:00"`)
		assert.Contains(t, page.body, `name="threshold" value="20"`)

		// The API's rules and codes, the message on the window's row.
		for _, tc := range []struct {
			row  [4]string
			code string
		}{
			{[4]string{"25:00", "26:00", "10", ""}, "SMS.6405"},
			{[4]string{"08:00", "", "10", ""}, "SMS."},
			{[4]string{"08:00", "09:00", "ten", ""}, "SMS.9001"},
		} {
			r := b.post(path, rows(b.csrf, [4]string{"01:00", "02:00", "5", ""}, tc.row))
			require.Equal(t, http.StatusOK, r.status, tc)
			m := regexp.MustCompile(`(?s)<tr class="invalid"><td colspan="4"><p class="ferr">([^<]*)</p>`).FindStringSubmatch(r.body)
			require.NotNil(t, m, "%v: %s", tc, r.body)
			assert.Contains(t, m[1], tc.code, tc)
			assert.Contains(t, r.body, `value="`+tc.row[0]+`"`, "the typed rows come back")
		}
		assert.Len(t, eng.calls().speeds, 1, "no refused form reached the run")
		assert.Contains(t, e.do("GET", "/v3/tasks/"+tid+"/speed-limit", "", e.token).body, `"start":"18:00"`)

		// CSRF.
		f := rows("", [4]string{"00:00", "24:00", "1", ""})
		assert.Equal(t, http.StatusForbidden, b.post(path, f).status)

		// Another domain.
		other := newBrowser(t, e)
		other.signIn("other", "carol", otherUser(t, e))
		assert.Equal(t, http.StatusNotFound, other.post(path, rows(other.csrf, [4]string{"00:00", "24:00", "1", ""})).status)
		assert.Len(t, eng.calls().speeds, 1)
	})
}

func TestConsoleTaskPageResultsAndLog(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		tid, _ := newSourceTask(t, e, "res-01")
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		page := b.get("/console/tasks/" + tid)
		assert.Contains(t, page.body, "No network check yet")
		assert.Contains(t, page.body, "No consistency results")
		assert.Contains(t, page.body, "No log uploaded yet")
		assert.Contains(t, page.body, `href="http://temporal.test/workflows/`, "the run in the Temporal UI")

		// Asking a READY task's agent for its log: the API's refusal.
		r := b.post("/console/tasks/"+tid+"/log", url.Values{"csrf": {b.csrf}})
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Contains(t, r.body, "SMS.7717")
		assert.Equal(t, http.StatusForbidden, b.post("/console/tasks/"+tid+"/log", url.Values{}).status)

		require.Equal(t, http.StatusOK, e.do("POST", "/v3/"+tid+"/update-network-check-info", `{"domain_connectivity":true,
			"destination_connectivity":false,"network_delay":12.5,"network_jitter":1.5,"migration_speed":840,"loss_percentage":0.5,
			"cpu_usage":20,"mem_usage":512,"evaluation_result":"GOOD"}`, e.token).status)
		require.Equal(t, http.StatusOK, e.do("POST", "/v3/tasks/"+tid+"/consistency-result", `{"consistency_result":[
			{"dir_check":"/var/lib/mysql","num_total_files":1200,"num_different_files":3,"num_target_miss_files":0,"num_target_more_files":1}]}`, e.token).status)
		var log strings.Builder
		for i := range 100 {
			fmt.Fprintf(&log, "line %03d copy block\n", i)
		}
		require.Equal(t, http.StatusOK, e.do("PUT", "/v3/tasks/"+tid+"/agent-log?bucket=b", log.String(), e.token).status)
		setTask(t, e, tid, map[string]any{"state": "MIGRATE_FAIL", "failed_step": "SYNCHRONIZING",
			"error_json": `{"error_code":"SMS.1905","error_msg":"the receiver refused the block","error_param":"[\"vda\"]"}`})

		page = b.get("/console/tasks/" + tid)
		require.Equal(t, http.StatusOK, page.status)
		assert.Contains(t, page.body, "<dd>GOOD</dd>")
		assert.Contains(t, page.body, "12.5 ms / 1.5 ms")
		assert.Contains(t, page.body, "<code>/var/lib/mysql</code>")
		assert.Regexp(t, `<tr class="bad"><td><code>/var/lib/mysql</code></td><td class="num">1200</td><td class="num">3</td>`, page.body)
		assert.Contains(t, page.body, "line 099 copy block")
		assert.Contains(t, page.body, "line 060 copy block")
		assert.NotContains(t, page.body, "line 059 copy block", "the page shows the log's tail")
		assert.Contains(t, page.body, "SMS.1905")
		assert.Contains(t, page.body, "the receiver refused the block")
		dl := b.get("/console/tasks/" + tid + "/agent-log")
		require.Equal(t, http.StatusOK, dl.status)
		assert.Equal(t, log.String(), dl.body)
		assert.Contains(t, dl.header.Get("Content-Disposition"), "attachment")

		other := newBrowser(t, e)
		other.signIn("other", "carol", otherUser(t, e))
		assert.Equal(t, http.StatusNotFound, other.get("/console/tasks/"+tid+"/agent-log").status)
		assert.Equal(t, http.StatusNotFound, other.post("/console/tasks/"+tid+"/log", url.Values{"csrf": {other.csrf}}).status)
	})
}

func TestConsoleTaskFailedStep(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		tid, _ := newSourceTask(t, e, "fail-01")
		task := taskRow(t, e, tid)
		require.NotEmpty(t, task.SubTasks)
		step := task.SubTasks[len(task.SubTasks)/2].Name
		setTask(t, e, tid, map[string]any{"state": "MIGRATE_FAIL", "failed_step": string(step),
			"error_json": `{"error_code":"SMS.1905","error_msg":"the receiver refused the block","error_param":"[]"}`})
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		live := b.get("/console/tasks/" + tid + "/live")
		require.Equal(t, http.StatusOK, live.status)
		m := regexp.MustCompile(`(?s)<li class="failed" aria-current="step">\s*<span class="name">([^<]*)</span>.*?<span class="why"><strong>([^<]*)</strong> ([^<]*)</span>`).FindStringSubmatch(live.body)
		require.NotNil(t, m, live.body)
		assert.Equal(t, string(step), m[1])
		assert.Equal(t, "SMS.1905", m[2])
		assert.Equal(t, "the receiver refused the block", m[3])
		assert.Equal(t, 1, strings.Count(live.body, `class="failed"`), "one step is the failed one")
		// The buttons are part of the live fragment: a page opened while the
		// task was READY offers stop once it runs, without a reload.
		assert.Contains(t, live.body, `<button type="submit" name="operation" value="restart"`)
		// Destructive actions ask first; those the run refuses say why.
		page := b.get("/console/tasks/" + tid)
		assert.Contains(t, page.body, `data-confirm="Restart this migration?`)
		assert.Regexp(t, `<li><strong>Stop</strong> is unavailable: SMS\.\d{4}: `, page.body)
	})
}

func TestConsoleLoginCSRF(t *testing.T) {
	e := newEnv(t, testdb.Open(t, store.SQLite))
	b := newBrowser(t, e)
	good := url.Values{"domain": {e.creds.DomainName}, "user": {e.creds.User}, "password": {e.creds.Password}, "next": {"/console/tasks"}}
	// A sign-in posted from elsewhere carries no form token (or a
	// forged one): refused before the password is checked, no session.
	for _, tok := range []string{"", "forged"} {
		f := url.Values{}
		for k, v := range good {
			f[k] = v
		}
		f.Set("csrf", tok)
		r := b.post("/console/login", f)
		assert.Equal(t, http.StatusForbidden, r.status, tok)
		assert.Contains(t, r.body, "CSRF")
		assert.Empty(t, r.sessionCookie())
	}
	// A token from the page but another browser's cookie: refused too.
	page := newBrowser(t, e).get("/console/login")
	m := loginCSRF.FindStringSubmatch(page.body)
	require.NotNil(t, m)
	f := url.Values{"csrf": {m[1]}}
	for k, v := range good {
		f[k] = v
	}
	r := b.post("/console/login", f)
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Contains(t, page.header.Get("Set-Cookie"), "SameSite=Strict")
	assert.Contains(t, page.header.Get("Set-Cookie"), "HttpOnly")
	// The form as served signs in.
	r = b.login(good)
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	assert.Equal(t, "/console/tasks", r.header.Get("Location"))
	assert.NotEmpty(t, r.sessionCookie())
}

// TestConsoleExpiredSessionReturns: after idle expiry a form post and a
// polled fragment send the operator to the sign-in page, then back to
// the page they were on (not the fragment, not another site).
func TestConsoleExpiredSessionReturns(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	e := newEnvWith(t, testdb.Open(t, store.SQLite), envOptions{now: now})
	b := newBrowser(t, e)
	b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
	clock.Add(int64(31 * time.Minute))

	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		want               string
	}{
		{"form", "POST", "/console/projects", map[string]string{"Referer": e.srv.URL + "/console/projects/new?x=1"}, "/console/projects/new?x=1"},
		{"form from elsewhere", "POST", "/console/projects", map[string]string{"Referer": "https://evil.example/steal"}, "/console/"},
		{"form without referer", "POST", "/console/projects", nil, "/console/"},
		{"fragment", "GET", "/console/tasks/t-1/live", map[string]string{"HX-Request": "true", "HX-Current-URL": e.srv.URL + "/console/tasks/t-1"}, "/console/tasks/t-1"},
	} {
		req, err := http.NewRequest(tc.method, e.srv.URL+tc.path, strings.NewReader(url.Values{"name": {"late"}}.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		r := b.send(req)
		loc := r.header.Get("Location")
		if tc.header["HX-Request"] == "true" {
			assert.Equal(t, http.StatusUnauthorized, r.status, tc.name)
			loc = r.header.Get("HX-Redirect")
		} else {
			assert.Equal(t, http.StatusSeeOther, r.status, tc.name)
		}
		assert.Equal(t, "/console/login?next="+url.QueryEscape(tc.want), loc, tc.name)
	}
	// Signing in again returns there.
	r := b.login(url.Values{"domain": {e.creds.DomainName}, "user": {e.creds.User}, "password": {e.creds.Password},
		"next": {"/console/projects/new?x=1"}})
	require.Equal(t, http.StatusSeeOther, r.status)
	assert.Equal(t, "/console/projects/new?x=1", r.header.Get("Location"))
	assert.NotContains(t, e.do("GET", "/v3/migprojects", "", e.token).body, `"late"`, "the expired post created nothing")
}

func TestConsoleEmptyStates(t *testing.T) {
	e := newEnv(t, testdb.Open(t, store.SQLite))
	b := newBrowser(t, e)
	b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
	install := regexp.MustCompile(`sms-agent run --server ` + regexp.QuoteMeta(e.srv.URL) + ` --ak &lt;access key&gt; --project [0-9a-f]{32}`)
	for _, path := range []string{"/console/", "/console/sources", "/console/tasks"} {
		r := b.get(path)
		require.Equal(t, http.StatusOK, r.status, path)
		assert.Regexp(t, install, r.body, path)
		assert.Contains(t, r.body, "smsflow admin aksk create --domain "+e.creds.DomainName, path)
	}
	register(t, e, e.token, linuxSource("first", nextMAC()))
	for _, path := range []string{"/console/", "/console/sources", "/console/tasks"} {
		assert.NotRegexp(t, install, b.get(path).body, "a source exists: %s", path)
	}
	assert.Contains(t, b.get("/console/tasks").body, "No tasks yet")
	assert.Contains(t, b.get("/console/tasks?state=RUNNING").body, "No task matches these filters.")
}

// TestSourceRowsLeaveFacts: the console's table query returns the API
// list's rows in the same order, without reading the checks and
// recommended targets (the table shows neither).
func TestSourceRowsLeaveFacts(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		for i := range 3 {
			register(t, e, e.token, linuxSource(fmt.Sprintf("rows-%d", i), nextMAC()))
		}
		ten := tenantOf(e)
		full, n, err := s.Sources(t.Context(), ten, store.SourceFilter{}, store.Page{Limit: 10})
		require.NoError(t, err)
		rows, m, err := s.SourceRows(t.Context(), ten, store.SourceFilter{}, store.Page{Limit: 10})
		require.NoError(t, err)
		assert.Equal(t, n, m)
		require.Len(t, rows, 3)
		for i := range rows {
			assert.Equal(t, full[i].ID, rows[i].ID)
			assert.Equal(t, full[i].Name, rows[i].Name)
			assert.NotEmpty(t, full[i].Checks)
			assert.Empty(t, rows[i].Checks)
		}
		_, count, err := s.SourceRows(t.Context(), ten, store.SourceFilter{}, store.Page{})
		require.NoError(t, err)
		assert.EqualValues(t, 3, count, "no page: the count alone")
	})
}

// TestConsoleInnerFailureKeepsRequestIDs: a form whose API call fails on
// the server's side answers the error page with its request id, and the
// console's log line under that id names the API request that holds the
// cause; the form may be sent again.
func TestConsoleInnerFailureKeepsRequestIDs(t *testing.T) {
	s := testdb.Open(t, store.SQLite)
	eng := newFakeEngine(s)
	logs := &testutil.Buffer{}
	e := newEnvWith(t, s, envOptions{engine: eng, taskOptions: taskOpts,
		logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	sid := register(t, e, e.token, linuxSource("boom-01", nextMAC()))
	b := newBrowser(t, e)
	b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
	eng.set(func(f *fakeEngine) { f.startErr = errors.New("temporal is down") })
	form := url.Values{"csrf": {b.csrf}, "form_id": {"boom"}, "name": {"boom-01"}, "type": {"MIGRATE_FILE"},
		"region_name": {"local"}, "region_id": {"local"}, "project_name": {"p"}, "project_id": {"p-1"}}
	r := b.post("/console/sources/"+sid+"/task", form)
	require.Equal(t, http.StatusInternalServerError, r.status)
	m := regexp.MustCompile(`Request id: <code class="reqid">([0-9a-f]{32})</code>`).FindStringSubmatch(r.body)
	require.NotNil(t, m, r.body)
	assert.NotContains(t, r.body, "temporal is down", "the cause stays in the log")
	var outer string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, m[1]) && strings.Contains(line, `"msg":"console"`) {
			outer = line
		}
	}
	require.NotEmpty(t, outer, "the console logged the failure under the page's id")
	inner := regexp.MustCompile(`POST /v3/tasks: status 500 \(request ([0-9a-f]{32})\)`).FindStringSubmatch(outer)
	require.NotNil(t, inner, outer)
	assert.Contains(t, logs.String(), `"request_id":"`+inner[1]+`"`)
	assert.Regexp(t, `"request_id":"`+inner[1]+`"[^\n]*temporal is down`, logs.String(), "the API's line holds the cause")

	// Released: the same form goes through once the engine is back.
	eng.set(func(f *fakeEngine) { f.startErr = nil })
	r = b.post("/console/sources/"+sid+"/task", form)
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
}
