package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/headless"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// TestConsoleInBrowser drives the console in headless Chromium: sign in
// through the form, a validation error next to its field, create a
// project, then every page loads with no console error.
func TestConsoleInBrowser(t *testing.T) {
	ctx, pageErrors := headless.Start(t, 2*time.Minute)
	s := testdb.Open(t, store.SQLite)
	e := newEnvWithEngine(t, s, newFakeEngine(s), taskOpts)
	base := e.srv.URL
	sid := register(t, e, e.token, linuxSource("web-01", "52:54:00:00:00:11"))
	tid := createTask(t, e, e.token, taskBody("web-01", sid))
	setTask(t, e, tid, map[string]any{"state": "RUNNING", "replicatesize": int64(1 << 30), "totalsize": int64(8 << 30),
		"migrate_speed": 380.0, "remain_seconds": int64(600)})

	// An operator opening the server's root lands on the sign-in page.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("domain"))))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	assert.Equal(t, base+"/console/login?next=%2Fconsole%2F", loc)
	headless.Screenshot(t, ctx, "login")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("domain"), e.creds.DomainName),
		chromedp.SendKeys(chromedp.ID("user"), e.creds.User),
		chromedp.SendKeys(chromedp.ID("password"), e.creds.Password),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS(".tiles"))))
	h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main h1")))
	require.NoError(t, err)
	assert.Equal(t, "Dashboard", h1)

	// A name too short: the API's code next to the field, the form kept.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/console/projects/new"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "x"),
		chromedp.Clear(chromedp.ID("speed_limit")),
		chromedp.SendKeys(chromedp.ID("speed_limit"), "250"),
		chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.CSS(".field.invalid .ferr"))))
	ferr, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".field.invalid .ferr")))
	require.NoError(t, err)
	assert.Contains(t, ferr, "SMS.9001")
	headless.Screenshot(t, ctx, "project-form-error")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("name"), "east-dc"),
		chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.CSS("table tbody a"))))
	table, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("table")))
	require.NoError(t, err)
	assert.Contains(t, table, "east-dc")
	assert.Contains(t, table, "250")
	assert.Contains(t, e.do("GET", "/v3/migprojects", "", e.token).body, `"east-dc"`)

	// A template through its form; the password never comes back.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/console/templates/new"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "web-tier"),
		chromedp.SendKeys(chromedp.ID("flavor"), "s6.large"),
		chromedp.SendKeys(chromedp.ID("target_password"), "S3cret-pw!")))
	headless.Screenshot(t, ctx, "template-form")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.CSS("td.actions"))))
	table, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("table")))
	require.NoError(t, err)
	assert.Contains(t, table, "web-tier")
	assert.Contains(t, table, "s6.large")

	for _, p := range []struct{ path, name, wait string }{
		{"/console/", "dashboard", ".tiles"},
		{"/console/projects", "projects", "table"},
		{"/console/sources", "sources", "table"},
		{"/console/sources/" + sid, "source", "dl.kv"},
		{"/console/tasks", "tasks", "table"},
		{"/console/templates", "templates", "main h1"},
		{"/console/waves", "waves", "main h1"},
	} {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(base+p.path),
			chromedp.WaitVisible(chromedp.CSS(p.wait))), p.path)
		title, err := chromedp.Run(ctx, chromedp.Title())
		require.NoError(t, err)
		assert.NotContains(t, title, "Not found", p.path)
		headless.Screenshot(t, ctx, p.name)
	}

	// The task page's bar advances without a reload: its fragment is polled.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/console/tasks/"+tid),
		chromedp.WaitVisible(chromedp.CSS(`progress.big[value="12"]`))))
	// Progress reports (as the agent's arrive) move the bar and add
	// points to the speed chart, with the limit in force.
	ten := store.Tenant{DomainID: taskRow(t, e, tid).DomainID}
	t0 := time.Now().Add(-20 * time.Minute).UnixMilli()
	for i := range int64(40) {
		require.NoError(t, e.store.UpdateTaskProgress(context.Background(), ten, tid, func(tk *store.Task) error {
			tk.LastProgressAt = t0 + i*30_000
			tk.MigrateSpeed = 300 + float64(i%7)*25
			tk.CurrentLimit = 500
			tk.Replicatesize = min(int64(1<<30)+i*(3<<30)/39, int64(4<<30))
			if i == 39 {
				tk.MigrateSpeed = 512
			}
			return nil
		}))
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`progress.big[value="50"]`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.chart polyline.speed`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.chart polyline.limit`))))
	headless.Screenshot(t, ctx, "task")
	stats, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".stats")))
	require.NoError(t, err)
	assert.Contains(t, stats, "4.0 GiB of 8.0 GiB")
	assert.Contains(t, stats, "512.0 Mbit/s")

	assert.Empty(t, pageErrors(), "the pages reported errors")
}
