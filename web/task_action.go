package web

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/sms/speedlimit"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/workflows"
)

var taskOperations = names(sms.Actions)

// action: POST /v3/tasks/{id}/action. The operation runs as an Update on the
// task's workflow; the workflow's validator decides, with the SMS code of
// the rule it applies (SMS.7713–SMS.7723).
func (h taskHandlers) action(c *gin.Context, r request) {
	var b struct {
		Operation              *string `json:"operation"`
		TemplateID             *string `json:"template_id"`
		SwitchHce              *bool   `json:"switch_hce"`
		IsNeedConsistencyCheck *bool   `json:"is_need_consistency_check"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	var v checks
	v.enum("operation", b.Operation, required, taskOperations...)
	v.str("template_id", b.TemplateID, optional, 0, 2048)
	if ptr.Deref(b.SwitchHce) {
		// Switching the target's OS to Huawei Cloud EulerOS needs the
		// hosted service's images and conversion tools: smsflow has none,
		// so it refuses rather than accept and ignore it.
		v.invalid("switch_hce", "switching the target to HCE is not supported by smsflow")
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	op := sms.Action(*b.Operation)
	req := workflows.ActionRequest{Operation: op, TemplateID: ptr.Deref(b.TemplateID),
		IsNeedConsistencyCheck: ptr.Deref(b.IsNeedConsistencyCheck)}
	// is_need_consistency_check on start or restart sets the task's
	// verification from then on; absent, the task keeps its own setting
	// (the spec's default false would silently turn the check off).
	setCheck := b.IsNeedConsistencyCheck != nil && (op == sms.ActionStart || op == sms.ActionRestart)
	if setCheck {
		req.ConsistencyCheck = b.IsNeedConsistencyCheck
	}
	if op == sms.ActionCloneTest && req.TemplateID == "" {
		// A clone test that names no template takes the task's
		// clonevm_template_id (runAction answers a missing task).
		if task, err := h.store.Task(ctx, r.tenant, r.id); err == nil {
			req.TemplateID = task.CloneVMTemplateID
		}
	}
	if err := h.runAction(ctx, r.tenant, r.id, req); err != nil {
		fail(c, err)
		return
	}
	if setCheck {
		err := h.store.UpdateTask(ctx, r.tenant, r.id, func(task *store.Task) error {
			task.IsNeedConsistencyCheck = *b.IsNeedConsistencyCheck
			return nil
		})
		if err != nil {
			fail(c, taskError(err, r.id))
			return
		}
	}
	logFor(c).InfoContext(ctx, "task action", "task", r.id, "operation", *b.Operation)
	okEmpty(c)
}

// runAction sends an operation to the tenant's task's workflow: the API's
// action and the console's buttons both go through it.
func (h taskHandlers) runAction(ctx context.Context, t store.Tenant, id string, req workflows.ActionRequest) error {
	if _, err := h.store.Task(ctx, t, id); err != nil {
		return taskError(err, id)
	}
	// clone_test's template_id is the clone's template: one of the
	// tenant's (SMS.7101 404 otherwise, as for another tenant's ids).
	if req.Operation == sms.ActionCloneTest && req.TemplateID != "" {
		if _, err := h.store.Template(ctx, t, req.TemplateID); err != nil {
			return templateError(err, req.TemplateID)
		}
	}
	if h.engine == nil {
		return smserr.New(smserr.SMS7713, id).WithDetail("this server runs no task workflows")
	}
	err := h.engine.Action(ctx, id, req)
	if errors.Is(err, engine.ErrNoRun) {
		return smserr.New(smserr.SMS7713, id).WithDetail("the task's workflow is not running (terminated from the Temporal UI?)")
	}
	return err
}

// progressThrottle decides which progress reports the task's workflow hears
// of: every report is written to the database, but each signal grows the
// run's history, so only what the workflow acts on goes at once — a
// finished step (100 %), a speed over the limit and the first report back
// under it (the over-speed grace restarts), a report on another sub-task
// — and otherwise one report every keepAlive, which tells the workflow the
// agent is alive (a step silent for agent_step_timeout fails). At 5 s it
// was about 2,400 events an hour.
type progressThrottle struct {
	mu        sync.Mutex
	last      map[string]forwardedReport
	keepAlive time.Duration
}

// forwardedReport is what the workflow last heard from a task's agent.
type forwardedReport struct {
	at      time.Time
	subtask sms.Subtask
	over    bool
}

func newProgressThrottle(keepAlive time.Duration) *progressThrottle {
	return &progressThrottle{last: map[string]forwardedReport{}, keepAlive: keepAlive}
}

// progressKeepAlive is the gap between routine reports forwarded: a quarter
// of the silence a step tolerates (so a lost signal or two is harmless), at
// most 5 minutes.
func progressKeepAlive(stepTimeout time.Duration) time.Duration {
	if stepTimeout <= 0 {
		stepTimeout = 30 * time.Minute // the workflow's default
	}
	return min(stepTimeout/4, 5*time.Minute)
}

func (p *progressThrottle) due(taskID string, now time.Time, subtask sms.Subtask, progress int32, over bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	last, seen := p.last[taskID]
	urgent := !seen || progress >= 100 || over || last.over || subtask != last.subtask
	if !urgent && now.Sub(last.at) < p.keepAlive {
		return false
	}
	if len(p.last) > 100000 {
		clear(p.last)
	}
	p.last[taskID] = forwardedReport{at: now, subtask: subtask, over: over}
	return true
}

// progress: PUT /v3/tasks/{id}/progress, from the agent.
func (h taskHandlers) progress(c *gin.Context, r request) {
	var b progressBody
	if err := bindValid(c, &b); err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	t := r.tenant
	now := h.now()
	ms := now.UnixMilli()
	sub := sms.ParseSubtask(*b.SubtaskName)
	var limit int32
	var threshold float64
	err := h.store.UpdateTaskProgress(ctx, t, r.id, func(task *store.Task) error {
		if task.State != sms.TaskRunning && task.State != sms.TaskSyncing {
			return smserr.New(smserr.SMS0501, r.id).WithDetail("the task is " + string(task.State) + ", not running")
		}
		found := false
		for i := range task.SubTasks {
			st := &task.SubTasks[i]
			if st.Name != sub {
				continue
			}
			found = true
			st.Progress = *b.Progress
			st.MigrateSpeed = b.MigrateSpeed
			trace := *b.ProcessTrace
			st.ProcessTrace = &trace
			if st.StartDate == nil {
				st.StartDate = &ms
			}
		}
		if !found {
			return smserr.New(smserr.SMS6004, "subtask_name").WithDetail(string(sub) + " is not a step of this task")
		}
		task.Replicatesize, task.Totalsize = *b.Replicatesize, *b.Totalsize
		set(&task.MigrateSpeed, b.MigrateSpeed)
		set(&task.CompressRate, b.CompressRate)
		set(&task.TotalCPUUsage, b.TotalCPUUsage)
		set(&task.AgentCPUUsage, b.AgentCPUUsage)
		set(&task.TotalMemUsage, b.TotalMemUsage)
		set(&task.AgentMemUsage, b.AgentMemUsage)
		set(&task.TotalDiskIO, b.TotalDiskIO)
		set(&task.AgentDiskIO, b.AgentDiskIO)
		set(&task.NeedMigrationTest, b.NeedMigrationTest)
		set(&task.AgentTime, b.AgentTime)
		if b.RemainTime != nil {
			task.RemainSeconds = *b.RemainTime
			task.EstimateCompleteTime = ms + *b.RemainTime*1000
		}
		task.LastProgressAt = ms
		task.SubtaskInfo = string(sub)
		limit, threshold = task.CurrentLimit, task.CurrentThreshold
		return nil
	})
	if err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	speed := ptr.Deref(b.MigrateSpeed)
	over := speedlimit.Over(speedlimit.Limit{Mbps: limit, Threshold: threshold}, speed)
	if h.throttle.due(r.id, now, sub, *b.Progress, over) {
		err := h.engine.Progress(ctx, r.id, workflows.Progress{Subtask: sub, Progress: *b.Progress, MigrateSpeed: speed, At: now})
		if err != nil && !errors.Is(err, engine.ErrNoRun) {
			fail(c, err)
			return
		}
	}
	okEmpty(c)
}

type speedRuleBody struct {
	Start              *string  `json:"start"`
	End                *string  `json:"end"`
	Speed              *int32   `json:"speed"`
	OverSpeedThreshold *float64 `json:"over_speed_threshold"`
}

// showSpeed: GET /v3/tasks/{id}/speed-limit answers the task's time windows
// as set (§4.2.9: an array of 0–65535 rules). A task without windows answers
// an empty list: its flat speed_limit is in the task itself, and a window
// the operator never set would be read back as one.
func (h taskHandlers) showSpeed(c *gin.Context, r request) {
	task, err := h.store.Task(c.Request.Context(), r.tenant, r.id)
	if err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	rules := task.SpeedRules
	if rules == nil {
		rules = []store.SpeedRule{}
	}
	ok(c, gin.H{"speed_limit": rules})
}

// setSpeed: POST /v3/tasks/{id}/speed-limit replaces the rules; the running
// workflow applies them at once.
func (h taskHandlers) setSpeed(c *gin.Context, r request) {
	var b struct {
		SpeedLimit *[]speedRuleBody `json:"speed_limit"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	var v checks
	if !v.required("speed_limit", b.SpeedLimit != nil) {
		fail(c, v.err())
		return
	}
	rules := make([]speedlimit.Rule, len(*b.SpeedLimit))
	stored := make([]store.SpeedRule, len(*b.SpeedLimit))
	for i, r := range *b.SpeedLimit {
		f := "speed_limit[" + itoa(i) + "]."
		v.str(f+"start", r.Start, required, 0, 255)
		v.str(f+"end", r.End, required, 0, 255)
		v.required(f+"speed", r.Speed != nil)
		rules[i] = speedlimit.Rule{Start: ptr.Deref(r.Start), End: ptr.Deref(r.End), Speed: ptr.Deref(r.Speed), OverSpeedThreshold: ptr.Deref(r.OverSpeedThreshold)}
		stored[i] = store.SpeedRule{Start: ptr.Deref(r.Start), End: ptr.Deref(r.End), Speed: r.Speed, OverSpeedThreshold: r.OverSpeedThreshold}
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	if _, errs := speedlimit.Parse(rules); len(errs) > 0 {
		code := smserr.SMS9001
		var fields []string
		for _, e := range errs {
			fields = append(fields, e.Field)
		}
		for _, r := range rules {
			_, errStart := speedlimit.ParseClock(r.Start)
			_, errEnd := speedlimit.ParseClock(r.End)
			if errStart != nil || errEnd != nil {
				code = smserr.SMS6405 // a time that is not HH:MM within the day
			}
		}
		e := smserr.New(code, fields...)
		for _, fe := range errs {
			e = e.WithDetail(fe.Error())
		}
		fail(c, e)
		return
	}
	ctx := c.Request.Context()
	var update workflows.SpeedUpdate
	err := h.store.UpdateTask(ctx, r.tenant, r.id, func(task *store.Task) error {
		task.SpeedRules = stored
		update = workflows.SpeedUpdate{Rules: rules, SpeedLimit: task.SpeedLimit, OverSpeedThreshold: task.OverSpeedThreshold}
		return nil
	})
	if err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	if err := h.engine.SpeedRules(ctx, r.id, update); err != nil && !errors.Is(err, engine.ErrNoRun) {
		fail(c, err)
		return
	}
	okEmpty(c)
}
