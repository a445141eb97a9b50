package web_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/wave"
)

// waveForm is a valid create form of the console for the fixture's
// project, picking sources.
func waveFormValues(b *browser, f waveFixture, name string, sources ...string) url.Values {
	v := url.Values{"csrf": {b.csrf}, "name": {name}, "project_id": {f.project}, "type": {"MIGRATE_FILE"},
		"syncing": {"yes"}, "time_zone": {"Europe/Berlin"}, "max_concurrent": {"2"}, "max_failures": {"1"},
		"budget_default": {"100"}, "bw_start_0": {"08:00"}, "bw_end_0": {"18:00"}, "bw_days_0": {"MON", "TUE"},
		"bw_mbps_0": {"20"}, "cw_start_0": {"22:00"}, "cw_end_0": {"02:00"}, "cw_days_0": {"SAT"},
		"cutover_mode": {"approve"}, "form_id": {"form-" + name}}
	for _, s := range sources {
		v.Add("source", s)
	}
	return v
}

// postMultipart sends form as multipart/form-data with file (if not nil)
// as its "file" part.
func (b *browser) postMultipart(path string, form url.Values, file []byte) response {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range form {
		for _, v := range vs {
			require.NoError(b.t, mw.WriteField(k, v))
		}
	}
	if file != nil {
		fw, err := mw.CreateFormFile("file", "members.csv")
		require.NoError(b.t, err)
		_, err = fw.Write(file)
		require.NoError(b.t, err)
	}
	require.NoError(b.t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, b.base+path, &body)
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.send(req)
}

// mustFieldError is the message shown in the field block whose label is for
// id (the form's convention: label, control, then the error).
func mustFieldError(t *testing.T, body, id string) string {
	t.Helper()
	msg := fieldError(body, id)
	require.NotEmpty(t, msg, "no error next to %s", id)
	return msg
}

func listWaves(t *testing.T, e *env) string {
	t.Helper()
	r := e.do("GET", "/v3/waves", "", e.token)
	require.Equal(t, http.StatusOK, r.status, r.body)
	return r.body
}

func waveIDFrom(t *testing.T, r response) string {
	t.Helper()
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	id := strings.TrimPrefix(r.header.Get("Location"), "/console/waves/")
	require.NotEmpty(t, id)
	require.NotContains(t, id, "/")
	return id
}

// TestConsoleWaveCreateForm: the form shows the API's codes next to their
// fields (the same wave.Validate), needs its CSRF token, reads the start
// time in the named zone, keeps the windows, and a double submission makes
// one wave.
func TestConsoleWaveCreateForm(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 3)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		r := b.get("/console/waves/new")
		require.Equal(t, http.StatusOK, r.status, r.body)
		for _, s := range f.sources {
			assert.Contains(t, r.body, `name="source" value="`+s+`"`, "every source can be picked")
		}
		assert.Contains(t, r.body, `name="form_id"`)
		assert.Contains(t, r.body, `type="datetime-local"`)

		// The filters narrow the table and keep what was typed.
		v := waveFormValues(b, f, "typed")
		v.Set("f_name", "src-1")
		v.Set("filter", "1")
		r = b.postMultipart("/console/waves/new", v, nil)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Contains(t, r.body, `value="`+f.sources[1]+`"`)
		assert.NotContains(t, r.body, `value="`+f.sources[0]+`"`)
		assert.Contains(t, r.body, `value="typed"`)
		assert.NotContains(t, listWaves(t, e), "typed", "filtering creates nothing")

		for _, tc := range []struct {
			field, value, id, code string
		}{
			{"name", "", "name", "SMS.8500"},
			{"max_concurrent", "0", "max_concurrent", "SMS.8510"},
			{"max_concurrent", "two", "max_concurrent", "SMS.8500"},
			{"time_zone", "Mars/Olympus", "time_zone", "SMS.8509"},
			{"start_at", "2001-01-01T10:00", "start_at", "SMS.8508"},
			{"budget_default", "1", "budget_default", "SMS.8512"},
			{"cutover_mode", "whenever", "cutover_mode", "SMS.8500"},
			{"depends_on", "no-such-wave", "depends_on", "SMS.8516"},
		} {
			v := waveFormValues(b, f, "bad-"+tc.field, f.sources[0])
			v.Set(tc.field, tc.value)
			r := b.postMultipart("/console/waves", v, nil)
			require.Equal(t, http.StatusOK, r.status, tc) // the form again
			assert.Contains(t, mustFieldError(t, r.body, tc.id), tc.code, tc)
			assert.Contains(t, r.body, `value="`+f.sources[0]+`" id="pick-`+f.sources[0]+`" checked`, "the pick is kept")
		}
		// A value that does not parse and one the rules refuse: both shown.
		v = waveFormValues(b, f, "two-problems")
		v.Set("max_failures", "many")
		v.Set("time_zone", "Nowhere/Else")
		r = b.postMultipart("/console/waves", v, nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, mustFieldError(t, r.body, "max_failures"), "SMS.8500: must be a whole number")
		assert.Contains(t, mustFieldError(t, r.body, "time_zone"), "SMS.8509")

		// Overlapping budget windows: the second row says so, with the code.
		v = waveFormValues(b, f, "overlap")
		v.Set("bw_start_1", "17:00")
		v.Set("bw_end_1", "19:00")
		v.Set("bw_mbps_1", "30")
		r = b.postMultipart("/console/waves", v, nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Regexp(t, `(?s)aria-label="budget window 1 Mbit/s"></td>\s*</tr><tr class="rowerr"><td colspan="4"><p class="ferr">SMS.8506: overlaps`, r.body)
		// The API answers the same code for the same spec.
		api := e.do("POST", "/v3/waves", `{"name":"overlap","project_id":`+q(f.project)+`,"max_concurrent":2,"time_zone":"UTC",
			"bandwidth_budget":{"windows":[{"start":"08:00","end":"18:00","weekdays":["MON","TUE"],"mbps":20},{"start":"17:00","end":"19:00","mbps":30}]}}`, e.token)
		code, _ := api.smsError(t)
		assert.Equal(t, "SMS.8506", code)
		assert.NotContains(t, listWaves(t, e), `"bad-`)

		// Without the CSRF token: refused, nothing made.
		v = waveFormValues(b, f, "nocsrf", f.sources[0])
		v.Del("csrf")
		r = b.postMultipart("/console/waves", v, nil)
		assert.Equal(t, http.StatusForbidden, r.status)
		assert.Contains(t, r.body, "CSRF")
		assert.NotContains(t, listWaves(t, e), "nocsrf")

		// A valid form, sent twice: one wave, both answers lead to it.
		v = waveFormValues(b, f, "east-1", f.sources[0], f.sources[2])
		v.Set("start_at", "2030-01-02T09:30")
		r1 := b.postMultipart("/console/waves", v, nil)
		id := waveIDFrom(t, r1)
		r2 := b.postMultipart("/console/waves", v, nil)
		assert.Equal(t, r1.header.Get("Location"), r2.header.Get("Location"))
		assert.Equal(t, 1, strings.Count(listWaves(t, e), `"east-1"`))
		w := showWave(t, e, id)
		assert.Equal(t, "2030-01-02T08:30:00Z", w["start_at"], "09:30 in Berlin")
		assert.Equal(t, "approve", w["cutover_mode"])
		assert.EqualValues(t, 2, w["max_concurrent"])
		budget := w["bandwidth_budget"].(map[string]any)
		assert.EqualValues(t, 100, budget["default_mbps"])
		assert.Equal(t, []any{map[string]any{"start": "08:00", "end": "18:00", "weekdays": []any{"MON", "TUE"}, "mbps": 20.0}}, budget["windows"])
		assert.Equal(t, []any{map[string]any{"start": "22:00", "end": "02:00", "weekdays": []any{"SAT"}}}, w["cutover_windows"])
		assert.Equal(t, map[string]any{"type": "MIGRATE_FILE", "syncing": true}, w["task_defaults"])
		ms := waveMembers(t, e, id)
		require.Len(t, ms, 2)
		assert.ElementsMatch(t, []string{f.sources[0], f.sources[2]}, []string{ms[0].SourceID, ms[1].SourceID})

		// The list links to it.
		assert.Contains(t, b.get("/console/waves").body, `href="/console/waves/`+id+`"`)
	})
}

// TestConsoleWaveCSVUpload: members by CSV file, on create and on an
// existing wave; a bad file imports nothing and lists its bad rows with
// their lines and codes; a huge or binary file is refused with a clear
// message.
func TestConsoleWaveCSVUpload(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 4)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)

		bad := []byte("name,ip,priority\nsrc-0,,2\nno-such-server,,\n,10.9.9.300,\nsrc-1,,7\n")
		r := b.postMultipart("/console/waves", waveFormValues(b, f, "csv-bad"), bad)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, "The file was not imported")
		assert.Regexp(t, `SMS.8520: line 4: ip: `, r.body)
		assert.Regexp(t, `SMS.8520: line 5: priority: `, r.body)
		assert.NotContains(t, listWaves(t, e), "csv-bad", "nothing made")
		// Rows that read well but name no source: their lines too.
		r = b.postMultipart("/console/waves", waveFormValues(b, f, "csv-bad"), []byte("name\nsrc-0\nno-such-server\n"))
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, `SMS.8522: line 3: name: no source server with name &#34;no-such-server&#34;`)
		assert.NotContains(t, listWaves(t, e), "csv-bad")

		junk := bytes.Repeat([]byte{0x00, 0xff, 0x13, 0x37}, 1024)
		r = b.postMultipart("/console/waves", waveFormValues(b, f, "csv-junk"), junk)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, "SMS.85")
		assert.Contains(t, r.body, "The file was not imported")
		assert.NotContains(t, listWaves(t, e), "csv-junk")

		huge := append([]byte("name\n"), bytes.Repeat([]byte("src-0-but-longer-than-a-name-should-be\n"), 60_000)...)
		r = b.postMultipart("/console/waves", waveFormValues(b, f, "csv-huge"), huge)
		assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
		assert.Contains(t, r.body, "SMS.8518")
		assert.Contains(t, r.body, "too large")
		assert.NotContains(t, listWaves(t, e), "csv-huge")
		// The same without a length (chunked): the same answer.
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		require.NoError(t, mw.WriteField("csrf", b.csrf))
		fw, err := mw.CreateFormFile("file", "huge.csv")
		require.NoError(t, err)
		_, err = fw.Write(huge)
		require.NoError(t, err)
		require.NoError(t, mw.Close())
		req, err := http.NewRequest(http.MethodPost, b.base+"/console/waves", io.MultiReader(&body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		require.EqualValues(t, 0, req.ContentLength, "sent chunked")
		r = b.send(req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
		assert.Contains(t, r.body, "SMS.8518")

		// A good file, with a picked source besides: three members.
		good := []byte("name,target_name,priority\nsrc-0,t-0,2\nsrc-1,,0\n")
		id := waveIDFrom(t, b.postMultipart("/console/waves", waveFormValues(b, f, "csv-good", f.sources[2]), good))
		ms := waveMembers(t, e, id)
		require.Len(t, ms, 3)

		// More members on the wave page: a bad row refuses the file.
		r = b.postMultipart("/console/waves/"+id+"/members", url.Values{"csrf": {b.csrf}}, []byte("name\nsrc-3\nsrc-0\n"))
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Contains(t, r.body, "SMS.8513: line 3: source server "+f.sources[0]+" is a member of this wave already")
		assert.Len(t, waveMembers(t, e, id), 3)
		r = b.postMultipart("/console/waves/"+id+"/members", url.Values{"csrf": {b.csrf}}, nil)
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Contains(t, r.body, "choose a file")
		r = b.postMultipart("/console/waves/"+id+"/members", url.Values{}, []byte("name\nsrc-3\n"))
		assert.Equal(t, http.StatusForbidden, r.status, "no CSRF token")
		r = b.postMultipart("/console/waves/"+id+"/members", url.Values{"csrf": {b.csrf}}, []byte("name\nsrc-3\n"))
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		assert.Len(t, waveMembers(t, e, id), 4)
	})
}

// TestConsoleWaveEditAndDelete: a DRAFT wave's form saves through the
// API's update; a running wave can be neither edited nor deleted, and the
// page says why.
func TestConsoleWaveEditAndDelete(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 2)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		id := createWave(t, e, waveJSON("edit-me", f.project, `[{"source_id":`+q(f.sources[0])+`}]`))

		r := b.get("/console/waves/" + id + "/edit")
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, `value="edit-me"`)
		assert.Contains(t, r.body, `name="bw_start_0" value="08:00"`)
		assert.Contains(t, r.body, `name="cw_days_0" value="SAT" checked`)
		v := waveFormValues(b, f, "edited")
		v.Set("max_concurrent", "500")
		r = b.post("/console/waves/"+id, v)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, mustFieldError(t, r.body, "max_concurrent"), "SMS.8510")
		v.Set("max_concurrent", "3")
		v.Del("csrf")
		assert.Equal(t, http.StatusForbidden, b.post("/console/waves/"+id, v).status)
		v.Set("csrf", b.csrf)
		r = b.post("/console/waves/"+id, v)
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		w := showWave(t, e, id)
		assert.Equal(t, "edited", w["name"])
		assert.EqualValues(t, 3, w["max_concurrent"])
		assert.Len(t, waveMembers(t, e, id), 1, "the members stay")

		setWaveState(t, e, id, wave.WaveReplicating)
		page := b.get("/console/waves/" + id).body
		assert.Regexp(t, `<button type="submit" class="danger" disabled title="SMS.8505`, page)
		r = b.post("/console/waves/"+id, v)
		assert.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, "SMS.8504")
		r = b.post("/console/waves/"+id+"/delete", url.Values{"csrf": {b.csrf}})
		assert.Equal(t, http.StatusConflict, r.status)
		assert.Contains(t, r.body, "SMS.8505")
		assert.Contains(t, r.body, "cancel it first")
		assert.Equal(t, http.StatusOK, e.do("GET", "/v3/waves/"+id, "", e.token).status)

		setWaveState(t, e, id, wave.WaveDraft)
		assert.Equal(t, http.StatusForbidden, b.post("/console/waves/"+id+"/delete", url.Values{}).status)
		r = b.post("/console/waves/"+id+"/delete", url.Values{"csrf": {b.csrf}})
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		assert.Equal(t, http.StatusNotFound, e.do("GET", "/v3/waves/"+id, "", e.token).status)
	})
}

// TestConsoleWaveActionsAndPreflight: the buttons the state refuses are
// disabled with the reason; the others reach the engine as the API's
// action does; preflight lists each member's checks.
func TestConsoleWaveActionsAndPreflight(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, fw *fakeWaves) {
		f := newWaveFixture(t, e, 2)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		id := createWave(t, e, waveJSON("act", f.project, `[{"source_id":`+q(f.sources[0])+`},{"source_id":`+q(f.sources[1])+`}]`))

		page := b.get("/console/waves/" + id)
		require.Equal(t, http.StatusOK, page.status)
		assert.Contains(t, page.body, `data-op="start" >Start now`)
		assert.Regexp(t, `data-op="approve_cutover" disabled title="SMS.8525: Wave is not waiting for approve_cutover`, page.body)
		assert.Regexp(t, `data-op="pause" disabled title="SMS.8503`, page.body)

		pf := b.get("/console/waves/" + id + "/preflight")
		require.Equal(t, http.StatusOK, pf.status)
		assert.Contains(t, pf.body, "src-0")
		assert.Contains(t, pf.body, "agent_connected")
		assert.Contains(t, pf.body, "no_other_active_wave")

		// A refused action: the code and the reason, nothing sent.
		r := b.post("/console/waves/"+id+"/action", url.Values{"csrf": {b.csrf}, "operation": {"approve_cutover"}})
		assert.Equal(t, http.StatusConflict, r.status)
		assert.Contains(t, r.body, "SMS.8525: Wave is not waiting for approve_cutover")
		r = b.post("/console/waves/"+id+"/action", url.Values{"csrf": {b.csrf}, "operation": {"explode"}})
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Contains(t, r.body, "SMS.8500")
		r = b.post("/console/waves/"+id+"/action", url.Values{"operation": {"start"}})
		assert.Equal(t, http.StatusForbidden, r.status)
		_, started, _, _ := fw.snapshot()
		assert.Empty(t, started)

		r = b.post("/console/waves/"+id+"/action", url.Values{"csrf": {b.csrf}, "operation": {"start"}})
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		_, started, _, _ = fw.snapshot()
		assert.Equal(t, []string{id}, started)
		assert.Equal(t, "REPLICATING", showWave(t, e, id)["state"])
		for _, m := range waveMembers(t, e, id) {
			assert.NotNil(t, m.TaskID, "start made the members' tasks, as the API's does")
		}

		setWaveState(t, e, id, wave.WaveAwaitingCutover)
		page = b.get("/console/waves/" + id)
		assert.Contains(t, page.body, `data-op="approve_cutover" >Approve cutover`)
		assert.Contains(t, page.body, `data-confirm="Cancel this wave?`, "cancel asks first")
		r = b.post("/console/waves/"+id+"/action", url.Values{"csrf": {b.csrf}, "operation": {"approve_cutover"}})
		require.Equal(t, http.StatusSeeOther, r.status, r.body)
		_, _, actions, _ := fw.snapshot()
		assert.Equal(t, []string{id + ":approve_cutover"}, actions)
	})
}

// TestConsoleWaveLiveFragment: the wave page of 200 members polls one
// fragment that carries every member's bar, grouped by state, with the
// totals and the throughput chart against the budget.
func TestConsoleWaveLiveFragment(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		id := seedWave(t, e, 200)
		ctx := context.Background()
		ten := tenantOf(e)
		started := time.Now().Add(-time.Hour).UTC()
		require.NoError(t, e.store.DB().Model(&store.Wave{}).Where("id = ?", id).Update("started_at", started).Error)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)

		page := b.get("/console/waves/" + id)
		require.Equal(t, http.StatusOK, page.status)
		assert.Equal(t, 1, strings.Count(page.body, `hx-get="/console/waves/`+id+`/live"`), "one polled fragment per page")
		barRe := regexp.MustCompile(`<progress max="100" value="\d+" aria-label="[^"]+ copied">`)
		assert.Len(t, barRe.FindAllString(page.body, -1), 200, "every member's bar is on the page")
		live := b.get("/console/waves/" + id + "/live")
		require.Equal(t, http.StatusOK, live.status)
		assert.NotContains(t, live.body, "<html")
		assert.Len(t, barRe.FindAllString(live.body, -1), 200, "200 members' bars in one response")
		for _, st := range []string{"COPYING", "SYNCING", "DONE"} {
			assert.Contains(t, live.body, `data-state="`+st+`"`)
		}
		assert.Contains(t, live.body, "No throughput yet")
		// The fragment's size, noted: about 70 KB, 0.35 KB a member.
		t.Logf("live fragment of a 200-member wave: %d bytes", len(live.body))
		assert.Less(t, len(live.body), 100<<10)

		// Samples of the members' tasks are summed into the chart, the
		// budget (1000 Mbit/s by default, 200 in working hours) dashed.
		tasks, err := e.store.WaveTasks(ctx, ten, id)
		require.NoError(t, err)
		var samples []store.SpeedSample
		i := 0
		for tid := range tasks {
			if i++; i > 10 {
				break
			}
			for k := range int64(30) {
				samples = append(samples, store.SpeedSample{DomainID: ten.DomainID, TaskID: tid,
					AtMs: started.UnixMilli() + k*60_000, Mbps: 15, LimitMbps: 20})
			}
		}
		require.NoError(t, e.store.DB().CreateInBatches(samples, 100).Error)
		live = b.get("/console/waves/" + id + "/live")
		speed := regexp.MustCompile(`<polyline class="speed" points="([^"]*)"`).FindStringSubmatch(live.body)
		require.NotNil(t, speed, "the chart draws the throughput")
		pts := strings.Fields(speed[1])
		assert.GreaterOrEqual(t, len(pts), 20)
		assert.Contains(t, live.body, `<polyline class="limit"`)
		assert.Contains(t, live.body, "bandwidth budget")
		wt, err := e.store.WaveThroughput(ctx, ten, id, started.UnixMilli(), 60_000)
		require.NoError(t, err)
		require.Len(t, wt, 30)
		assert.InDelta(t, 150, wt[0].Mbps, 0.001, "ten tasks at 15 Mbit/s")
		other, err := e.store.WaveThroughput(ctx, store.Tenant{DomainID: "nobody"}, id, 0, 60_000)
		require.NoError(t, err)
		assert.Empty(t, other, "another tenant's samples are not summed")
	})
}

// TestConsoleWaveLiveHead: the live fragment carries, out of band, the
// page's head buttons as the wave's state now has them, and removes the
// members' upload once the wave has finished: a page left open while its
// wave ran to DONE offered the upload still, and kept Delete disabled as
// "running (AWAITING_CUTOVER)", until it was reloaded.
func TestConsoleWaveLiveHead(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 1)
		id := createWave(t, e, waveJSON("head", f.project, `[{"source_id":`+q(f.sources[0])+`}]`))
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		setWaveState(t, e, id, wave.WaveAwaitingCutover)
		page := b.get("/console/waves/" + id)
		require.Equal(t, http.StatusOK, page.status)
		// The targets of the swaps, and no swap on the page itself.
		assert.Contains(t, page.body, `<div class="buttons" id="wave-buttons">`)
		assert.Contains(t, page.body, `<section class="card" id="wave-upload">`)
		assert.NotContains(t, page.body, "hx-swap-oob")

		head := regexp.MustCompile(`(?s)<div class="buttons" id="wave-buttons" hx-swap-oob="true">(.*?)</div>`)
		deleteBtn := regexp.MustCompile(`<button type="submit" class="danger" ([^>]*)>Delete</button>`)
		for _, c := range []struct {
			state           wave.WaveState
			edit, del, gone bool // Edit a link, Delete enabled, the upload removed
		}{
			{wave.WaveReplicating, false, false, false},
			{wave.WavePaused, true, false, false},
			{wave.WaveDone, false, true, true},
			{wave.WaveCanceled, false, true, true},
		} {
			setWaveState(t, e, id, c.state)
			live := b.get("/console/waves/" + id + "/live")
			require.Equal(t, http.StatusOK, live.status)
			m := head.FindStringSubmatch(live.body)
			require.NotNil(t, m, "%s: the head's buttons out of band", c.state)
			assert.Equal(t, c.edit, strings.Contains(m[1], `<a class="button" href="/console/waves/`+id+`/edit">Edit</a>`), "%s: edit", c.state)
			d := deleteBtn.FindStringSubmatch(m[1])
			require.NotNil(t, d, "%s: delete", c.state)
			if c.del {
				assert.NotContains(t, d[1], "disabled", c.state)
			} else {
				assert.Contains(t, d[1], `disabled title="SMS.8505: the wave is running (`+string(c.state)+`)`, c.state)
			}
			assert.Equal(t, c.gone, strings.Contains(live.body, `<section id="wave-upload" hx-swap-oob="delete"></section>`), "%s: upload removed", c.state)
		}

		// Retry failed: disabled while no member failed (the workflow
		// refuses it then), enabled once one has.
		retry := regexp.MustCompile(`<button type="submit" data-op="retry_failed" ([^>]*)>Retry failed</button>`)
		setWaveState(t, e, id, wave.WaveReplicating)
		m := retry.FindStringSubmatch(b.get("/console/waves/" + id).body)
		require.NotNil(t, m)
		assert.Contains(t, m[1], `disabled title="SMS.8503:`)
		assert.Contains(t, m[1], `(no member failed)`)
		require.NoError(t, e.store.DB().Model(&store.WaveMember{}).Where("wave_id = ?", id).
			Update("state", string(wave.MemberFailed)).Error)
		m = retry.FindStringSubmatch(b.get("/console/waves/" + id).body)
		require.NotNil(t, m)
		assert.NotContains(t, m[1], "disabled", "a member failed: retry is offered")
	})
}

// TestConsoleWaveReportAndTenancy: the report as a table and a CSV
// download; another domain's session gets 404 on every wave page, fragment,
// form and download, and changes nothing.
func TestConsoleWaveReportAndTenancy(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, fw *fakeWaves) {
		f := newWaveFixture(t, e, 2)
		id := createWave(t, e, waveJSON("mine", f.project, `[{"source_id":`+q(f.sources[0])+`},{"source_id":`+q(f.sources[1])+`}]`))
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		r := b.get("/console/waves/" + id + "/report")
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, "src-0")
		assert.Contains(t, r.body, `href="/console/waves/`+id+`/report.csv"`)
		r = b.get("/console/waves/" + id + "/report.csv")
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "text/csv; charset=utf-8", r.header.Get("Content-Type"))
		assert.Contains(t, r.header.Get("Content-Disposition"), "attachment")
		assert.True(t, strings.HasPrefix(r.body, "member_id,source_id,source_name,"), r.body)
		assert.Equal(t, 3, strings.Count(r.body, "\n"), "a header and two members")
		api := e.doH("GET", "/v3/waves/"+id+"/report?format=csv", "", map[string]string{"X-Auth-Token": e.token})
		assert.Equal(t, api.body, r.body, "the API's CSV")

		other := newBrowser(t, e)
		other.signIn("other", "carol", otherUser(t, e))
		for _, p := range []string{"", "/live", "/edit", "/preflight", "/report", "/report.csv"} {
			r := other.get("/console/waves/" + id + p)
			assert.Equal(t, http.StatusNotFound, r.status, p)
			assert.NotContains(t, r.body, "src-0", p)
		}
		v := waveFormValues(other, f, "stolen")
		assert.Equal(t, http.StatusNotFound, other.post("/console/waves/"+id, v).status)
		assert.Equal(t, http.StatusNotFound, other.post("/console/waves/"+id+"/delete", url.Values{"csrf": {other.csrf}}).status)
		assert.Equal(t, http.StatusNotFound, other.post("/console/waves/"+id+"/action",
			url.Values{"csrf": {other.csrf}, "operation": {"start"}}).status)
		assert.Equal(t, http.StatusNotFound, other.postMultipart("/console/waves/"+id+"/members",
			url.Values{"csrf": {other.csrf}}, []byte("name\nsrc-0\n")).status)
		assert.NotContains(t, other.get("/console/waves").body, "mine")
		// Their sources are not another domain's to pick.
		r = other.postMultipart("/console/waves", url.Values{"csrf": {other.csrf}, "name": {"theirs"}, "project_id": {f.project},
			"time_zone": {"UTC"}, "max_concurrent": {"1"}, "cutover_mode": {"auto"}, "source": {f.sources[0]}}, nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, "SMS.85")
		w := showWave(t, e, id)
		assert.Equal(t, "mine", w["name"])
		assert.Equal(t, "DRAFT", w["state"])
		_, started, actions, _ := fw.snapshot()
		assert.Empty(t, started)
		assert.Empty(t, actions)
		assert.Len(t, waveMembers(t, e, id), 2)
	})
}

// TestConsoleWaveLargeGroups: a state's group shows at most 200 rows and
// says how many more there are, so a page of a big wave stays a page.
func TestConsoleWaveLargeGroups(t *testing.T) {
	s := testdb.Open(t, store.SQLite)
	fw := newFakeWaves(s)
	fw.tasks = newFakeEngine(s)
	e := newEnvWith(t, s, envOptions{engine: fw.tasks, taskOptions: taskOpts, waves: fw})
	id := seedWave(t, e, 630) // 210 copying, 210 syncing, 210 done
	b := newBrowser(t, e)
	b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
	live := b.get("/console/waves/" + id + "/live")
	require.Equal(t, http.StatusOK, live.status)
	bars := regexp.MustCompile(`<progress max="100" value="\d+" aria-label="[^"]+ copied">`).FindAllString(live.body, -1)
	assert.Len(t, bars, 600, "200 rows a group")
	assert.Equal(t, 3, strings.Count(live.body, "and 10 more in this state"))
	assert.Contains(t, live.body, `<span class="badge m-COPYING">COPYING</span> 210</h2>`)
}

// TestConsoleDashboardLinksWaves: the dashboard's waves table opens each
// wave's page, so an operator goes from the overview to the live wave.
func TestConsoleDashboardLinksWaves(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, fw *fakeWaves) {
		f := newWaveFixture(t, e, 1)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		id := createWave(t, e, waveJSON("dash", f.project, `[{"source_id":`+q(f.sources[0])+`}]`))
		r := b.get("/console/")
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.body, `<a href="/console/waves/`+id+`">dash</a>`)
	})
}
