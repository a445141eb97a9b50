package web

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/web/console"
)

// routes wires every endpoint, in one place, grouped like the spec.
func (s *Server) routes(r *gin.Engine) {
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)

	v3 := r.Group("/v3")
	// Sign-ins are anonymous: they read their bodies through a gate of their
	// own, so a flood of them cannot take the slots of authenticated bodies.
	v3.POST("/auth/tokens", limitBody(maxLoginBodyBytes), withBodyGate(newBodyGate(s.deps.Body.login())),
		tokenHandlers{iam: s.deps.IAM}.issue)

	// Every route below passes its rule in routeRules (authz.go).
	api := v3.Group("", authenticate(s.deps.IAM), authorize(s.deps.IAM, s.deps.Store))

	// §4.5 migration projects.
	mp := migProjectHandlers{store: s.deps.Store}
	api.POST("/migprojects", mp.create)
	api.GET("/migprojects", mp.list)
	api.GET("/migprojects/:mig_project_id", withID("mig_project_id", mp.show))
	api.PUT("/migprojects/:mig_project_id", withID("mig_project_id", mp.update))
	api.DELETE("/migprojects/:mig_project_id", withID("mig_project_id", mp.delete))
	api.PUT("/migprojects/:mig_project_id/default", withID("mig_project_id", mp.setDefault))

	// §4.4 templates (+ the SDK's ShowTargetPassword).
	tp := templateHandlers{store: s.deps.Store, box: s.deps.Box}
	api.POST("/vm/templates", tp.create)
	api.GET("/vm/templates", tp.list)
	api.POST("/vm/templates/delete", tp.batchDelete)
	api.GET("/vm/templates/:id", withID("id", tp.show))
	api.PUT("/vm/templates/:id", withID("id", tp.update))
	api.DELETE("/vm/templates/:id", withID("id", tp.delete))
	api.GET("/vm/templates/:id/target-password", withID("id", tp.targetPassword))

	// §4.1 sources, §4.3 commands, and the agent-facing SDK extras.
	src := sourceHandlers{store: s.deps.Store, agentTimeout: s.deps.AgentTimeout, now: s.deps.Now}
	api.POST("/sources", src.register)
	api.GET("/sources", src.list)
	api.GET("/sources/overview", src.overview)
	api.POST("/sources/delete", src.batchDelete)
	api.GET("/sources/:source_id", withID("source_id", src.show))
	api.PUT("/sources/:source_id", withID("source_id", src.update))
	api.DELETE("/sources/:source_id", withID("source_id", src.delete))
	api.PUT("/sources/:source_id/changestate", withID("source_id", src.changeState))
	api.PUT("/sources/:source_id/diskinfo", withID("source_id", src.diskInfo))
	api.GET("/errors", src.errors)
	cmd := commandHandlers{sources: s.deps.Store, commands: s.deps.Store, tasks: s.deps.Store, queue: s.deps.Queue,
		engine: s.deps.Engine, now: s.deps.Now, visits: newVisitStamps(stampEvery(s.deps.AgentTimeout))}
	api.GET("/sources/:source_id/command", withID("source_id", cmd.next))
	api.POST("/sources/:source_id/command_result", withID("source_id", cmd.result))
	ag := agentHandlers{store: s.deps.Store, now: s.deps.Now, agentTimeout: s.deps.AgentTimeout, version: s.deps.Version}
	api.POST("/privacy-agreements", ag.signPrivacy)
	api.GET("/privacy-agreements", ag.showPrivacy)
	api.GET("/config", ag.config)
	// §4.2 tasks (+ the SDK's task operations).
	tk := taskHandlers{store: s.deps.Store, engine: s.deps.Engine, targets: s.deps.Targets, log: s.deps.Logger, opts: s.deps.TaskOptions,
		agentTimeout: s.deps.AgentTimeout, now: s.deps.Now, throttle: newProgressThrottle(progressKeepAlive(s.deps.TaskOptions.AgentStepTimeout))}
	s.console.SetTasks(consoleTasks{h: tk})
	api.POST("/tasks", tk.create)
	api.GET("/tasks", tk.list)
	api.POST("/tasks/delete", tk.batchDelete)
	api.POST("/tasks/consistency-results/export", tk.exportConsistency)
	api.GET("/tasks/:task_id", withID("task_id", tk.show))
	api.PUT("/tasks/:task_id", withID("task_id", tk.update))
	api.DELETE("/tasks/:task_id", withID("task_id", tk.delete))
	api.POST("/tasks/:task_id/action", withID("task_id", tk.action))
	api.PUT("/tasks/:task_id/progress", withID("task_id", tk.progress))
	api.GET("/tasks/:task_id/speed-limit", withID("task_id", tk.showSpeed))
	api.POST("/tasks/:task_id/speed-limit", withID("task_id", tk.setSpeed))
	api.GET("/tasks/:task_id/certkey", withID("task_id", func(c *gin.Context, r request) { tk.certKey(c, r, s.deps.Box) }))
	api.GET("/tasks/:task_id/passphrase", withID("task_id", func(c *gin.Context, r request) { tk.passphrase(c, r, s.deps.Box) }))
	api.GET("/tasks/:task_id/configuration-setting", withID("task_id", tk.showConfig))
	api.POST("/tasks/:task_id/configuration-setting", withID("task_id", tk.setConfig))
	api.GET("/tasks/:task_id/consistency-result", withID("task_id", tk.showConsistency))
	api.POST("/tasks/:task_id/consistency-result", withID("task_id", tk.setConsistency))
	api.POST("/tasks/:task_id/log", withID("task_id", func(c *gin.Context, r request) { tk.collectLog(c, r, s.deps.Queue) }))
	api.PUT("/tasks/:task_id/agent-log", withID("task_id", tk.uploadAgentLog))
	api.GET("/tasks/:task_id/agent-log", withID("task_id", tk.downloadAgentLog))
	api.POST("/:task_id/update-network-check-info", withID("task_id", tk.networkCheckInfo))

	// Waves (batch plans): smsflow's extension, in the spec's conventions.
	wv := waveHandlers{store: s.deps.Store, engine: s.deps.Waves, capacity: s.deps.Capacity, tasks: tk,
		agentTimeout: s.deps.AgentTimeout, now: s.deps.Now, log: s.deps.Logger}
	s.console.SetWaves(consoleWaves{h: wv})
	api.POST("/waves", wv.create)
	api.GET("/waves", wv.list)
	api.GET("/waves/:wave_id", wv.show)
	api.PUT("/waves/:wave_id", wv.update)
	api.DELETE("/waves/:wave_id", wv.delete)
	api.POST("/waves/:wave_id/members", wv.addMembers)
	api.POST("/waves/:wave_id/members/delete", wv.removeMembers)
	api.POST("/waves/:wave_id/members/import", wv.importMembers)
	api.GET("/waves/:wave_id/preflight", wv.preflight)
	api.POST("/waves/:wave_id/action", wv.action)
	api.GET("/waves/:wave_id/report", wv.report)

	// The operator's console; a browser opening / lands there, the SDK's
	// ListApiVersion (Accept: application/json or none) still gets JSON.
	s.console.Mount(r)
	r.GET("/", func(c *gin.Context) {
		if console.PrefersHTML(c.Request) {
			c.Redirect(http.StatusFound, console.Prefix+"/")
			return
		}
		listVersions(c)
	})
	r.GET("/:version", showVersion)

	r.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, console.Prefix+"/") {
			s.console.NotFound(c)
			return
		}
		fail(c, smserr.New(CodeNoAPI).WithStatus(http.StatusNotFound).
			WithDetail("no API at "+c.Request.Method+" "+c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		fail(c, smserr.New(CodeNoAPI).WithStatus(http.StatusMethodNotAllowed).
			WithDetail("method "+c.Request.Method+" is not allowed on "+c.Request.URL.Path))
	})
}
