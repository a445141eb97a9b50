package web_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/headless"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/wave"
)

// TestConsoleWaveInBrowser drives the wave pages in headless Chromium:
// sign in, create a wave from a CSV upload of sources agents registered,
// start it, watch it replicate on its live page, approve its cutover (the
// confirmation accepted), see it reach DONE, and download its report, with
// no console error on any page. The wave's run is played by the store
// writes the workflow makes (the engine is the handler tests' fake): the
// pages are under test here, the workflow in e2e.
func TestConsoleWaveInBrowser(t *testing.T) {
	ctx, pageErrors := headless.Start(t, 2*time.Minute)
	s := testdb.Open(t, store.SQLite)
	fw := newFakeWaves(s)
	fw.tasks = newFakeEngine(s)
	e := newEnvWith(t, s, envOptions{engine: fw.tasks, taskOptions: taskOpts, waves: fw})
	base := e.srv.URL
	project := createMigProject(t, e, e.token, "east-dc")
	for _, name := range []string{"web-01", "web-02", "db-01"} {
		register(t, e, e.token, linuxSource(name, nextMAC()))
	}
	csvPath := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(csvPath, []byte("name,target_name,priority\nweb-01,web-01-new,2\nweb-02,,1\ndb-01,db-01-new,0\n"), 0o600))

	// The cutover's confirmation dialog is accepted, as an operator would.
	asked := headless.AcceptDialogs(t, ctx)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/console/login?next=%2Fconsole%2Fwaves%2Fnew"),
		chromedp.WaitVisible(chromedp.ID("domain")),
		chromedp.SendKeys(chromedp.ID("domain"), e.creds.DomainName),
		chromedp.SendKeys(chromedp.ID("user"), e.creds.User),
		chromedp.SendKeys(chromedp.ID("password"), e.creds.Password),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS("form.wave-form")),
		chromedp.SendKeys(chromedp.ID("name"), "east-wave-1"),
		chromedp.SetValue(chromedp.ID("project_id"), project),
		chromedp.SetValue(chromedp.ID("time_zone"), "Europe/Berlin"),
		chromedp.SetValue(chromedp.ID("max_concurrent"), "2"),
		chromedp.SetValue(chromedp.ID("budget_default"), "400"),
		chromedp.SendKeys(chromedp.CSS(`input[name="bw_start_0"]`), "08:00"),
		chromedp.SendKeys(chromedp.CSS(`input[name="bw_end_0"]`), "18:00"),
		chromedp.Click(chromedp.CSS(`input[name="bw_days_0"][value="MON"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="bw_mbps_0"]`), "100"),
		chromedp.SetValue(chromedp.ID("cutover_mode"), "approve"),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{csvPath}),
	))
	headless.Screenshot(t, ctx, "wave-form")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.ID("wave-state"))))
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("wave-state")))
	require.NoError(t, err)
	assert.Equal(t, "DRAFT", text)
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	id := strings.TrimPrefix(loc, base+"/console/waves/")
	require.Len(t, waveMembers(t, e, id), 3, "the file's three rows")

	// Start: the API's path makes the members' tasks and starts the run.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`button[data-op="start"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.badge.w-REPLICATING`))))
	_, started, _, _ := fw.snapshot()
	assert.Equal(t, []string{id}, started)

	// The run copies: members move, progress and samples arrive; the live
	// fragment shows them without a reload.
	ctxb := context.Background()
	ten := tenantOf(e)
	t0 := time.Now().Add(-20 * time.Minute)
	db := e.store.DB()
	require.NoError(t, db.Model(&store.Wave{}).Where("id = ?", id).Update("started_at", t0.UTC()).Error)
	ms := waveMembers(t, e, id)
	for i, m := range ms {
		require.NotNil(t, m.TaskID)
		st := wave.MemberCopying
		if i == 0 {
			st = wave.MemberSyncing
		}
		require.NoError(t, db.Model(&store.WaveMember{}).Where("id = ?", m.ID).
			Updates(map[string]any{"state": string(st), "share_mbps": 50, "bytes_total": int64(8 << 30)}).Error)
		for k := range int64(20) {
			require.NoError(t, e.store.UpdateTaskProgress(ctxb, ten, *m.TaskID, func(tk *store.Task) error {
				tk.LastProgressAt = t0.UnixMilli() + k*60_000
				tk.MigrateSpeed = 40 + float64((k+int64(i))%5)*3
				tk.CurrentLimit = 50
				tk.Totalsize = 8 << 30
				tk.Replicatesize = min((k+1)*(8<<30)/20*int64(3-i)/3, 8<<30)
				return nil
			}))
		}
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`section[data-state="COPYING"]`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.chart polyline.speed`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.chart polyline.limit`))))
	headless.Screenshot(t, ctx, "wave")

	// Every member synced: the wave waits for the cutover's approval, and
	// its button is enabled by the next tick.
	require.NoError(t, db.Model(&store.WaveMember{}).Where("wave_id = ?", id).
		Updates(map[string]any{"state": string(wave.MemberSyncing)}).Error)
	setWaveState(t, e, id, wave.WaveAwaitingCutover)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`.badge.w-AWAITING_CUTOVER`)),
		chromedp.WaitEnabled(chromedp.CSS(`button[data-op="approve_cutover"]`)),
		chromedp.Click(chromedp.CSS(`button[data-op="approve_cutover"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.badge.w-AWAITING_CUTOVER`))))
	require.Eventually(t, func() bool {
		_, _, actions, _ := fw.snapshot()
		return len(actions) == 1 && actions[0] == id+":approve_cutover"
	}, 10*time.Second, 50*time.Millisecond, "the approval reached the run")
	assert.Equal(t, []string{"Approve the cutover? Each member's final sync runs and its target server is launched."}, asked(),
		"the approval was confirmed first")

	// The run cuts over and finishes.
	now := time.Now().UTC()
	require.NoError(t, db.Model(&store.WaveMember{}).Where("wave_id = ?", id).
		Updates(map[string]any{"state": string(wave.MemberDone), "downtime_seconds": 42.0, "verification": "PASSED",
			"copy_started_at": t0.UTC(), "copy_ended_at": t0.Add(15 * time.Minute).UTC(), "synced_at": t0.Add(15 * time.Minute).UTC(),
			"cutover_started_at": now.Add(-time.Minute), "target_started_at": now}).Error)
	require.NoError(t, db.Model(&store.Wave{}).Where("id = ?", id).
		Updates(map[string]any{"state": string(wave.WaveDone), "done_count": 3, "finished_at": now}).Error)
	for _, m := range ms {
		require.NoError(t, e.store.UpdateTaskProgress(ctxb, ten, *m.TaskID, func(tk *store.Task) error {
			tk.LastProgressAt, tk.Replicatesize, tk.MigrateSpeed = now.UnixMilli(), 8<<30, 0
			return nil
		}))
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`.badge.w-DONE`)),
		chromedp.WaitVisible(chromedp.CSS(`section[data-state="DONE"]`))))
	done, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`section[data-state="DONE"] table`)))
	require.NoError(t, err)
	assert.Equal(t, 3, strings.Count(done, "42s"), "each member's downtime: %s", done)
	// The head, outside the live fragment, follows it (out of band).
	finished, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`!document.querySelector('form[action$="/delete"] button').disabled && !document.querySelector('form[action$="/members"]')`))
	require.NoError(t, err)
	assert.True(t, finished, "the finished wave may be deleted, and takes no more members")
	headless.Screenshot(t, ctx, "wave-done")

	// The report: a table, and its CSV as the browser downloads it (the
	// session's cookie, nothing else).
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/console/waves/"+id+"/report"),
		chromedp.WaitVisible(chromedp.ID("report-csv"))))
	text, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("table.report")))
	require.NoError(t, err)
	for _, name := range []string{"web-01", "web-02", "db-01"} {
		assert.Contains(t, text, name)
	}
	assert.Contains(t, text, "PASSED")
	headless.Screenshot(t, ctx, "wave-report")
	csvText, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`fetch(document.getElementById("report-csv").href, {credentials: "same-origin"}).then(r => r.text())`,
		chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(csvText, "member_id,source_id,source_name,"), csvText)
	assert.Equal(t, 3, strings.Count(csvText, ",DONE,"), csvText)
	assert.Contains(t, csvText, "42.0")

	for _, p := range []struct{ path, wait string }{
		{"/console/waves", "table"},
		{"/console/waves/" + id + "/preflight", "#preflight-result"},
		{"/console/waves/" + id + "/edit", "form.wave-form"},
	} {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait))), p.path)
	}
	headless.Screenshot(t, ctx, "wave-edit")
	assert.Empty(t, pageErrors(), "the pages reported errors")
}
