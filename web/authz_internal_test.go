package web

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"

	"github.com/smsflow/smsflow/internal/identity/iam"
)

// TestAuthorizeFailsClosed: a route nobody wrote a rule for is refused
// with SMS.9004, even to an admin, and its handler never runs.
func TestAuthorizeFailsClosed(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(func(c *gin.Context) { c.Set(ctxPrincipal, iam.Principal{Role: iam.RoleAdmin}) })
	reached := false
	r.GET("/v3/something-new", authorize(nil, nil), func(c *gin.Context) { reached = true })
	r.GET("/v3/tasks", authorize(nil, nil), func(c *gin.Context) { c.Status(http.StatusNoContent) })

	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v3/something-new", nil))
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Contains(t, w.Body.String(), `"error_code":"SMS.9004"`)
	assert.False(t, reached)

	w = httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v3/tasks", nil))
	assert.Equal(t, http.StatusNoContent, w.Code, "a route with a rule passes")
}
