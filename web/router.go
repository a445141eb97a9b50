package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/smserr"
)

// routes wires every endpoint, in one place, grouped like the spec.
func (s *Server) routes(r *gin.Engine) {
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)

	v3 := r.Group("/v3")
	v3.POST("/auth/tokens", tokenHandlers{iam: s.deps.IAM}.issue)

	api := v3.Group("", authenticate(s.deps.IAM))

	// §4.5 migration projects.
	mp := migProjectHandlers{store: s.deps.Store}
	api.POST("/migprojects", mp.create)
	api.GET("/migprojects", mp.list)
	api.GET("/migprojects/:mig_project_id", mp.show)
	api.PUT("/migprojects/:mig_project_id", mp.update)
	api.DELETE("/migprojects/:mig_project_id", mp.delete)
	api.PUT("/migprojects/:mig_project_id/default", mp.setDefault)

	// §4.4 templates (+ the SDK's ShowTargetPassword).
	tp := templateHandlers{store: s.deps.Store, box: s.deps.Box}
	api.POST("/vm/templates", tp.create)
	api.GET("/vm/templates", tp.list)
	api.POST("/vm/templates/delete", tp.batchDelete)
	api.GET("/vm/templates/:id", tp.show)
	api.PUT("/vm/templates/:id", tp.update)
	api.DELETE("/vm/templates/:id", tp.delete)
	api.GET("/vm/templates/:id/target-password", tp.targetPassword)

	r.NoRoute(func(c *gin.Context) {
		fail(c, smserr.New(CodeNoAPI).WithStatus(http.StatusNotFound).
			WithDetail("no API at "+c.Request.Method+" "+c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		fail(c, smserr.New(CodeNoAPI).WithStatus(http.StatusMethodNotAllowed).
			WithDetail("method "+c.Request.Method+" is not allowed on "+c.Request.URL.Path))
	})
}
