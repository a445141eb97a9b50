package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/sms/layout"
	"github.com/smsflow/smsflow/web"
)

// TestSourceDiskSizes (issue 8, finding 5): absurd disk sizes and a used
// size over the disk's are refused at registration.
func TestSourceDiskSizes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		disk := func(size, used int64) string {
			return withJSON(t, linuxSource("big", nextMAC()), func(m map[string]any) {
				d := m["disks"].([]any)[0].(map[string]any)
				d["size"], d["used_size"] = size, used
			})
		}
		cases := []struct {
			name       string
			size, used int64
			param      string
		}{
			{"size 2^63-1", 1<<63 - 1, 0, "disks[0].size"},
			{"size over the maximum", layout.MaxDiskSize + 1, 0, "disks[0].size"},
			{"used over the maximum", layout.MaxDiskSize, layout.MaxDiskSize + 1, "disks[0].used_size"},
			{"used over size", 1 << 30, 1<<30 + 1, "disks[0].used_size"},
		}
		for _, c := range cases {
			r := e.do("POST", "/v3/sources", disk(c.size, c.used), e.token)
			params := wantError(t, r, http.StatusBadRequest, "SMS.9001", c.name)
			assert.Contains(t, params, c.param, c.name)
		}
		r := e.do("POST", "/v3/sources", disk(layout.MaxDiskSize, layout.MaxDiskSize), e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		src := e.do("GET", "/v3/sources/"+r.json(t)["id"].(string), "", e.token).json(t)
		rec := src["init_target_server"].(map[string]any)["disks"].([]any)[0].(map[string]any)
		assert.EqualValues(t, layout.MaxDiskSize, rec["size"], "the largest accepted size is recommended as is")
	})
}

// TestHardening (issue 8, finding 5): every answer is nosniff and no-store
// (tokens, passwords and tenant data stay out of caches), a query over the
// limit answers the spec's body with a request id, and the version links do
// not echo the Host header.
func TestHardening(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := e.do("POST", "/v3/vm/templates", specTemplate, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		tpl := r.json(t)["id"].(string)
		for _, c := range []struct {
			method, path, token string
			status              int
		}{
			{"GET", "/v3/vm/templates/" + tpl + "/target-password", e.token, http.StatusOK},
			{"GET", "/v3/vm/templates/" + tpl + "/target-password", e.other, http.StatusNotFound},
			{"GET", "/v3/tasks", "", http.StatusUnauthorized},
			{"GET", "/v3/no-such-route", e.token, http.StatusNotFound},
			{"GET", "/", "", http.StatusOK},
		} {
			r := e.do(c.method, c.path, "", c.token)
			assert.Equal(t, c.status, r.status, c.path)
			assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"), c.path)
			assert.Equal(t, "no-store", r.header.Get("Cache-Control"), c.path)
		}
		// The token answer (the login itself).
		body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":` + q(e.creds.User) +
			`,"password":` + q(e.creds.Password) + `,"domain":{"name":` + q(e.creds.DomainName) + `}}}},"scope":{"domain":{"name":` + q(e.creds.DomainName) + `}}}}`
		r = e.do("POST", "/v3/auth/tokens", body, "")
		require.Equal(t, http.StatusCreated, r.status, r.body)
		assert.Equal(t, "no-store", r.header.Get("Cache-Control"))

		// A query over the limit, with or without credentials.
		long := "/v3/tasks?name=" + strings.Repeat("x", web.MaxQueryBytes)
		for _, token := range []string{e.token, ""} {
			r = e.do("GET", long, "", token)
			assert.Equal(t, []string{"query"}, wantError(t, r, http.StatusRequestURITooLong, "SMS.9001"))
		}
		r = e.do("GET", "/v3/tasks?name="+strings.Repeat("x", 255), "", e.token)
		assert.Equal(t, http.StatusOK, r.status, r.body)

		// The links are relative, whatever Host says.
		r = e.doH("GET", "/", "", map[string]string{"Host": "evil.example"})
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.NotContains(t, r.body, "evil.example")
		assert.Contains(t, r.body, `"href":"/v3/"`)
	})
}
