package web_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTokenIssue(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := e.creds
		body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","password":` + q(c.Password) +
			`,"domain":{"name":"smsflow"}}}},"scope":{"project":{"id":` + q(c.ProjectID) + `}}}}`
		r := e.do("POST", "/v3/auth/tokens", body, "")
		require.Equal(t, http.StatusCreated, r.status, r.body)
		tok := r.header.Get("X-Subject-Token")
		assert.Len(t, tok, 64)
		assert.NotEmpty(t, r.header.Get("X-Request-Id"))
		m := r.json(t)["token"].(map[string]any)
		exp, err := time.Parse(time.RFC3339Nano, m["expires_at"].(string))
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now().Add(24*time.Hour), exp, time.Minute)
		assert.Equal(t, "admin", m["user"].(map[string]any)["name"])
		assert.Equal(t, c.DomainID, m["domain"].(map[string]any)["id"])
		assert.Equal(t, c.ProjectID, m["project"].(map[string]any)["id"])

		// The token now works.
		r = e.do("GET", "/v3/migprojects", "", tok)
		assert.Equal(t, http.StatusOK, r.status, r.body)
	})
}

func TestTokenIssueRefusals(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := e.creds
		cases := []struct {
			name   string
			body   string
			status int
			code   string
		}{
			{"wrong password", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","password":"nope-nope","domain":{"name":"smsflow"}}}}}}`, 401, "SMS.6521"},
			{"unknown user", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"eve","password":"x","domain":{"name":"smsflow"}}}}}}`, 401, "SMS.6521"},
			{"unknown domain", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","password":"x","domain":{"name":"nowhere"}}}}}}`, 401, "SMS.6521"},
			{"other domain's project", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","password":` + q(c.Password) + `,"domain":{"name":"smsflow"}}}},"scope":{"project":{"name":"p"}}}}`, 403, "SMS.9003"},
			{"no user", `{"auth":{"identity":{"methods":["password"]}}}`, 400, "SMS.6013"},
			{"no domain", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","password":"x"}}}}}`, 400, "SMS.6013"},
			{"other method", `{"auth":{"identity":{"methods":["token"],"password":{"user":{"name":"admin","password":"x","domain":{"name":"smsflow"}}}}}}`, 400, "SMS.9001"},
			{"password not a string", `{"auth":{"identity":{"password":{"user":{"name":"admin","password":1,"domain":{"name":"smsflow"}}}}}}`, 400, "SMS.9001"},
			{"not json", `{"auth":`, 400, "SMS.6010"},
			{"empty", ``, 400, "SMS.6012"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do("POST", "/v3/auth/tokens", tc.body, "")
				assert.Equal(t, tc.status, r.status, r.body)
				code, _ := r.smsError(t)
				assert.Equal(t, tc.code, code)
				assert.Empty(t, r.header.Get("X-Subject-Token"))
			})
		}
	})
}

func TestAuthRequired(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		cases := []struct {
			name    string
			headers map[string]string
			code    string
		}{
			{"none", nil, "SMS.6522"},
			{"bad token", map[string]string{"X-Auth-Token": "not-a-token"}, "SMS.6521"},
			{"bad signature", map[string]string{"Authorization": "SDK-HMAC-SHA256 Access=" + e.creds.AK + ", SignedHeaders=x-sdk-date, Signature=00", "X-Sdk-Date": time.Now().UTC().Format("20060102T150405Z")}, "SMS.0202"},
			{"unknown AK", map[string]string{"Authorization": "SDK-HMAC-SHA256 Access=NOPE0000000000000000, SignedHeaders=x-sdk-date, Signature=00", "X-Sdk-Date": time.Now().UTC().Format("20060102T150405Z")}, "SMS.0202"},
			{"garbage authorization", map[string]string{"Authorization": "SDK-HMAC-SHA256 garbage"}, "SMS.0202"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				for _, path := range []string{"/v3/migprojects", "/v3/vm/templates", "/v3/migprojects/x", "/v3/vm/templates/x/target-password"} {
					r := e.doH("GET", path, "", tc.headers)
					assert.Equal(t, http.StatusUnauthorized, r.status, path)
					code, _ := r.smsError(t)
					assert.Equal(t, tc.code, code, path)
				}
			})
		}
	})
}

func TestRevokedTokenStopsWorking(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := e.do("GET", "/v3/migprojects", "", e.other)
		require.Equal(t, http.StatusOK, r.status)
		_, err := e.iam.RevokeTokens(t.Context(), "other", "bob")
		require.NoError(t, err)
		r = e.do("GET", "/v3/migprojects", "", e.other)
		assert.Equal(t, http.StatusUnauthorized, r.status)
	})
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := e.do("GET", "/v3/nothing-here", "", e.token)
		assert.Equal(t, http.StatusNotFound, r.status)
		code, _ := r.smsError(t)
		assert.Equal(t, "SMS.9001", code)

		r = e.do("PATCH", "/v3/migprojects", "{}", e.token)
		assert.Equal(t, http.StatusMethodNotAllowed, r.status)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.9001", code)

		r = e.do("GET", "/healthz", "", "")
		assert.Equal(t, http.StatusOK, r.status)
		assert.NotEmpty(t, r.header.Get("X-Request-Id"), "success answers carry a request id too")
		r = e.do("GET", "/readyz", "", "")
		assert.Equal(t, http.StatusOK, r.status)
	})
}
