package web

import (
	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/store"
)

// request is what a handler of a resource starts from, read in one place
// (withID) instead of a prologue in every handler: the path id, checked,
// and the caller with its tenant.
type request struct {
	// id is the route's path parameter, 1 to 255 characters.
	id string
	// principal is the authenticated caller (the auth middleware's).
	principal iam.Principal
	// tenant scopes every store call to the caller's domain and project.
	tenant store.Tenant
}

// withID wraps a handler of a route with the path parameter param: a bad
// id fails with SMS.9001 before h runs, so h only parses its body, calls
// the store or the engine, and maps the error.
func withID(param string, h func(c *gin.Context, r request)) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := pathID(c, param)
		if err != nil {
			fail(c, err)
			return
		}
		p := mustPrincipal(c)
		h(c, request{id: id, principal: p, tenant: p.Tenant()})
	}
}
