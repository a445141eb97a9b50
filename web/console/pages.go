package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/temporal"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/workflows"
)

// view is what every page template receives.
type view struct {
	Title string
	Nav   string
	// Session tells a signed-in page (nil on the sign-in and some error
	// pages); Domain and User are its caller.
	Session      *session
	Domain, User string
	CSRF         string
	RequestID    string
	// Endpoint and ProjectID fill in the agent install command of the
	// empty states.
	Endpoint, ProjectID string
	Data                any
}

// readOnlyReason is why a viewer's buttons are disabled: its role may read
// only, and the server refuses its changes with SMS.9004 (roleAllows).
const readOnlyReason = "SMS.9004: read-only role: viewer"

// ReadOnly is why the page's changes are disabled ("" when they are not).
// A viewer sees every form and button, disabled with this reason, rather
// than a 403 page after the click; the server still refuses the change.
func (v view) ReadOnly() string {
	if v.Session != nil && v.Session.principal.Role == iam.RoleViewer {
		return readOnlyReason
	}
	return ""
}

// render writes page with the layout; s is nil on pages without a session.
func (k *Console) render(c *gin.Context, status int, page string, s *session, data any) {
	v := view{Title: page, Nav: page, Session: s, RequestID: k.d.RequestID(c), Data: data}
	if s != nil {
		v.CSRF = s.data.CSRF
		v.Domain, v.User = s.principal.DomainName, s.principal.UserName
		v.Endpoint, v.ProjectID = endpoint(c), s.principal.ProjectID
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	c.Header("X-Frame-Options", "DENY")
	c.Status(status)
	if err := k.pages[page].ExecuteTemplate(c.Writer, "layout.html", v); err != nil {
		k.d.Logger.ErrorContext(c.Request.Context(), "console render", "page", page, "err", err)
	}
}

func (k *Console) errorPage(c *gin.Context, status int, title, msg string) {
	var s *session
	if v, ok := c.Get(ctxSession); ok {
		s = v.(*session)
	}
	k.render(c, status, "error", s, gin.H{"Status": status, "Heading": title, "Message": msg})
}

// fail answers an unexpected error with the error page (its request id
// lets the operator find the log line).
func (k *Console) fail(c *gin.Context, err error) {
	if errors.Is(err, store.ErrNotFound) {
		k.NotFound(c)
		return
	}
	// The request id is the page's: the operator quotes it, the log finds it.
	k.d.Logger.ErrorContext(c.Request.Context(), "console", "request_id", k.d.RequestID(c), "path", c.Request.URL.Path, "err", err)
	k.errorPage(c, http.StatusInternalServerError, "Something went wrong",
		"The server could not answer this page. Quote the request id below when reporting it.")
}

// dashboard: sources per state, task counts, throughput, recent errors.
func (k *Console) dashboard(c *gin.Context) {
	s := mustSession(c)
	ctx, t := c.Request.Context(), s.principal.Tenant()
	counts, err := k.d.Store.SourceOverview(ctx, t)
	if err != nil {
		k.fail(c, err)
		return
	}
	byState := map[string]int64{}
	var total int64
	for _, n := range counts {
		byState[n.State] += n.N
		total += n.N
	}
	type stateCount struct {
		State string
		N     int64
	}
	var states []stateCount
	for _, st := range sms.SourceStates {
		if n := byState[string(st)]; n > 0 {
			states = append(states, stateCount{string(st), n})
		}
	}
	tasks, ntasks, err := k.d.Store.Tasks(ctx, t, store.TaskFilter{}, store.Page{Limit: 1000})
	if err != nil {
		k.fail(c, err)
		return
	}
	var running, syncing, failed int
	var speed float64
	type taskErr struct {
		ID, Name, Error string
	}
	var recent []taskErr
	for _, tk := range tasks {
		switch tk.State {
		case sms.TaskRunning:
			running++
			speed += tk.MigrateSpeed
		case sms.TaskSyncing:
			syncing++
			speed += tk.MigrateSpeed
		case sms.TaskMigrateFail, sms.TaskSyncFail:
			failed++
			if len(recent) < 5 {
				recent = append(recent, taskErr{tk.ID, tk.Name, errorText(tk.ErrorJSON)})
			}
		}
	}
	waves, _, err := k.d.Store.ListWaves(ctx, t, store.WaveFilter{}, store.Page{Limit: 10})
	if err != nil {
		k.fail(c, err)
		return
	}
	k.render(c, http.StatusOK, "dashboard", s, gin.H{"Waves": waves,
		"Sources": total, "States": states, "Tasks": ntasks, "Running": running, "Syncing": syncing,
		"Failed": failed, "Speed": fmt.Sprintf("%.1f", speed), "Errors": recent, "TemporalUI": k.d.TemporalUI,
	})
}

// errorText is a task's or source's error JSON as one line.
func errorText(j string) string {
	j = strings.TrimSpace(j)
	if j == "" || j == "{}" || j == "null" {
		return ""
	}
	return j
}

func (k *Console) projects(c *gin.Context) {
	s := mustSession(c)
	list, n, err := k.d.Store.MigProjects(c.Request.Context(), s.principal.Tenant(), store.Page{Limit: 1000})
	if err != nil {
		k.fail(c, err)
		return
	}
	k.render(c, http.StatusOK, "projects", s, gin.H{"Projects": list, "Total": n})
}

// projectPage is the create/edit form's data.
type projectPage struct {
	ID     string
	Form   ProjectForm
	FormID string
	// Errors maps a field's form name to its SMS code and message.
	Errors map[string]string
	// General is an error that names no field.
	General string
}

func (k *Console) newProject(c *gin.Context) {
	f := ProjectForm{Type: "MIGRATE_BLOCK", Region: "local", EnterpriseProject: "default", SpeedLimit: "0",
		StartTargetServer: true, UsePublicIP: true, ExistServer: true}
	k.render(c, http.StatusOK, "project_form", mustSession(c), projectPage{Form: f, FormID: secret.RandomString(24, secret.AlphaNumeric)})
}

func readProjectForm(c *gin.Context) ProjectForm {
	on := func(name string) bool { return c.PostForm(name) == "on" || c.PostForm(name) == "true" }
	return ProjectForm{Name: c.PostForm("name"), Description: c.PostForm("description"), Region: c.PostForm("region"),
		Type: c.PostForm("type"), SpeedLimit: c.PostForm("speed_limit"), EnterpriseProject: c.PostForm("enterprise_project"),
		StartTargetServer: on("start_target_server"), UsePublicIP: on("use_public_ip"), ExistServer: on("exist_server"),
		Syncing: on("syncing"), StartNetworkCheck: on("start_network_check")}
}

// formErrors places an API error next to its field (the error's first
// param), with its SMS code; anything else is general.
func formErrors(err error) (map[string]string, string, bool) {
	e, ok := smserr.As(err)
	if !ok || e.Status >= 500 {
		return nil, "", false
	}
	msg := refusalText(e)
	if len(e.Params) > 0 && e.Params[0] != "" {
		return map[string]string{e.Params[0]: msg}, "", true
	}
	return nil, msg, true
}

func (k *Console) createProject(c *gin.Context) {
	s := mustSession(c)
	f := readProjectForm(c)
	key := s.principal.DomainID + "\x00" + c.PostForm("form_id")
	if c.PostForm("form_id") != "" {
		if id, first := k.forms.claim(key); !first {
			// A second submission of the same form: no second project.
			if id == "" {
				c.Redirect(http.StatusSeeOther, Prefix+"/projects")
			} else {
				c.Redirect(http.StatusSeeOther, Prefix+"/projects?created="+url.QueryEscape(id))
			}
			return
		}
	}
	id, err := k.d.Projects.CreateProject(c.Request.Context(), s.principal, f)
	if err != nil {
		k.forms.release(key)
		fe, general, ok := formErrors(err)
		if !ok {
			k.fail(c, err)
			return
		}
		k.render(c, http.StatusOK, "project_form", s,
			projectPage{Form: f, FormID: c.PostForm("form_id"), Errors: fe, General: general})
		return
	}
	k.forms.done(key, id)
	c.Redirect(http.StatusSeeOther, Prefix+"/projects?created="+url.QueryEscape(id))
}

func (k *Console) editProject(c *gin.Context) {
	s := mustSession(c)
	p, err := k.d.Store.MigProject(c.Request.Context(), s.principal.Tenant(), c.Param("id"))
	if err != nil {
		k.fail(c, err)
		return
	}
	f := ProjectForm{Name: p.Name, Description: p.Description, Region: p.Region, Type: string(p.Type),
		SpeedLimit: strconv.Itoa(int(p.SpeedLimit)), EnterpriseProject: p.EnterpriseProject,
		StartTargetServer: p.StartTargetServer, UsePublicIP: p.UsePublicIP, ExistServer: p.ExistServer,
		Syncing: p.Syncing, StartNetworkCheck: p.StartNetworkCheck}
	k.render(c, http.StatusOK, "project_form", s, projectPage{ID: p.ID, Form: f})
}

func (k *Console) updateProject(c *gin.Context) {
	s := mustSession(c)
	f := readProjectForm(c)
	id := c.Param("id")
	if err := k.d.Projects.UpdateProject(c.Request.Context(), s.principal, id, f); err != nil {
		if isNotFound(err) {
			k.NotFound(c)
			return
		}
		fe, general, ok := formErrors(err)
		if !ok {
			k.fail(c, err)
			return
		}
		k.render(c, http.StatusOK, "project_form", s, projectPage{ID: id, Form: f, Errors: fe, General: general})
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/projects")
}

// refusalText is an API refusal as the console shows it: the SMS code, the
// message and the details that add to it.
func refusalText(e *smserr.Error) string {
	msg := string(e.Code) + ": " + e.Message
	for _, d := range e.Details {
		if d.Message != "" && d.Message != e.Message {
			msg += " — " + d.Message
		}
	}
	return msg
}

// isNotFound: the id names nothing of the session's domain, whether the
// API (404) or the store said so.
func isNotFound(err error) bool {
	if errors.Is(err, store.ErrNotFound) {
		return true
	}
	e, ok := smserr.As(err)
	return ok && e.Status == http.StatusNotFound
}

func (k *Console) deleteProject(c *gin.Context) {
	s := mustSession(c)
	if err := k.d.Projects.DeleteProject(c.Request.Context(), s.principal, c.Param("id")); err != nil {
		if isNotFound(err) {
			k.NotFound(c)
			return
		}
		if _, general, ok := formErrors(err); ok {
			k.errorPage(c, http.StatusConflict, "The project was not deleted", general)
			return
		}
		k.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/projects")
}

// sourcePageSize is the sources table's page.
const sourcePageSize = 50

// sources: the table with filters and paging, through the store's list
// query (the API's GET /v3/sources).
func (k *Console) sources(c *gin.Context) {
	s := mustSession(c)
	ctx, t := c.Request.Context(), s.principal.Tenant()
	f := store.SourceFilter{State: c.Query("state"), MigProjectID: c.Query("project"), Name: c.Query("name")}
	switch c.Query("connected") {
	case "yes":
		f.Connected = new(true)
	case "no":
		f.Connected = new(false)
	}
	if f.Connected != nil {
		f.ConnectedSince = k.d.Now().Add(-k.d.AgentTimeout).UnixMilli()
	}
	page, _ := strconv.Atoi(c.Query("page"))
	page = max(page, 1)
	rows, n, err := k.d.Store.SourceRows(ctx, t, f, store.Page{Limit: sourcePageSize, Offset: (page - 1) * sourcePageSize})
	if err != nil {
		k.fail(c, err)
		return
	}
	projects, _, err := k.d.Store.MigProjects(ctx, t, store.Page{Limit: 1000})
	if err != nil {
		k.fail(c, err)
		return
	}
	q := c.Request.URL.Query()
	pageURL := func(p int) string {
		q.Set("page", strconv.Itoa(p))
		return Prefix + "/sources?" + q.Encode()
	}
	pages := int((n + sourcePageSize - 1) / sourcePageSize)
	data := gin.H{"Rows": rows, "Total": n, "Page": page, "Pages": max(pages, 1), "Projects": projects,
		"States": sms.SourceStates, "Filter": gin.H{"State": f.State, "Project": f.MigProjectID, "Name": f.Name,
			"Connected": c.Query("connected")},
		"Filtered": f != (store.SourceFilter{}) || c.Query("connected") != "",
		"Endpoint": endpoint(c), "ProjectID": s.principal.ProjectID, "ConnectedSince": k.d.Now().Add(-k.d.AgentTimeout).UnixMilli()}
	if page > 1 {
		data["Prev"] = pageURL(page - 1)
	}
	if page < pages {
		data["Next"] = pageURL(page + 1)
	}
	for _, p := range projects {
		if p.IsDefault {
			data["DefaultProject"] = p.ID
		}
	}
	if n > 0 {
		// The bulk form's waves (the API answers for those that take no
		// more members).
		waves, _, err := k.d.Store.ListWaves(ctx, t, store.WaveFilter{}, store.Page{Limit: 200})
		if err != nil {
			k.fail(c, err)
			return
		}
		data["Waves"] = waves
	}
	back := c.Request.URL.Query()
	back.Del("done")
	data["Back"] = Prefix + "/sources"
	if len(back) > 0 {
		data["Back"] = Prefix + "/sources?" + back.Encode()
	}
	if done := c.Query("done"); len(done) < 200 {
		data["Done"] = done
	}
	k.render(c, http.StatusOK, "sources", s, data)
}

// endpoint is the API's address as the browser reached it, for the agent
// install command.
func endpoint(c *gin.Context) string {
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

func (k *Console) source(c *gin.Context) {
	s := mustSession(c)
	src, err := k.d.Store.Source(c.Request.Context(), s.principal.Tenant(), c.Param("id"))
	if err != nil {
		k.fail(c, err)
		return
	}
	data := gin.H{"Source": src, "Connected": src.LastVisitTime >= k.d.Now().Add(-k.d.AgentTimeout).UnixMilli()}
	tasks, _, err := k.d.Store.Tasks(c.Request.Context(), s.principal.Tenant(), store.TaskFilter{SourceID: src.ID}, store.Page{Limit: 1})
	if err != nil {
		k.fail(c, err)
		return
	}
	if len(tasks) > 0 {
		data["Task"] = &tasks[0]
	}
	k.render(c, http.StatusOK, "source", s, data)
}

func (k *Console) tasks(c *gin.Context) {
	s := mustSession(c)
	f := store.TaskFilter{State: c.Query("state"), Name: c.Query("name")}
	list, n, err := k.d.Store.Tasks(c.Request.Context(), s.principal.Tenant(), f, store.Page{Limit: 100})
	if err != nil {
		k.fail(c, err)
		return
	}
	data := gin.H{"Tasks": list, "Total": n, "Filter": f, "States": sms.TaskStates, "Sources": int64(1)}
	if n == 0 {
		// No task: say how to get a source, when there is none either.
		_, nsrc, err := k.d.Store.SourceRows(c.Request.Context(), s.principal.Tenant(), store.SourceFilter{}, store.Page{})
		if err != nil {
			k.fail(c, err)
			return
		}
		data["Sources"] = nsrc
	}
	k.render(c, http.StatusOK, "tasks", s, data)
}

// task is a task's page; its live part (taskLive) is one fragment polled
// every 2 s: one request per tick whatever the page shows.
func (k *Console) task(c *gin.Context) {
	s := mustSession(c)
	tk, err := k.d.Store.Task(c.Request.Context(), s.principal.Tenant(), c.Param("id"))
	if err != nil {
		k.fail(c, err)
		return
	}
	data, err := k.taskData(c, s, tk)
	if err != nil {
		k.fail(c, err)
		return
	}
	if err := k.taskExtras(c, s, tk, data); err != nil {
		k.fail(c, err)
		return
	}
	k.render(c, http.StatusOK, "task", s, data)
}

// agentLogLines is how much of the newest agent log the task page shows.
const agentLogLines = 40

// taskExtras adds the parts of the task page that the live fragment does
// not redraw: the speed-limit form, the network check and consistency
// results, the agent log and the link to the run.
func (k *Console) taskExtras(c *gin.Context, s *session, tk *store.Task, data gin.H) error {
	data["Speed"] = speedRows(tk)
	data["Network"] = tk.NetworkCheckInfo
	data["Consistency"] = tk.ConsistencyResults
	if k.d.Tasks != nil {
		data["RunURL"] = k.d.Tasks.RunURL(tk.ID)
	}
	l, err := k.d.Store.LatestAgentLog(c.Request.Context(), s.principal.Tenant(), tk.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		text, err := l.Text()
		if err != nil {
			return err
		}
		data["Log"] = gin.H{"At": l.CreatedAt, "Size": l.Size, "Tail": logTail(text, agentLogLines)}
	}
	return nil
}

// button is a task action as the page shows it: disabled, with the reason,
// when the run would refuse it now (workflows.ValidateAction on the state
// the store last saw: the run decides, the page only predicts).
type button struct {
	Op, Label, Reason, Confirm string
	// Title says what the button does when its label alone does not.
	Title string
}

// syncTitle explains the start of a finished task: the run does not copy
// everything again, it runs one more synchronization pass into the target
// (workflows.ValidateActionIn), so the button says "Sync".
const syncTitle = "Run one more synchronization pass: copy the changes made on the source since the last pass into the target."

var taskButtons = []struct {
	op             sms.Action
	label, confirm string
}{
	{sms.ActionStart, "Start", ""},
	{sms.ActionStop, "Stop", "Stop this migration? The copy pauses until it is started again."},
	{sms.ActionRestart, "Restart", "Restart this migration? It resumes from the failed step."},
	{sms.ActionTest, "Launch target", "Launch the target server? The last sync runs and the source is cut over."},
	{sms.ActionNetworkCheck, "Check network", ""},
}

func (k *Console) taskData(c *gin.Context, s *session, tk *store.Task) (gin.H, error) {
	samples, err := k.d.Store.SpeedSamples(c.Request.Context(), s.principal.Tenant(), tk.ID, chartPoints)
	if err != nil {
		return nil, err
	}
	var bs []button
	for _, b := range taskButtons {
		reason := ""
		if err := workflows.ValidateAction(tk.State, tk.State == sms.TaskSyncing, tk.TargetStarted,
			workflows.ActionRequest{Operation: b.op}); err != nil {
			reason = err.Error()
			var ae *temporal.ApplicationError
			if errors.As(err, &ae) {
				reason = ae.Type() + ": " + ae.Message()
			}
		}
		bt := button{Op: string(b.op), Label: b.label, Reason: reason, Confirm: b.confirm}
		if b.op == sms.ActionStart && tk.State.Finished() {
			bt.Label, bt.Title = "Sync", syncTitle
		}
		bs = append(bs, bt)
	}
	return gin.H{"Task": tk, "Buttons": bs, "Chart": speedChart(samples), "Failure": taskFailure(tk.ErrorJSON)}, nil
}

// taskAction runs a button's operation, then shows the task again.
func (k *Console) taskAction(c *gin.Context) {
	s := mustSession(c)
	id, op := c.Param("id"), sms.Action(c.PostForm("operation"))
	if !slices.Contains(sms.Actions, op) {
		k.errorPage(c, http.StatusBadRequest, "Unknown action", "SMS.9001: operation must be one of the task actions.")
		return
	}
	if k.d.Tasks == nil {
		k.errorPage(c, http.StatusServiceUnavailable, "Actions unavailable", "This server runs no task workflows.")
		return
	}
	if err := k.d.Tasks.TaskAction(c.Request.Context(), s.principal, id, op); err != nil {
		if isNotFound(err) {
			k.NotFound(c)
			return
		}
		if e, ok := smserr.As(err); ok && e.Status < 500 {
			_, general, _ := formErrors(err)
			if general == "" {
				general = string(e.Code) + ": " + e.Message
			}
			k.errorPage(c, e.Status, "The task refused "+string(op), general)
			return
		}
		k.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/tasks/"+url.PathEscape(id))
}

// taskLive answers the task page's live fragment alone.
func (k *Console) taskLive(c *gin.Context) {
	s := mustSession(c)
	tk, err := k.d.Store.Task(c.Request.Context(), s.principal.Tenant(), c.Param("id"))
	if err != nil {
		k.fail(c, err)
		return
	}
	data, err := k.taskData(c, s, tk)
	if err != nil {
		k.fail(c, err)
		return
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	v := view{Session: s, CSRF: s.data.CSRF, Data: data}
	if err := k.pages["task"].ExecuteTemplate(c.Writer, "live", v); err != nil {
		k.d.Logger.ErrorContext(c.Request.Context(), "console render", "page", "task live", "err", err)
	}
}

func (k *Console) templates(c *gin.Context) {
	s := mustSession(c)
	list, n, err := k.d.Store.Templates(c.Request.Context(), s.principal.Tenant(), store.TemplateFilter{}, store.Page{Limit: 200})
	if err != nil {
		k.fail(c, err)
		return
	}
	k.render(c, http.StatusOK, "templates", s, gin.H{"Templates": list, "Total": n})
}

// templatePage is the template form's data.
type templatePage struct {
	// ID is the template being edited ("" on create).
	ID      string
	Form    TemplateForm
	FormID  string
	Errors  map[string]string
	General string
	// HasPassword tells the edit form that a password is stored (never
	// what it is).
	HasPassword bool
}

func (k *Console) newTemplate(c *gin.Context) {
	s := mustSession(c)
	k.render(c, http.StatusOK, "template_form", s, templatePage{Form: TemplateForm{Region: "local", ProjectID: s.principal.ProjectID},
		FormID: secret.RandomString(24, secret.AlphaNumeric)})
}

func readTemplateForm(c *gin.Context) TemplateForm {
	return TemplateForm{Name: c.PostForm("name"), Region: c.PostForm("region"), ProjectID: c.PostForm("projectid"),
		TargetServerName: c.PostForm("target_server_name"), AvailabilityZone: c.PostForm("availability_zone"),
		VolumeType: c.PostForm("volumetype"), Flavor: c.PostForm("flavor"), TargetPassword: c.PostForm("target_password")}
}

// templateErrors places a template error next to its field: the API names
// them "template.<field>".
func templateErrors(err error) (map[string]string, string, bool) {
	fe, general, ok := formErrors(err)
	for name, msg := range fe {
		if short, cut := strings.CutPrefix(name, "template."); cut {
			delete(fe, name)
			fe[short] = msg
		}
	}
	return fe, general, ok
}

func (k *Console) createTemplate(c *gin.Context) {
	s := mustSession(c)
	f := readTemplateForm(c)
	key := s.principal.DomainID + "\x00t\x00" + c.PostForm("form_id")
	if c.PostForm("form_id") != "" {
		if _, first := k.forms.claim(key); !first {
			c.Redirect(http.StatusSeeOther, Prefix+"/templates")
			return
		}
	}
	id, err := k.d.Templates.CreateTemplate(c.Request.Context(), s.principal, f)
	if err != nil {
		k.forms.release(key)
		fe, general, ok := templateErrors(err)
		if !ok {
			k.fail(c, err)
			return
		}
		f.TargetPassword = "" // write-only: typed again, never sent back
		k.render(c, http.StatusOK, "template_form", s, templatePage{Form: f, FormID: c.PostForm("form_id"), Errors: fe, General: general})
		return
	}
	k.forms.done(key, id)
	c.Redirect(http.StatusSeeOther, Prefix+"/templates")
}

func (k *Console) editTemplate(c *gin.Context) {
	s := mustSession(c)
	tpl, err := k.d.Store.Template(c.Request.Context(), s.principal.Tenant(), c.Param("id"))
	if err != nil {
		k.fail(c, err)
		return
	}
	f := TemplateForm{Name: tpl.Name, Region: tpl.Region, ProjectID: tpl.ProjectID, TargetServerName: tpl.TargetServerName,
		AvailabilityZone: tpl.AvailabilityZone, VolumeType: tpl.VolumeType, Flavor: tpl.Flavor}
	k.render(c, http.StatusOK, "template_form", s, templatePage{ID: tpl.ID, Form: f, HasPassword: tpl.TargetPasswordEnc != ""})
}

func (k *Console) updateTemplate(c *gin.Context) {
	s := mustSession(c)
	f := readTemplateForm(c)
	id := c.Param("id")
	if err := k.d.Templates.UpdateTemplate(c.Request.Context(), s.principal, id, f); err != nil {
		if isNotFound(err) {
			k.NotFound(c)
			return
		}
		fe, general, ok := templateErrors(err)
		if !ok {
			k.fail(c, err)
			return
		}
		tpl, terr := k.d.Store.Template(c.Request.Context(), s.principal.Tenant(), id)
		f.TargetPassword = ""
		k.render(c, http.StatusOK, "template_form", s, templatePage{ID: id, Form: f, Errors: fe, General: general,
			HasPassword: terr == nil && tpl.TargetPasswordEnc != ""})
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/templates")
}

func (k *Console) deleteTemplate(c *gin.Context) {
	s := mustSession(c)
	if err := k.d.Templates.DeleteTemplate(c.Request.Context(), s.principal, c.Param("id")); err != nil {
		if isNotFound(err) {
			k.NotFound(c)
			return
		}
		k.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/templates")
}

func (k *Console) waves(c *gin.Context) {
	s := mustSession(c)
	list, n, err := k.d.Store.ListWaves(c.Request.Context(), s.principal.Tenant(), store.WaveFilter{}, store.Page{Limit: 200})
	if err != nil {
		k.fail(c, err)
		return
	}
	k.render(c, http.StatusOK, "waves", s, gin.H{"Waves": list, "Total": n})
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func fmtSeconds(n int64) string {
	if n <= 0 {
		return "—"
	}
	return (time.Duration(n) * time.Second).String()
}

func fmtMs(ms int64) string {
	if ms <= 0 {
		return "—"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04 UTC")
}
