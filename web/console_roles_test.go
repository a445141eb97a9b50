package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/iam"
)

// readOnly is the reason a viewer's buttons carry.
const readOnly = `disabled title="SMS.9004: read-only role: viewer"`

var buttonTag = regexp.MustCompile(`<button([^>]*)>([^<]*)</button>`)

// actionButtons are a page's buttons that change something: every one
// but signing out and the filters (GET forms).
func actionButtons(body string) map[string]string {
	out := map[string]string{}
	for _, m := range buttonTag.FindAllStringSubmatch(body, -1) {
		switch label := strings.TrimSpace(m[2]); label {
		case "Sign out", "Filter":
		default:
			out[label] = m[1]
		}
	}
	return out
}

// TestConsoleViewerSeesDisabledActions: a viewer's pages offer every
// action a page has, disabled with the role's reason, and no enabled
// submit nor create link; an operator's same pages have them enabled. The
// server still refuses a viewer's post (TestConsoleViewer).
func TestConsoleViewerSeesDisabledActions(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 2)
		tid := createTask(t, e, e.token, taskBody("src-0", f.sources[0]))
		tpl := createTemplate(t, e, e.token, "tpl-roles")
		wid := createWave(t, e, waveJSON("roles", f.project, `[{"source_id":`+q(f.sources[1])+`}]`))

		_, vpw, err := e.iam.CreateUserRole(context.Background(), iam.BootstrapDomain, "vic", "", iam.RoleViewer)
		require.NoError(t, err)
		_, opw, err := e.iam.CreateUserRole(context.Background(), iam.BootstrapDomain, "olga", "", iam.RoleOperator)
		require.NoError(t, err)
		viewer, operator := newBrowser(t, e), newBrowser(t, e)
		viewer.signIn(iam.BootstrapDomain, "vic", vpw)
		operator.signIn(iam.BootstrapDomain, "olga", opw)

		pages := []struct {
			path string
			// created: the create link the operator gets, a disabled
			// button for the viewer ("" for none).
			created string
		}{
			{"/console/tasks/" + tid, ""},
			{"/console/tasks/" + tid + "/live", ""},
			{"/console/sources", ""},
			{"/console/sources/" + f.sources[1], "/console/sources/" + f.sources[1] + "/task"},
			{"/console/sources/" + f.sources[1] + "/task", ""},
			{"/console/projects", "/console/projects/new"},
			{"/console/projects/new", ""},
			{"/console/projects/" + f.project, ""},
			{"/console/templates", "/console/templates/new"},
			{"/console/templates/new", ""},
			{"/console/templates/" + tpl, ""},
			{"/console/waves", "/console/waves/new"},
			{"/console/waves/new", ""},
			{"/console/waves/" + wid, ""},
			{"/console/waves/" + wid + "/live", ""},
			{"/console/waves/" + wid + "/edit", ""},
		}
		for _, p := range pages {
			v := viewer.get(p.path)
			require.Equal(t, http.StatusOK, v.status, p.path)
			o := operator.get(p.path)
			require.Equal(t, http.StatusOK, o.status, p.path)

			vb, ob := actionButtons(v.body), actionButtons(o.body)
			assert.NotEmpty(t, vb, "%s has actions", p.path)
			for label, attrs := range vb {
				assert.Contains(t, attrs, readOnly, "%s: the viewer's %q", p.path, label)
			}
			for label, attrs := range ob {
				assert.NotContains(t, attrs, "SMS.9004", "%s: the operator's %q", p.path, label)
			}
			assert.NotContains(t, o.body, "read-only role", p.path)
			if p.created != "" {
				assert.Contains(t, o.body, `href="`+p.created+`"`, p.path)
				assert.NotContains(t, v.body, `href="`+p.created+`"`, "%s: no create link for a viewer", p.path)
			}
		}

		// The operator's submits are enabled where nothing but the role
		// would disable them.
		for path, want := range map[string]string{
			"/console/projects/new":                      `<button type="submit" class="primary">Create</button>`,
			"/console/templates/" + tpl:                  `<button type="submit" class="primary">Save</button>`,
			"/console/tasks/" + tid:                      `<button type="submit" class="primary">Save speed limits</button>`,
			"/console/sources/" + f.sources[1] + "/task": `<button type="submit" class="primary">Create task</button>`,
		} {
			assert.Contains(t, operator.get(path).body, want, path)
			assert.Contains(t, viewer.get(path).body, `class="primary" `+readOnly+`>`, path)
		}
		assert.Contains(t, operator.get("/console/tasks/"+tid).body,
			`<button type="submit" name="operation" value="start">Start</button>`)
		assert.Contains(t, viewer.get("/console/tasks/"+tid).body,
			`<button type="submit" name="operation" value="start" `+readOnly+`>Start</button>`)

		// Disabled in the page, refused by the server all the same.
		r := viewer.post("/console/tasks/"+tid+"/action", url.Values{"operation": {"start"}, "csrf": {viewer.csrf}})
		assert.Equal(t, http.StatusForbidden, r.status)
		assert.Contains(t, r.body, "SMS.9004")
	})
}
