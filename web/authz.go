package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// Who may call what. Every route of the router has a rule in routeRules,
// keyed by method and gin path; TestRouteRoles walks gin's routes, so a new
// route without a rule fails the build's tests, and authorize refuses a
// route it finds no rule for (fail closed).

// gate is how a route is reached.
type gate int

const (
	// gateAPI: authenticated by authenticate, then authorize applies the
	// rule's roles.
	gateAPI gate = iota
	// gatePublic: anonymous (health, versions, sign-in).
	gatePublic
	// gateConsole: the console's session, which refuses a viewer's
	// changes and every agent itself (console.Console.session).
	gateConsole
	// gateAdmin: the Temporal UI proxy, the bootstrap domain's admins only
	// (uiAdmin).
	gateAdmin
)

// agentScope is what an agent's credential may reach through a route.
type agentScope int

const (
	// agentNever: not an agent call.
	agentNever agentScope = iota
	// agentDomain: no source named (register, privacy agreement, config).
	agentDomain
	// agentSource: the route's :source_id must be the key's own source.
	agentSource
	// agentTask: the route's :task_id must be a task of the key's source.
	agentTask
)

// rule is one route's admission. Admin and operator pass every API rule;
// viewer passes the ones marked read; agent the ones with a scope.
type rule struct {
	gate  gate
	read  bool
	agent agentScope
}

var (
	rulePublic  = rule{gate: gatePublic}
	ruleConsole = rule{gate: gateConsole}
	ruleAdminUI = rule{gate: gateAdmin}
	// ruleOperate: admin and operator only (changes and secrets).
	ruleOperate = rule{}
	// ruleRead: viewers too; nothing it answers is a secret.
	ruleRead = rule{read: true}
)

// ruleAgent admits admin, operator and an agent within scope s; no viewer
// (the agent calls hand commands out or take secrets).
func ruleAgent(s agentScope) rule { return rule{agent: s} }

// routeRules is the role matrix (README "Security"), by "METHOD path".
var routeRules = map[string]rule{
	"GET /healthz":         rulePublic,
	"GET /readyz":          rulePublic,
	"POST /v3/auth/tokens": rulePublic,
	"GET /":                rulePublic,
	"GET /:version":        rulePublic,

	"POST /v3/migprojects":                          ruleOperate,
	"GET /v3/migprojects":                           ruleRead,
	"GET /v3/migprojects/:mig_project_id":           ruleRead,
	"PUT /v3/migprojects/:mig_project_id":           ruleOperate,
	"DELETE /v3/migprojects/:mig_project_id":        ruleOperate,
	"PUT /v3/migprojects/:mig_project_id/default":   ruleOperate,
	"POST /v3/vm/templates":                         ruleOperate,
	"GET /v3/vm/templates":                          ruleRead,
	"POST /v3/vm/templates/delete":                  ruleOperate,
	"GET /v3/vm/templates/:id":                      ruleRead,
	"PUT /v3/vm/templates/:id":                      ruleOperate,
	"DELETE /v3/vm/templates/:id":                   ruleOperate,
	"GET /v3/vm/templates/:id/target-password":      ruleOperate, // a secret
	"POST /v3/sources":                              {agent: agentDomain},
	"GET /v3/sources":                               ruleRead,
	"GET /v3/sources/overview":                      ruleRead,
	"POST /v3/sources/delete":                       ruleOperate,
	"GET /v3/sources/:source_id":                    {read: true, agent: agentSource},
	"PUT /v3/sources/:source_id":                    ruleOperate,
	"DELETE /v3/sources/:source_id":                 ruleOperate,
	"PUT /v3/sources/:source_id/changestate":        ruleOperate,
	"PUT /v3/sources/:source_id/diskinfo":           ruleOperate,
	"GET /v3/errors":                                ruleRead,
	"GET /v3/sources/:source_id/command":            ruleAgent(agentSource), // hands a command out
	"POST /v3/sources/:source_id/command_result":    ruleAgent(agentSource),
	"POST /v3/privacy-agreements":                   {agent: agentDomain},
	"GET /v3/privacy-agreements":                    {read: true, agent: agentDomain},
	"GET /v3/config":                                {read: true, agent: agentDomain},
	"POST /v3/tasks":                                ruleOperate,
	"GET /v3/tasks":                                 ruleRead,
	"POST /v3/tasks/delete":                         ruleOperate,
	"POST /v3/tasks/consistency-results/export":     ruleRead, // a POST that only reads
	"GET /v3/tasks/:task_id":                        ruleRead,
	"PUT /v3/tasks/:task_id":                        ruleOperate,
	"DELETE /v3/tasks/:task_id":                     ruleOperate,
	"POST /v3/tasks/:task_id/action":                ruleOperate,
	"PUT /v3/tasks/:task_id/progress":               ruleAgent(agentTask),
	"GET /v3/tasks/:task_id/speed-limit":            ruleRead,
	"POST /v3/tasks/:task_id/speed-limit":           ruleOperate,
	"GET /v3/tasks/:task_id/certkey":                ruleAgent(agentTask), // a secret
	"GET /v3/tasks/:task_id/passphrase":             ruleAgent(agentTask), // a secret
	"GET /v3/tasks/:task_id/configuration-setting":  ruleRead,
	"POST /v3/tasks/:task_id/configuration-setting": ruleOperate,
	"GET /v3/tasks/:task_id/consistency-result":     ruleRead,
	"POST /v3/tasks/:task_id/consistency-result":    ruleAgent(agentTask),
	"POST /v3/tasks/:task_id/log":                   ruleOperate,
	"PUT /v3/tasks/:task_id/agent-log":              ruleAgent(agentTask),
	"GET /v3/tasks/:task_id/agent-log":              ruleRead,
	"POST /v3/:task_id/update-network-check-info":   ruleAgent(agentTask),

	"POST /v3/waves":                         ruleOperate,
	"GET /v3/waves":                          ruleRead,
	"GET /v3/waves/:wave_id":                 ruleRead,
	"PUT /v3/waves/:wave_id":                 ruleOperate,
	"DELETE /v3/waves/:wave_id":              ruleOperate,
	"POST /v3/waves/:wave_id/members":        ruleOperate,
	"POST /v3/waves/:wave_id/members/delete": ruleOperate,
	"POST /v3/waves/:wave_id/members/import": ruleOperate,
	"GET /v3/waves/:wave_id/preflight":       ruleRead,
	"POST /v3/waves/:wave_id/action":         ruleOperate,
	"GET /v3/waves/:wave_id/report":          ruleRead,
}

// ruleFor is a route's rule: its own, or its gate's for the console's pages
// and the Temporal UI's catch-all.
func ruleFor(method, path string) (rule, bool) {
	if r, ok := routeRules[method+" "+path]; ok {
		return r, true
	}
	switch {
	case path == "/console" || strings.HasPrefix(path, "/console/"):
		return ruleConsole, true
	case path == TemporalUIPath || strings.HasPrefix(path, TemporalUIPath+"/"):
		return ruleAdminUI, true
	}
	return rule{}, false
}

// allows tells whether role r passes an API rule (the agent's scope is
// checked apart: it needs the request).
func (ru rule) allows(r iam.Role) bool {
	switch r {
	case iam.RoleAdmin, iam.RoleOperator:
		return true
	case iam.RoleViewer:
		return ru.read
	case iam.RoleAgent:
		return ru.agent != agentNever
	}
	return false
}

// AgentBinder reads the source an agent key is bound to now (iam.Service).
type AgentBinder interface {
	AgentSource(ctx context.Context, ak string) (string, error)
}

// TaskFinder finds a task of a tenant (the store), for an agent's task
// calls.
type TaskFinder interface {
	Task(ctx context.Context, t store.Tenant, id string) (*store.Task, error)
}

// authorize applies the route's rule to the authenticated caller: a role
// the rule does not admit, or an agent reaching past its own source, gets
// 403 SMS.9004 before the handler reads anything.
func authorize(keys AgentBinder, tasks TaskFinder) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := mustPrincipal(c)
		ru, found := ruleFor(c.Request.Method, c.FullPath())
		if !found || ru.gate != gateAPI {
			logFor(c).ErrorContext(c.Request.Context(), "route without an API rule: refused", "route", c.FullPath())
			fail(c, forbidden(c, "the route has no access rule"))
			return
		}
		if !ru.allows(p.Role) {
			logFor(c).WarnContext(c.Request.Context(), "request refused by role", "route", c.FullPath(),
				"role", string(p.Role), "domain", p.DomainName, "user", p.UserName, "ak", p.AccessKey)
			fail(c, forbidden(c, roleName(p.Role)+" may not call this operation"))
			return
		}
		if p.Role == iam.RoleAgent {
			if p.AccessKey == "" {
				// An agent acts through its key, which binds it to one
				// source; a token (say, one issued before its user was
				// made an agent) would reach every source of the domain.
				fail(c, forbidden(c, "an agent signs its calls with its access key, not a token"))
				return
			}
			if err := agentReach(c, ru.agent, p, keys, tasks); err != nil {
				fail(c, err)
				return
			}
		}
		c.Next()
	}
}

func roleName(r iam.Role) string {
	if r == "" {
		return "a credential without a role"
	}
	return "role " + string(r)
}

// agentReach checks that an agent's call names its own source, or a task of
// it. The key's binding is re-read from the store when the cached one does
// not match: it is made by the key's first registration, maybe after the
// key was cached, maybe by another replica.
func agentReach(c *gin.Context, scope agentScope, p iam.Principal, keys AgentBinder, tasks TaskFinder) error {
	if scope == agentDomain {
		return nil
	}
	ctx := c.Request.Context()
	want := c.Param("source_id")
	if scope == agentTask {
		id := c.Param("task_id")
		t, err := tasks.Task(ctx, p.Tenant(), id)
		if errors.Is(err, store.ErrNotFound) {
			return taskNotFound(id)
		}
		if err != nil {
			return err
		}
		want = t.SourceID
	}
	bound := p.SourceID
	if bound != want && p.AccessKey != "" {
		var err error
		if bound, err = keys.AgentSource(ctx, p.AccessKey); err != nil {
			return err
		}
	}
	if bound == "" {
		return forbidden(c, "this agent key has registered no source yet")
	}
	if bound != want {
		logFor(c).WarnContext(ctx, "agent refused: another source", "ak", p.AccessKey, "bound", bound, "asked", want)
		return forbidden(c, "an agent key acts for the source it registered only")
	}
	return nil
}

// forbidden is the spec's 403 SMS.9004, naming the action refused.
func forbidden(c *gin.Context, why string) *smserr.Error {
	action := c.Request.Method + " " + c.FullPath()
	if c.FullPath() == "" {
		action = c.Request.Method + " " + c.Request.URL.Path
	}
	msg := "You do not have permission to perform action " + action + "."
	return smserr.New(smserr.SMS9004, msg).WithStatus(http.StatusForbidden).WithDetail(msg + " " + why)
}

// errBoundElsewhere answers an agent key registering a machine other than
// its source.
func errBoundElsewhere(c *gin.Context) error {
	return forbidden(c, "this agent key is bound to another source: issue a key per source server")
}
