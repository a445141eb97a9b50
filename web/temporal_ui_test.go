package web_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// TestTemporalUIProxy: /temporal/ reaches the UI for the administrator only
// (token, Basic sign-in then its cookie), never for anonymous callers, bad
// passwords or users of other domains; the UI never sees smsflow's
// credentials.
func TestTemporalUIProxy(t *testing.T) {
	var seen http.Header
	ui := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		_, _ = io.WriteString(w, "temporal ui at "+r.URL.Path)
	}))
	t.Cleanup(ui.Close)
	backend, err := url.Parse(ui.URL)
	require.NoError(t, err)
	e := newEnvWith(t, testdb.Open(t, store.SQLite), envOptions{uiBackend: backend})

	get := func(path string, h map[string]string) response {
		t.Helper()
		seen = nil
		return e.doH("GET", path, "", h)
	}
	basic := func(user, pw string) map[string]string {
		return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))}
	}

	refusals := []struct {
		name    string
		headers map[string]string
		status  int
		code    string
	}{
		{"anonymous", nil, http.StatusUnauthorized, "SMS.6522"},
		{"bad token", map[string]string{"X-Auth-Token": "nope"}, http.StatusUnauthorized, "SMS.6521"},
		{"bad cookie", map[string]string{"Cookie": "smsflow_ui_token=nope"}, http.StatusUnauthorized, "SMS.6521"},
		{"wrong password", basic("smsflow/admin", "wrong-password"), http.StatusUnauthorized, "SMS.6521"},
		{"other domain's token", map[string]string{"X-Auth-Token": e.other}, http.StatusForbidden, "SMS.9003"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			r := get("/temporal/namespaces/default/workflows", tc.headers)
			assert.Equal(t, tc.status, r.status, r.body)
			code, _ := r.smsError(t)
			assert.Equal(t, tc.code, code)
			assert.Nil(t, seen, "the UI was reached")
			if tc.status == http.StatusUnauthorized {
				assert.Contains(t, r.header.Get("WWW-Authenticate"), "Basic")
			}
		})
	}

	// The administrator by token.
	r := get("/temporal/namespaces/default/workflows", map[string]string{"X-Auth-Token": e.token})
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "temporal ui at /temporal/namespaces/default/workflows", r.body)
	assert.Empty(t, seen.Get("X-Auth-Token"))

	// The administrator in a browser: Basic once, then the cookie.
	r = get("/temporal/", basic("admin", e.creds.Password))
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Empty(t, seen.Get("Authorization"))
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "smsflow_ui_token" {
			cookie = c
		}
	}
	require.NotNil(t, cookie)
	assert.True(t, cookie.HttpOnly)
	assert.Equal(t, "/temporal", cookie.Path)
	r = get("/temporal/api/v1/settings", map[string]string{"Cookie": "smsflow_ui_token=" + cookie.Value + "; _csrf=abc"})
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "_csrf=abc", seen.Get("Cookie"), "the token cookie stays with smsflow")
	assert.False(t, strings.Contains(seen.Get("Cookie"), cookie.Value))

	// A stale cookie beside the browser's Basic credentials: Basic decides.
	h := basic("smsflow/admin", e.creds.Password)
	h["Cookie"] = "smsflow_ui_token=expired"
	r = get("/temporal/", h)
	assert.Equal(t, http.StatusOK, r.status, r.body)
	h = basic("smsflow/admin", "wrong-password")
	h["Cookie"] = "smsflow_ui_token=expired"
	r = get("/temporal/", h)
	assert.Equal(t, http.StatusUnauthorized, r.status, r.body)
}
