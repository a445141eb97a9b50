package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAgentLog(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		id, _ := newSourceTask(t, e, "web-1")
		path := "/v3/tasks/" + id + "/agent-log"

		r := e.do("GET", path, "", e.token)
		wantError(t, r, http.StatusNotFound, "SMS.9001", "nothing uploaded yet")
		assert.Contains(t, r.body, "POST /v3/tasks/"+id+"/log")
		wantError(t, e.do("GET", "/v3/tasks/nope/agent-log", "", e.token), http.StatusNotFound, "SMS.7703")

		for _, tc := range []struct {
			name, path, body, token string
			status                  int
			code                    string
		}{
			{"empty log", path + "?bucket=b", "", e.token, 400, "SMS.6013"},
			{"bucket name too long", path + "?bucket=" + strings.Repeat("b", 256), "x", e.token, 400, "SMS.9001"},
			{"another tenant's task", path, "x", e.other, 404, "SMS.7703"},
			{"no such task", "/v3/tasks/nope/agent-log", "x", e.token, 404, "SMS.7703"},
			{"over 12 MiB", path, strings.Repeat("x", 12<<20+1), e.token, 413, "SMS.6014"},
		} {
			wantError(t, e.do("PUT", tc.path, tc.body, tc.token), tc.status, tc.code, tc.name)
		}

		log := "time=1 level=INFO msg=registered\ntime=2 level=ERROR msg=\"copy failed\" err=\"disk gone\"\n"
		r = e.do("PUT", path+"?bucket=logs", log, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.EqualValues(t, len(log), r.json(t)["size"])

		r = e.do("GET", path, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, log, r.body)
		assert.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
		assert.Contains(t, r.header.Get("Content-Disposition"), "sms-agent-"+id+".log")
		wantError(t, e.do("GET", path, "", e.other), http.StatusNotFound, "SMS.7703", "not another tenant's")

		// The newest upload is the one served.
		require.Equal(t, http.StatusOK, e.do("PUT", path, "second upload\n", e.token).status)
		assert.Equal(t, "second upload\n", e.do("GET", path, "", e.token).body)
	})
}
