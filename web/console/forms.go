package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// The forms whose rules live in an API handler (tasks, speed limits,
// source moves and deletes, wave members) call that handler through
// Deps.API as the session's user: the console never re-implements them.

// call runs an API request as the session's user.
func (k *Console) call(c *gin.Context, s *session, method, path string, in, out any) error {
	if k.d.API == nil {
		return smserr.New(smserr.InternalCode).WithStatus(http.StatusServiceUnavailable)
	}
	if strings.Contains(strings.ToLower(path), "%2f") {
		// An id holding a '/' (escaped here) would be unescaped by the
		// router and reach another route ("x/changestate"): no id has
		// one, so it names nothing.
		return smserr.New(smserr.SMS9001, "id").WithStatus(http.StatusNotFound)
	}
	return k.d.API.Call(c.Request.Context(), s.data.Token, method, path, in, out)
}

// refused shows an API refusal that names no form field: the error page
// with the API's status, code and message; 404 is the not-found page (an
// id of another domain reads as missing); anything else is the generic
// error page.
func (k *Console) refused(c *gin.Context, title string, err error) {
	if isNotFound(err) {
		k.NotFound(c)
		return
	}
	if e, ok := smserr.As(err); ok && e.Status < 500 {
		k.errorPage(c, e.Status, title, refusalText(e))
		return
	}
	k.fail(c, err)
}

// bulkOps are the sources table's bulk actions.
var bulkOps = map[string]string{"move": "moved", "delete": "deleted", "wave": "added to the wave"}

// bulkSources runs a bulk action on the selected sources: move them to a
// migration project (PUT /v3/sources/{id} with migprojectid), delete them
// (POST /v3/sources/delete, all or nothing) or add them to a wave (POST
// /v3/waves/{id}/members).
func (k *Console) bulkSources(c *gin.Context) {
	s := mustSession(c)
	op, ids := c.PostForm("op"), c.PostFormArray("ids")
	back := safeNext(c.PostForm("back"))
	if !strings.HasPrefix(back, Prefix+"/sources") {
		back = Prefix + "/sources"
	}
	done, known := bulkOps[op]
	switch {
	case !known:
		k.errorPage(c, http.StatusBadRequest, "Unknown action", "SMS.9001: op must be move, delete or wave.")
		return
	case len(ids) == 0:
		k.errorPage(c, http.StatusBadRequest, "No source selected", "SMS.6013: select at least one source.")
		return
	}
	var err error
	switch op {
	case "move":
		project := c.PostForm("project")
		if project == "" {
			k.errorPage(c, http.StatusBadRequest, "No project chosen", "SMS.6013: migprojectid: choose the project to move to.")
			return
		}
		for _, id := range ids {
			if err = k.call(c, s, http.MethodPut, "/v3/sources/"+url.PathEscape(id), gin.H{"migprojectid": project}, nil); err != nil {
				break
			}
		}
	case "delete":
		err = k.call(c, s, http.MethodPost, "/v3/sources/delete", gin.H{"ids": ids}, nil)
	case "wave":
		wave := c.PostForm("wave")
		if wave == "" {
			k.errorPage(c, http.StatusBadRequest, "No wave chosen", "SMS.6013: wave: choose the wave to add to.")
			return
		}
		members := make([]gin.H, len(ids))
		for i, id := range ids {
			members[i] = gin.H{"source_id": id}
		}
		err = k.call(c, s, http.MethodPost, "/v3/waves/"+url.PathEscape(wave)+"/members", gin.H{"members": members}, nil)
	}
	if err != nil {
		k.refused(c, "The sources were not "+done, err)
		return
	}
	u, _ := url.Parse(back)
	q := u.Query()
	q.Set("done", fmt.Sprintf("%d source(s) %s.", len(ids), done))
	u.RawQuery = q.Encode()
	c.Redirect(http.StatusSeeOther, u.String())
}

// TaskForm is the create-task form as posted: strings as typed, the
// checkboxes as booleans.
type TaskForm struct {
	Name, Type, TemplateID, TargetName, RegionName, RegionID, ProjectName, ProjectID, SpeedLimit, Priority string
	Syncing, StartTargetServer, UsePublicIP, StartNetworkCheck, ConsistencyCheck, AutoStart                bool
}

// taskPage is the create-task form's data.
type taskPage struct {
	Source    *store.Source
	Form      TaskForm
	FormID    string
	Templates []store.TemplateDoc
	Errors    map[string]string
	General   string
}

// taskFields maps the API's field names to the form's.
var taskFields = map[string]string{"target_server.name": "target_name", "vm_template_id": "template",
	"region_name": "region_name", "region_id": "region_id", "project_name": "project_name", "project_id": "project_id",
	"speed_limit": "speed_limit", "priority": "priority", "name": "name", "type": "type", "os_type": "type",
	"source_server.id": "", "target_server.vm_id": ""}

// newTask is the create-task form, prefilled from the source and its
// migration project.
func (k *Console) newTask(c *gin.Context) {
	s := mustSession(c)
	ctx, t := c.Request.Context(), s.principal.Tenant()
	src, err := k.d.Store.Source(ctx, t, c.Param("id"))
	if err != nil {
		k.fail(c, err)
		return
	}
	f := TaskForm{Name: src.Name, Type: string(sms.MigrateBlock), TargetName: src.Name + "-target",
		RegionName: "local", RegionID: "local", ProjectName: s.principal.ProjectName, ProjectID: s.principal.ProjectID,
		SpeedLimit: "0", Priority: "1", StartTargetServer: true, UsePublicIP: true, AutoStart: true}
	if mp, err := k.d.Store.MigProject(ctx, t, src.MigProjectID); err == nil {
		f.Type, f.SpeedLimit = string(mp.Type), strconv.Itoa(int(mp.SpeedLimit))
		f.Syncing, f.StartTargetServer, f.UsePublicIP, f.StartNetworkCheck = mp.Syncing, mp.StartTargetServer, mp.UsePublicIP, mp.StartNetworkCheck
		if mp.Region != "" {
			f.RegionName, f.RegionID = mp.Region, mp.Region
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		k.fail(c, err)
		return
	}
	page := taskPage{Source: src, Form: f, FormID: secret.RandomString(24, secret.AlphaNumeric)}
	if page.Templates, err = k.taskTemplates(c, s); err != nil {
		k.fail(c, err)
		return
	}
	k.render(c, http.StatusOK, "task_form", s, page)
}

func (k *Console) taskTemplates(c *gin.Context, s *session) ([]store.TemplateDoc, error) {
	list, _, err := k.d.Store.Templates(c.Request.Context(), s.principal.Tenant(), store.TemplateFilter{}, store.Page{Limit: 200})
	return list, err
}

// taskBody is the form as POST /v3/tasks takes it. A number that does not
// parse is refused here with the API's code for a bad value.
func taskBody(srcID string, f TaskForm) (gin.H, map[string]string) {
	b := gin.H{"name": f.Name, "type": f.Type, "source_server": gin.H{"id": srcID},
		"target_server": gin.H{"name": f.TargetName}, "region_name": f.RegionName, "region_id": f.RegionID,
		"project_name": f.ProjectName, "project_id": f.ProjectID, "syncing": f.Syncing,
		"start_target_server": f.StartTargetServer, "use_public_ip": f.UsePublicIP, "start_network_check": f.StartNetworkCheck,
		"is_need_consistency_check": f.ConsistencyCheck, "auto_start": f.AutoStart}
	if f.TemplateID != "" {
		b["vm_template_id"] = f.TemplateID
	}
	errs := map[string]string{}
	for _, n := range []struct{ form, api, value string }{{"speed_limit", "speed_limit", f.SpeedLimit}, {"priority", "priority", f.Priority}} {
		if strings.TrimSpace(n.value) == "" {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(n.value), 10, 32)
		if err != nil {
			errs[n.form] = string(smserr.SMS9001) + ": " + n.api + ": must be a whole number"
			continue
		}
		b[n.api] = v
	}
	return b, errs
}

// createTask creates the task through POST /v3/tasks; a form sent twice
// creates one task.
func (k *Console) createTask(c *gin.Context) {
	s := mustSession(c)
	ctx, t := c.Request.Context(), s.principal.Tenant()
	src, err := k.d.Store.Source(ctx, t, c.Param("id"))
	if err != nil {
		k.fail(c, err)
		return
	}
	on := func(name string) bool { return c.PostForm(name) == "on" || c.PostForm(name) == "true" }
	f := TaskForm{Name: c.PostForm("name"), Type: c.PostForm("type"), TemplateID: c.PostForm("template"),
		TargetName: c.PostForm("target_name"), RegionName: c.PostForm("region_name"), RegionID: c.PostForm("region_id"),
		ProjectName: c.PostForm("project_name"), ProjectID: c.PostForm("project_id"), SpeedLimit: c.PostForm("speed_limit"),
		Priority: c.PostForm("priority"), Syncing: on("syncing"), StartTargetServer: on("start_target_server"),
		UsePublicIP: on("use_public_ip"), StartNetworkCheck: on("start_network_check"),
		ConsistencyCheck: on("is_need_consistency_check"), AutoStart: on("auto_start")}
	formID := c.PostForm("form_id")
	key := s.principal.DomainID + "\x00task\x00" + formID
	if formID != "" {
		if id, first := k.forms.claim(key); !first {
			// The same form again: where the first went, no second task.
			if id == "" {
				c.Redirect(http.StatusSeeOther, Prefix+"/tasks")
			} else {
				c.Redirect(http.StatusSeeOther, Prefix+"/tasks/"+url.PathEscape(id))
			}
			return
		}
	}
	show := func(fe map[string]string, general string) {
		k.forms.release(key)
		page := taskPage{Source: src, Form: f, FormID: formID, Errors: fe, General: general}
		var terr error
		if page.Templates, terr = k.taskTemplates(c, s); terr != nil {
			k.fail(c, terr)
			return
		}
		k.render(c, http.StatusOK, "task_form", s, page)
	}
	body, fe := taskBody(src.ID, f)
	if len(fe) > 0 {
		show(fe, "")
		return
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := k.call(c, s, http.MethodPost, "/v3/tasks", body, &out); err != nil {
		fe, general, ok := formErrors(err)
		if !ok {
			k.forms.release(key)
			k.fail(c, err)
			return
		}
		mapped := map[string]string{}
		for name, msg := range fe {
			if f.TemplateID != "" && name == f.TemplateID {
				// A missing template (SMS.7101) names its id: the
				// template field's error.
				mapped["template"] = msg
			} else if to, known := taskFields[name]; known && to != "" {
				mapped[to] = msg
			} else {
				general = msg
			}
		}
		show(mapped, general)
		return
	}
	k.forms.done(key, out.ID)
	c.Redirect(http.StatusSeeOther, Prefix+"/tasks/"+url.PathEscape(out.ID))
}

// speedRow is one speed-limit window in the task page's form.
type speedRow struct {
	Start, End, Speed, Threshold string
	Err                          string
}

// speedRows are a task's windows as the form shows them, with one blank
// row to add a window.
func speedRows(tk *store.Task) []speedRow {
	var rows []speedRow
	for _, r := range tk.SpeedRules {
		row := speedRow{Start: r.Start, End: r.End}
		if r.Speed != nil {
			row.Speed = strconv.Itoa(int(*r.Speed))
		}
		if r.OverSpeedThreshold != nil {
			row.Threshold = strconv.FormatFloat(*r.OverSpeedThreshold, 'f', -1, 64)
		}
		rows = append(rows, row)
	}
	return append(rows, speedRow{})
}

// setSpeed replaces the task's speed-limit windows through POST
// /v3/tasks/{id}/speed-limit (its rules and codes); blank rows are
// dropped. A refusal shows the task page with the message on its row.
func (k *Console) setSpeed(c *gin.Context) {
	s := mustSession(c)
	id := c.Param("id")
	starts, ends, speeds, ths := c.PostFormArray("start"), c.PostFormArray("end"), c.PostFormArray("speed"), c.PostFormArray("threshold")
	at := func(v []string, i int) string {
		if i < len(v) {
			return strings.TrimSpace(v[i])
		}
		return ""
	}
	var rows []speedRow
	var rules []gin.H
	local := false
	for i := range max(len(starts), len(ends), len(speeds)) {
		row := speedRow{Start: at(starts, i), End: at(ends, i), Speed: at(speeds, i), Threshold: at(ths, i)}
		if row == (speedRow{}) {
			continue
		}
		rule := gin.H{"start": row.Start, "end": row.End}
		if row.Speed != "" {
			n, err := strconv.ParseInt(row.Speed, 10, 32)
			if err != nil {
				row.Err, local = string(smserr.SMS9001)+": speed: must be a whole number of Mbit/s", true
			}
			rule["speed"] = n
		}
		if row.Threshold != "" {
			x, err := strconv.ParseFloat(row.Threshold, 64)
			if err != nil {
				row.Err, local = string(smserr.SMS9001)+": over_speed_threshold: must be a number", true
			}
			rule["over_speed_threshold"] = x
		}
		rows, rules = append(rows, row), append(rules, rule)
	}
	if rules == nil {
		rules = []gin.H{}
	}
	var err error
	if !local {
		err = k.call(c, s, http.MethodPost, "/v3/tasks/"+url.PathEscape(id)+"/speed-limit", gin.H{"speed_limit": rules}, nil)
		if err == nil {
			c.Redirect(http.StatusSeeOther, Prefix+"/tasks/"+url.PathEscape(id)+"#speed")
			return
		}
		if e, ok := smserr.As(err); !ok || e.Status >= 500 || e.Status == http.StatusNotFound {
			k.refused(c, "The speed limits were not saved", err)
			return
		}
	}
	// Each message goes on its window's row (the API names them
	// speed_limit[i].field); the rest above the table.
	general := ""
	if err != nil {
		e, _ := smserr.As(err)
		msg := string(e.Code) + ": " + e.Message
		for _, d := range e.Details {
			if d.Message != "" && d.Message != e.Message {
				msg += " — " + d.Message
			}
		}
		placed := false
		for _, p := range e.Params {
			var i int
			if _, serr := fmt.Sscanf(p, "speed_limit[%d]", &i); serr == nil && i >= 0 && i < len(rows) {
				rows[i].Err, placed = msg, true
			}
		}
		if !placed {
			general = msg
		}
	}
	tk, terr := k.d.Store.Task(c.Request.Context(), s.principal.Tenant(), id)
	if terr != nil {
		k.fail(c, terr)
		return
	}
	data, derr := k.taskData(c, s, tk)
	if derr != nil {
		k.fail(c, derr)
		return
	}
	data["Speed"] = append(rows, speedRow{})
	data["SpeedError"] = general
	k.render(c, http.StatusOK, "task", s, data)
}

// collectLog asks the agent for its log (POST /v3/tasks/{id}/log).
func (k *Console) collectLog(c *gin.Context) {
	s := mustSession(c)
	id := c.Param("id")
	if err := k.call(c, s, http.MethodPost, "/v3/tasks/"+url.PathEscape(id)+"/log", gin.H{"log_bucket": "console"}, nil); err != nil {
		k.refused(c, "The agent log was not requested", err)
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/tasks/"+url.PathEscape(id)+"#log")
}

// agentLog downloads the newest uploaded agent log of a task.
func (k *Console) agentLog(c *gin.Context) {
	s := mustSession(c)
	ctx, t, id := c.Request.Context(), s.principal.Tenant(), c.Param("id")
	if _, err := k.d.Store.Task(ctx, t, id); err != nil {
		k.fail(c, err)
		return
	}
	l, err := k.d.Store.LatestAgentLog(ctx, t, id)
	if err != nil {
		k.fail(c, err)
		return
	}
	text, err := l.Text()
	if err != nil {
		k.fail(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="sms-agent-`+id+`.log"`)
	c.Data(http.StatusOK, "text/plain; charset=utf-8", text)
}

// failure is a task's error_json as the page shows it.
type failure struct {
	Code, Message, Param string
}

// taskFailure reads a task's error_json ({"error_code","error_msg",
// "error_param"}); nil when there is none.
func taskFailure(j string) *failure {
	if errorText(j) == "" {
		return nil
	}
	var raw struct {
		Code  string `json:"error_code"`
		Msg   string `json:"error_msg"`
		Param string `json:"error_param"`
	}
	if json.Unmarshal([]byte(j), &raw) != nil || raw.Code == "" {
		return &failure{Message: j}
	}
	f := &failure{Code: raw.Code, Message: raw.Msg}
	var ps []string
	if json.Unmarshal([]byte(raw.Param), &ps) == nil {
		f.Param = strings.Join(ps, ", ")
	}
	return f
}

// logTail is the end of an agent log for the task page: its last lines.
func logTail(text []byte, lines int) string {
	s := strings.TrimRight(string(text), "\n")
	for i, n := len(s)-1, 0; i >= 0; i-- {
		if s[i] == '\n' {
			if n++; n == lines {
				return s[i+1:]
			}
		}
	}
	return s
}
