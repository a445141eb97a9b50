package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/testkit/diskimage"
	"github.com/smsflow/smsflow/internal/testkit/headless"
)

// signIn opens path on s's console, which asks the browser to sign in
// first, and signs in with the domain's admin credentials; the console
// then goes on to path (the caller waits for what it shows).
func signIn(t *testing.T, ctx context.Context, s *server, path string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate("http://"+s.http+path),
		chromedp.WaitVisible(chromedp.ID("domain")),
		chromedp.SendKeys(chromedp.ID("domain"), s.creds.DomainName),
		chromedp.SendKeys(chromedp.ID("user"), s.creds.User),
		chromedp.SendKeys(chromedp.ID("password"), s.creds.Password),
		chromedp.Submit(chromedp.ID("password"))), "sign in on the way to %s", path)
}

// TestConsoleRealAgentInBrowser: an operator in headless Chromium signs in
// to `smsflow serve`, sees the source a real sms-agent registers appear,
// creates its task with the source page's form (8 Mbit/s: the copy of
// the image's ~120 MB lasts two minutes), watches the progress bar advance and the speed
// chart gain points, stops and starts the run with the buttons (the stop
// confirmed), and no page reports an error.
func TestConsoleRealAgentInBrowser(t *testing.T) {
	ctx, pageErrors := headless.Start(t, 5*time.Minute)
	s := newServer(t)
	base := "http://" + s.http

	signIn(t, ctx, s, "/console/sources")
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(".emptystate pre.cmd"))))
	install, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".emptystate pre.cmd")))
	require.NoError(t, err)
	assert.Contains(t, install, "--server "+base, "the install command names this server")
	assert.Contains(t, install, "--project "+s.creds.ProjectID)

	img := filepath.Join(t.TempDir(), "vda.img")
	require.NoError(t, diskimage.Source(img, 256<<20, 31))
	a := startAgent(t, s, "--name", "web-01", "--disk-image", "/dev/vda="+img, "--only-images")
	require.Eventually(t, func() bool {
		if chromedp.Do(ctx, chromedp.Navigate(base+"/console/sources")) != nil {
			return false
		}
		body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		return err == nil && strings.Contains(body, "web-01") && strings.Contains(body, "connected")
	}, 60*time.Second, time.Second, "the source appears\n%s", lastLines(a.log.String(), 20))
	headless.Screenshot(t, ctx, "sources")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`td a[href^="/console/sources/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href$="/task"]`)),
		chromedp.Click(chromedp.CSS(`a[href$="/task"]`)),
		chromedp.WaitVisible(chromedp.ID("speed_limit"))))
	name, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("name")))
	require.NoError(t, err)
	assert.Equal(t, "web-01", name, "prefilled from the source")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("speed_limit"), "8"),
		chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.CSS("progress.big"))))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.Contains(t, loc, "/console/tasks/")
	id := loc[strings.LastIndex(loc, "/")+1:]

	progress := func() int {
		v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("progress.big"), "value"))
		if err != nil {
			return -1
		}
		n, _ := strconv.Atoi(v.Value)
		return n
	}
	points := func() int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](
			`(document.querySelector("svg.chart polyline.speed")?.getAttribute("points") || "").trim().split(/\s+/).filter(Boolean).length`))
		if err != nil {
			return -1
		}
		return n
	}
	state := func() string {
		st, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#live .badge")))
		if err != nil {
			return ""
		}
		return st
	}
	// The live fragment moves the bar and grows the chart without a reload.
	require.Eventually(t, func() bool { return progress() > 0 }, 90*time.Second, time.Second,
		"the copy starts\n%s", lastLines(a.log.String(), 20))
	p0, c0 := progress(), points()
	require.Eventually(t, func() bool { return progress() > p0 && points() > c0 && points() >= 2 }, 60*time.Second, time.Second,
		"the bar advances and the chart gains points (from %d%%, %d points)", p0, c0)
	if os.Getenv("SMSFLOW_SCREENSHOTS") != "" {
		// For the picture only: a tick whose speed is not zero (the agent
		// measures over 500 ms windows, which a low limit leaves empty).
		for range 20 {
			if st, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".stats"))); err == nil && !strings.Contains(st, " 0.0 Mbit/s") {
				break
			}
			_ = chromedp.Do(ctx, chromedp.Sleep(time.Second))
		}
	}
	headless.Screenshot(t, ctx, "task")

	// Stop, then start, with the buttons. The stop asks first: the
	// operator's answer (yes) is given by a confirm() that records the
	// question where the next page can read it.
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](
		`window.confirm = function (m) { sessionStorage.setItem("asked", m); return true; }; true`))
	require.NoError(t, err)
	press := func(op string) {
		t.Helper()
		// A DOM click, as the operator's: the live fragment above the
		// buttons grows while the page polls, so a click at computed
		// coordinates could land elsewhere.
		_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
			`document.querySelector('button[name="operation"][value="`+op+`"]').click(); true`))
		require.NoError(t, err)
	}
	press("stop")
	require.Eventually(t, func() bool { return state() == "ABORT" }, 60*time.Second, 500*time.Millisecond, "stopped: %s", state())
	asked, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("asked") || ""`))
	require.NoError(t, err)
	assert.Contains(t, asked, "Stop this migration?", "the stop was confirmed first")
	stopped := progress()
	require.Eventually(t, func() bool {
		_ = chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("progress.big")))
		dis, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`button[name="operation"][value="start"]`), "disabled"))
		return err == nil && !dis.Exists
	}, 30*time.Second, time.Second, "start is offered once stopped")
	press("start")
	require.Eventually(t, func() bool { return state() == "RUNNING" && progress() > stopped }, 90*time.Second, time.Second,
		"started again, the copy goes on from %d%%: %s\n%s", stopped, state(), lastLines(a.log.String(), 20))

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS(".tiles"))))
	headless.Screenshot(t, ctx, "dashboard")
	assert.Equal(t, "RUNNING", s.task(id).State)
	assert.Empty(t, pageErrors(), "the pages reported errors")
}
