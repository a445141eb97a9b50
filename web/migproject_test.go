package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The spec's create example (§4.5.1).
const specMigProject = `{
 "name": "N121",
 "description": "",
 "region": "region",
 "start_target_server": true,
 "speed_limit": 0,
 "use_public_ip": true,
 "exist_server": true,
 "isdefault": true,
 "type": "MIGRATE_BLOCK",
 "syncing": false,
 "enterprise_project": "default"
}`

func createMigProject(t *testing.T, e *env, token, name string) string {
	t.Helper()
	r := e.do("POST", "/v3/migprojects", `{"name":`+q(name)+`,"region":"region","type":"MIGRATE_FILE","use_public_ip":false,"exist_server":true,"syncing":true,"speed_limit":100}`, token)
	require.Equal(t, http.StatusOK, r.status, r.body)
	id, _ := r.json(t)["id"].(string)
	require.NotEmpty(t, id)
	return id
}

func TestMigProjectLifecycle(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := e.do("POST", "/v3/migprojects", specMigProject, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		first := r.json(t)["id"].(string)

		r = e.do("GET", "/v3/migprojects/"+first, "", e.token)
		require.Equal(t, http.StatusOK, r.status)
		m := r.json(t)
		assert.Equal(t, "N121", m["name"])
		assert.Equal(t, true, m["isdefault"], "the first project is the default")
		assert.Equal(t, "MIGRATE_BLOCK", m["type"])
		assert.Equal(t, "default", m["enterprise_project"])
		assert.Equal(t, float64(0), m["speed_limit"])
		for _, k := range []string{"id", "name", "description", "isdefault", "region", "start_target_server", "speed_limit",
			"use_public_ip", "exist_server", "type", "enterprise_project", "syncing", "start_network_check"} {
			assert.Contains(t, m, k)
		}

		second := createMigProject(t, e, e.token, "second")
		r = e.do("GET", "/v3/migprojects/"+second, "", e.token)
		m = r.json(t)
		assert.Equal(t, false, m["isdefault"])
		assert.Equal(t, false, m["use_public_ip"])
		assert.Equal(t, true, m["start_target_server"], "documented default")
		assert.Equal(t, float64(100), m["speed_limit"])

		// List with paging; count is the total.
		r = e.do("GET", "/v3/migprojects?limit=1&offset=1", "", e.token)
		require.Equal(t, http.StatusOK, r.status)
		m = r.json(t)
		assert.Equal(t, float64(2), m["count"])
		list := m["migprojects"].([]any)
		require.Len(t, list, 1)
		assert.Equal(t, second, list[0].(map[string]any)["id"])
		r = e.do("GET", "/v3/migprojects?limit=0", "", e.token)
		assert.Empty(t, r.json(t)["migprojects"])

		// Update: partial (absent fields keep their value), and the spec's PUT example.
		r = e.do("PUT", "/v3/migprojects/"+second, `{"description":"hello","speed_limit":5}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		m = e.do("GET", "/v3/migprojects/"+second, "", e.token).json(t)
		assert.Equal(t, "hello", m["description"])
		assert.Equal(t, float64(5), m["speed_limit"])
		assert.Equal(t, "second", m["name"])
		assert.Equal(t, "MIGRATE_FILE", m["type"])
		r = e.do("PUT", "/v3/migprojects/"+second, `{"name":"225","region":"region","description":"hello","start_target_server":true,"speed_limit":100,"use_public_ip":true,"exist_server":true,"type":"MIGRATE_FILE","syncing":false}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)

		// Duplicate names.
		r = e.do("POST", "/v3/migprojects", `{"name":"225","region":"r","type":"MIGRATE_BLOCK"}`, e.token)
		assert.Equal(t, http.StatusBadRequest, r.status)
		code, params := r.smsError(t)
		assert.Equal(t, "SMS.7312", code)
		assert.Equal(t, []string{"name"}, params)
		r = e.do("PUT", "/v3/migprojects/"+second, `{"name":"N121"}`, e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.7312", code)

		// Default rules: a second default is refused at create and update,
		// the default cannot be deleted nor un-defaulted, and moves with /default.
		r = e.do("POST", "/v3/migprojects", `{"name":"third","region":"r","type":"MIGRATE_BLOCK","isdefault":true}`, e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.7313", code)
		r = e.do("PUT", "/v3/migprojects/"+second, `{"isdefault":true}`, e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.7313", code)
		r = e.do("PUT", "/v3/migprojects/"+first, `{"isdefault":false}`, e.token)
		assert.Equal(t, http.StatusBadRequest, r.status)
		r = e.do("DELETE", "/v3/migprojects/"+first, "", e.token)
		assert.Equal(t, http.StatusBadRequest, r.status)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.7303", code)

		r = e.do("PUT", "/v3/migprojects/"+second+"/default", "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, true, e.do("GET", "/v3/migprojects/"+second, "", e.token).json(t)["isdefault"])
		assert.Equal(t, false, e.do("GET", "/v3/migprojects/"+first, "", e.token).json(t)["isdefault"])
		r = e.do("DELETE", "/v3/migprojects/"+first, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = e.do("GET", "/v3/migprojects/"+first, "", e.token)
		assert.Equal(t, http.StatusNotFound, r.status)
		code, params = r.smsError(t)
		assert.Equal(t, "SMS.7301", code)
		assert.Equal(t, []string{first}, params)
	})
}

// TestMigProjectIsolation: another tenant's project answers exactly like a
// missing one, for every endpoint, and is left untouched.
func TestMigProjectIsolation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := createMigProject(t, e, e.token, "mine")
		missing := "00000000-0000-0000-0000-000000000000"
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/v3/migprojects/%s", ""},
			{"PUT", "/v3/migprojects/%s", `{"name":"stolen"}`},
			{"DELETE", "/v3/migprojects/%s", ""},
			{"PUT", "/v3/migprojects/%s/default", ""},
		} {
			theirs := e.do(tc.method, fmt.Sprintf(tc.path, id), tc.body, e.other)
			none := e.do(tc.method, fmt.Sprintf(tc.path, missing), tc.body, e.other)
			assert.Equal(t, http.StatusNotFound, theirs.status, tc.method+" "+tc.path)
			assert.Equal(t, none.status, theirs.status)
			c1, _ := theirs.smsError(t)
			c2, _ := none.smsError(t)
			assert.Equal(t, c2, c1)
		}
		r := e.do("GET", "/v3/migprojects", "", e.other)
		assert.Equal(t, float64(0), r.json(t)["count"])
		m := e.do("GET", "/v3/migprojects/"+id, "", e.token).json(t)
		assert.Equal(t, "mine", m["name"], "untouched")
	})
}

func TestMigProjectBadInput(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		valid := `"region":"r","type":"MIGRATE_BLOCK"`
		cases := []struct {
			name, body, code string
			param            string
		}{
			{"name too short", `{"name":"a",` + valid + `}`, "SMS.9001", "name"},
			{"name too long", `{"name":"` + strings.Repeat("x", 20) + `",` + valid + `}`, "SMS.9001", "name"},
			{"name of 20 CJK characters", `{"name":"` + strings.Repeat("迁", 20) + `",` + valid + `}`, "SMS.9001", "name"},
			{"name missing", `{` + valid + `}`, "SMS.6013", "name"},
			{"region missing", `{"name":"ok","type":"MIGRATE_BLOCK"}`, "SMS.6013", "region"},
			{"type unknown", `{"name":"ok","region":"r","type":"MIGRATE_DISK"}`, "SMS.9001", "type"},
			{"speed too high", `{"name":"ok",` + valid + `,"speed_limit":10001}`, "SMS.9001", "speed_limit"},
			{"speed negative", `{"name":"ok",` + valid + `,"speed_limit":-1}`, "SMS.9001", "speed_limit"},
			{"speed float", `{"name":"ok",` + valid + `,"speed_limit":1.5}`, "SMS.9001", "speed_limit"},
			{"speed overflow", `{"name":"ok",` + valid + `,"speed_limit":99999999999}`, "SMS.9001", "speed_limit"},
			{"speed string", `{"name":"ok",` + valid + `,"speed_limit":"5"}`, "SMS.9001", "speed_limit"},
			{"bool as string", `{"name":"ok",` + valid + `,"syncing":"true"}`, "SMS.9001", "syncing"},
			{"name as number", `{"name":225,` + valid + `}`, "SMS.9001", "name"},
			{"description too long", `{"name":"ok",` + valid + `,"description":"` + strings.Repeat("d", 256) + `"}`, "SMS.9001", "description"},
			{"malformed", `{"name":"ok",`, "SMS.6010", ""},
			{"array", `[]`, "SMS.6011", ""},
			{"empty", ``, "SMS.6012", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do("POST", "/v3/migprojects", tc.body, e.token)
				assert.Equal(t, http.StatusBadRequest, r.status, r.body)
				code, params := r.smsError(t)
				assert.Equal(t, tc.code, code, r.body)
				if tc.param != "" {
					assert.Contains(t, params, tc.param, r.body)
				}
			})
		}
		// Nothing was written.
		r := e.do("GET", "/v3/migprojects", "", e.token)
		assert.Equal(t, float64(0), r.json(t)["count"])

		// Content type and query parameters.
		r = e.doH("POST", "/v3/migprojects", `{"name":"ok",`+valid+`}`, map[string]string{"X-Auth-Token": e.token, "Content-Type": "text/plain"})
		code, _ := r.smsError(t)
		assert.Equal(t, "SMS.6016", code)
		for _, qs := range []string{"limit=101", "limit=-1", "limit=x", "offset=65536", "offset=1.5"} {
			r = e.do("GET", "/v3/migprojects?"+qs, "", e.token)
			assert.Equal(t, http.StatusBadRequest, r.status, qs)
			code, _ = r.smsError(t)
			assert.Equal(t, "SMS.9001", code, qs)
		}
		r = e.do("GET", "/v3/migprojects/"+strings.Repeat("x", 256), "", e.token)
		assert.Equal(t, http.StatusBadRequest, r.status)
	})
}
