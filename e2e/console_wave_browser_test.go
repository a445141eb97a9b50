package e2e

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/testkit/headless"
)

// lazy is a failure message made when it is printed (the values seen last
// by a require.Eventually, not those at its call).
type lazy func() string

func (f lazy) String() string { return f() }

// liveMember is a member's row on the wave page's live fragment.
type liveMember struct {
	State    string  `json:"state"`
	Name     string  `json:"name"`
	Percent  float64 `json:"percent"`
	Downtime string  `json:"downtime"`
}

// liveMembersJS reads every member row of the live fragment: its group's
// state, its source's name, its bar and its downtime cell.
const liveMembersJS = `Array.from(document.querySelectorAll("#live section.members")).flatMap(sec =>
  Array.from(sec.querySelectorAll("tbody tr")).map(tr => ({
    state: sec.dataset.state,
    name: tr.cells[0].querySelector("a").textContent.trim(),
    percent: Number(tr.cells[1].querySelector("progress").value),
    downtime: tr.cells[4].textContent.trim()})))`

// TestConsoleWaveRealAgentsInBrowser: an operator in headless Chromium,
// against `smsflow serve` and two real sms-agents, creates a wave from a
// CSV upload naming the agents' sources (cutover on approval, a budget
// that makes each copy last some seconds), checks its preflight, starts
// it, and watches its live page — without a reload — move the members'
// bars until the wave awaits its cutover; approves the cutover (the
// confirmation accepted), and the same page reaches DONE with each
// member's measured downtime; the report lists both members, and its CSV,
// downloaded by the page with the session's cookie, says DONE with a
// downtime for each. No page reports an error.
func TestConsoleWaveRealAgentsInBrowser(t *testing.T) {
	ctx, pageErrors := headless.Start(t, 4*time.Minute)
	asked := headless.AcceptDialogs(t, ctx)
	s := newServer(t)
	base := "http://" + s.http
	agents := waveAgents(t, s, "wbrow-01", "wbrow-02")
	project := s.defaultMigProject(t)
	members := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(members, []byte("name,target_name\nwbrow-01,wbrow-01-new\nwbrow-02,\n"), 0o600))

	// eval reads a value from the page; ok is false while the page is
	// between two documents.
	eval := func(js string, out any) bool {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
		return err == nil && (out == nil || json.Unmarshal(raw, out) == nil)
	}
	waveState := func() string {
		var st string
		eval(`document.getElementById("wave-state")?.textContent.trim() || ""`, &st)
		return st
	}
	live := func() []liveMember {
		var ms []liveMember
		eval(liveMembersJS, &ms)
		return ms
	}
	pageText := func() string {
		var b string
		eval(`document.body ? document.body.innerText : ""`, &b)
		return lastLines(b, 20)
	}
	// press clicks an action button of the wave page (a DOM click: the
	// live fragment is swapped every few seconds, a click at computed
	// coordinates could land on the swapped-out one), waits for the page
	// the action answers with, and marks that page: stillSamePage then
	// tells whether the browser is still on it (no reload, no navigation).
	press := func(op string) {
		t.Helper()
		require.True(t, eval(`window.smsPage = "before `+op+`"; true`, nil))
		var found bool
		// The click in a timeout: a confirm() blocks the page's script
		// until the dialog is answered.
		require.True(t, eval(`(b => { if (!b) return false; setTimeout(() => b.click(), 0); return true; })(
			document.querySelector('button[data-op="`+op+`"]'))`, &found))
		require.True(t, found, "the %s button", op)
		require.Eventually(t, func() bool {
			var landed bool
			return eval(`window.smsPage === undefined && document.readyState === "complete" &&
				!!document.getElementById("wave-state")`, &landed) && landed
		}, 30*time.Second, 100*time.Millisecond, "the wave page after %s\n%v", op, lazy(pageText))
		require.True(t, eval(`window.smsPage = "after `+op+`"; true`, nil))
	}
	stillSamePage := func(op string) {
		t.Helper()
		var mark string
		require.True(t, eval(`window.smsPage || ""`, &mark))
		assert.Equal(t, "after "+op, mark, "the page was reloaded or left since %s", op)
	}

	// Create: the form, with the members' file.
	signIn(t, ctx, s, "/console/waves/new")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("form.wave-form")),
		chromedp.SendKeys(chromedp.ID("name"), "wave-in-browser"),
		chromedp.SetValue(chromedp.ID("project_id"), project),
		chromedp.SetValue(chromedp.ID("type"), "MIGRATE_BLOCK"),
		chromedp.SetValue(chromedp.ID("syncing"), "yes"),
		chromedp.SetValue(chromedp.ID("time_zone"), "Europe/Berlin"),
		chromedp.SetValue(chromedp.ID("max_concurrent"), "2"),
		// 8 Mbit/s a member: each copy (~18 MB on the wire) lasts
		// about 18 s, several ticks of the page.
		chromedp.SetValue(chromedp.ID("budget_default"), "16"),
		chromedp.SetValue(chromedp.ID("cutover_mode"), "approve"),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{members})))
	headless.Screenshot(t, ctx, "wave-real-form")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("button.primary"))))
	require.Eventually(t, func() bool { return waveState() != "" }, 30*time.Second, 100*time.Millisecond,
		"the wave page after the form\n%v", lazy(pageText))
	require.Equal(t, "DRAFT", waveState())
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.Contains(t, loc, base+"/console/waves/")
	id := strings.TrimPrefix(loc, base+"/console/waves/")
	ms := live()
	require.Len(t, ms, 2, "the file's two rows: %+v", ms)
	for i, m := range ms {
		assert.Equal(t, "PENDING", m.State, m.Name)
		assert.Equal(t, agents[i].name, m.Name)
	}
	headless.Screenshot(t, ctx, "wave-real-draft")

	// Preflight, from the page's button: both agents have polled.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a.button[href$="/preflight"]`))))
	var preflight string
	read := func() bool {
		eval(`document.getElementById("preflight-result")?.textContent.trim() || ""`, &preflight)
		return preflight != ""
	}
	require.Eventually(t, read, 30*time.Second, 100*time.Millisecond, "the preflight page\n%v", lazy(pageText))
	require.Eventually(t, func() bool {
		if preflight == "ready" {
			return true
		}
		// Not yet: an agent has not polled since it registered.
		return chromedp.Do(ctx, chromedp.Reload()) == nil && read() && preflight == "ready"
	}, 60*time.Second, time.Second, "the preflight passes: %v", lazy(func() string { return fmt.Sprintf("%q\n%s", preflight, pageText()) }))
	headless.Screenshot(t, ctx, "wave-real-preflight")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.crumbs a[href="/console/waves/`+id+`"]`))))
	require.Eventually(t, func() bool { return waveState() == "DRAFT" }, 30*time.Second, 100*time.Millisecond,
		"back on the wave page\n%v", lazy(pageText))

	// Start; then the live fragment alone moves the page: the members'
	// bars advance, and the wave comes to await its cutover.
	press("start")
	// Every value each bar showed, in order, and the wave's own bar.
	bars := map[string][]float64{}
	var total []float64
	seen := func(vs []float64, v float64) []float64 {
		if len(vs) == 0 || vs[len(vs)-1] != v {
			vs = append(vs, v)
		}
		return vs
	}
	states := map[string]bool{}
	shot := false
	deadline := time.Now().Add(2 * time.Minute)
	for st := waveState(); st != "AWAITING_CUTOVER"; st = waveState() {
		switch {
		case slices.Contains([]string{"FAILED", "PAUSED", "CANCELED", "DONE"}, st):
			t.Fatalf("the wave is %s; it should await the approval\n%s\n%s", st, pageText(), lastLines(s.log.String(), 30))
		case time.Now().After(deadline):
			t.Fatalf("the wave is still %s after 2 min (members %+v)\n%s", st, live(), lastLines(s.log.String(), 30))
		}
		states[st] = true
		for _, m := range live() {
			bars[m.Name] = seen(bars[m.Name], m.Percent)
			if !shot && m.Percent > 0 && m.Percent < 100 { // the picture of a copy under way
				headless.Screenshot(t, ctx, "wave-real-replicating")
				shot = true
			}
		}
		var v float64
		if eval(`Number(document.querySelector("#live progress.big")?.value ?? -1)`, &v) && v >= 0 {
			total = seen(total, v)
		}
		time.Sleep(250 * time.Millisecond)
	}
	assert.True(t, states["REPLICATING"], "the page showed the wave replicating: %v", states)
	// Advancing: each bar showed two values or more between 0 and 100,
	// and never went back.
	under := func(vs []float64) int {
		n := 0
		for _, v := range vs {
			if v > 0 && v < 100 {
				n++
			}
		}
		return n
	}
	for _, a := range agents {
		vs := bars[a.name]
		assert.GreaterOrEqual(t, under(vs), 2, "%s: its bar advanced on the page: %v", a.name, vs)
		assert.IsNonDecreasing(t, vs, "%s: its bar", a.name)
	}
	assert.GreaterOrEqual(t, under(total), 2, "the wave's bar advanced on the page: %v", total)
	assert.IsNonDecreasing(t, total, "the wave's bar")
	ms = live()
	require.Len(t, ms, 2)
	for _, m := range ms {
		assert.Equal(t, "SYNCING", m.State, "%s: in sync when the wave awaits the cutover", m.Name)
		assert.Equal(t, 100.0, m.Percent, m.Name)
	}
	require.Eventually(t, func() bool {
		var enabled bool
		return eval(`!!document.querySelector('button[data-op="approve_cutover"]:not([disabled])')`, &enabled) && enabled
	}, 10*time.Second, 100*time.Millisecond, "approve cutover is offered")
	stillSamePage("start")
	headless.Screenshot(t, ctx, "wave-real-awaiting")

	// Approve (the confirmation accepted); the page goes on by itself to
	// DONE, each member with the downtime its cutover had.
	press("approve_cutover")
	assert.Equal(t, []string{"Approve the cutover? Each member's final sync runs and its target server is launched."}, asked(),
		"the approval was confirmed first, and nothing else was asked")
	var done []liveMember
	deadline = time.Now().Add(2 * time.Minute)
	for {
		st := waveState()
		done = live()
		if st == "DONE" && len(done) == 2 && done[0].State == "DONE" && done[1].State == "DONE" {
			break
		}
		switch {
		case slices.Contains([]string{"FAILED", "PAUSED", "CANCELED"}, st):
			t.Fatalf("the wave is %s after the approval\n%s\n%s", st, pageText(), lastLines(s.log.String(), 30))
		case time.Now().After(deadline):
			t.Fatalf("the page does not show the wave and both members DONE 2 min after the approval: %s %+v\n%s",
				st, done, lastLines(s.log.String(), 30))
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, m := range done {
		d, err := time.ParseDuration(m.Downtime)
		if assert.NoError(t, err, "%s: a measured downtime, not %q", m.Name, m.Downtime) {
			assert.Positive(t, d, "%s: downtime %q", m.Name, m.Downtime)
		}
	}
	// The page's head follows too: a finished wave may be deleted, and
	// takes no more members.
	var head struct {
		Deletable, Upload bool
	}
	require.True(t, eval(`({Deletable: !document.querySelector('form[action$="/delete"] button').disabled,
		Upload: !!document.querySelector('form[action$="/members"]')})`, &head))
	assert.True(t, head.Deletable, "Delete is offered for the finished wave")
	assert.False(t, head.Upload, "no upload of members into the finished wave")
	stillSamePage("approve_cutover")
	headless.Screenshot(t, ctx, "wave-real-done")

	// The report: a row a member; its CSV as the page downloads it.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a.button[href$="/report"]`)),
		chromedp.WaitVisible(chromedp.ID("report-csv"))))
	var rows []string
	require.True(t, eval(`Array.from(document.querySelectorAll("table.report tbody tr")).map(tr => tr.innerText)`, &rows))
	require.Len(t, rows, 2, "%q", rows)
	for i, a := range agents {
		assert.Contains(t, rows[i], a.name)
		assert.Contains(t, rows[i], "DONE")
		assert.Contains(t, rows[i], "PASSED", "%s: the verification", a.name)
	}
	headless.Screenshot(t, ctx, "wave-real-report")
	csvText, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`fetch(document.getElementById("report-csv").href).then(r => r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status)))`,
		chromedp.EvalAwaitPromise))
	require.NoError(t, err, "the report's CSV")
	recs, err := csv.NewReader(strings.NewReader(csvText)).ReadAll()
	require.NoError(t, err, csvText)
	require.Len(t, recs, 3, "a header and a row a member:\n%s", csvText)
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	assert.Equal(t, []string{"member_id", "source_id", "source_name", "task_id", "state"}, recs[0][:5], "the header")
	for _, h := range []string{"downtime_seconds", "verification"} {
		require.Contains(t, col, h, "the header: %q", recs[0])
	}
	for i, a := range agents {
		r := recs[1+i]
		assert.Equal(t, a.name, r[col["source_name"]])
		assert.Equal(t, a.src, r[col["source_id"]])
		assert.Equal(t, "DONE", r[col["state"]], a.name)
		assert.Equal(t, "PASSED", r[col["verification"]], a.name)
		dt, err := strconv.ParseFloat(r[col["downtime_seconds"]], 64)
		if assert.NoError(t, err, "%s: downtime_seconds %q", a.name, r[col["downtime_seconds"]]) {
			assert.Positive(t, dt, a.name)
		}
	}

	assert.Empty(t, pageErrors(), "the pages reported errors")
}
