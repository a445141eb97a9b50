package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/store"
)

// TestWithID: the prologue every resource handler shared — a bad path id is
// SMS.9001 and the handler does not run; a good one reaches the handler with
// the caller and its tenant.
func TestWithID(t *testing.T) {
	gin.SetMode(gin.TestMode)
	caller := iam.Principal{DomainID: "d1", ProjectID: "p1", UserName: "alice"}
	var got *request
	r := gin.New()
	r.Use(func(c *gin.Context) { c.Set(ctxPrincipal, caller) })
	r.GET("/things/:thing_id", withID("thing_id", func(c *gin.Context, r request) {
		got = &r
		c.Status(http.StatusNoContent)
	}))

	cases := []struct {
		name, id string
		status   int
		code     string
	}{
		{name: "good", id: "abc", status: http.StatusNoContent},
		{name: "255 characters", id: strings.Repeat("é", 255), status: http.StatusNoContent},
		{name: "256 characters", id: strings.Repeat("x", 256), status: http.StatusBadRequest, code: "SMS.9001"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/things/"+tc.id, nil))
			require.Equal(t, tc.status, w.Code, w.Body.String())
			if tc.code != "" {
				var body struct {
					ErrorCode  string `json:"error_code"`
					ErrorParam any    `json:"error_param"`
				}
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
				assert.Equal(t, tc.code, body.ErrorCode)
				assert.Nil(t, got, "the handler must not run")
				return
			}
			require.NotNil(t, got)
			assert.Equal(t, tc.id, got.id)
			assert.Equal(t, "alice", got.principal.UserName)
			assert.Equal(t, store.Tenant{DomainID: "d1", ProjectID: "p1"}, got.tenant)
		})
	}
}
