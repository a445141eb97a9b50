package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/workflows"
)

// CommandQueue hands out and closes agent commands.
type CommandQueue interface {
	Next(ctx context.Context, t store.Tenant, sourceID string, wait time.Duration) (*store.Command, error)
}

// CommandStore records command results.
type CommandStore interface {
	CompleteCommand(ctx context.Context, t store.Tenant, sourceID, id string, name sms.Command, result sms.CommandResult, detail string, now time.Time) (*store.Command, error)
}

// MaxCommandWait bounds the long-poll extension of GET .../command.
const MaxCommandWait = 30 * time.Second

// visitStampEvery: a poll stamps last_visit_time at most this often per
// source, so frequent polls do not turn into a write each; never more
// than a fifth of --agent-timeout (stampEvery), or a source polled every
// two seconds read disconnected between two stamps at the 5 s minimum.
const visitStampEvery = 5 * time.Second

// stampEvery is how often a source's visit is stamped under agentTimeout.
func stampEvery(agentTimeout time.Duration) time.Duration {
	if agentTimeout <= 0 {
		return visitStampEvery
	}
	return min(visitStampEvery, agentTimeout/5)
}

type commandHandlers struct {
	sources  SourceStore
	commands CommandStore
	tasks    TaskStore
	queue    CommandQueue
	engine   TaskEngine
	now      func() time.Time
	visits   *visitStamps
}

// visitStamps remembers when this process last wrote each source's
// last_visit_time, so a poll writes only when the stamp is stale: 1,000
// agents polling every second cost one write per agent every few seconds.
type visitStamps struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
}

func newVisitStamps(every time.Duration) *visitStamps {
	return &visitStamps{every: every, last: map[string]time.Time{}}
}

// due tells whether the source's stamp should be written now.
func (v *visitStamps) due(key string, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if last, ok := v.last[key]; ok && now.Sub(last) < v.every {
		return false
	}
	if len(v.last) > 1_000_000 {
		clear(v.last) // bound the memory; a few extra writes follow
	}
	v.last[key] = now
	return true
}

// sourceExists answers nil when the tenant has source id, and
// sourceNotFound's error (SMS.7602) when it has not.
func (h commandHandlers) sourceExists(ctx context.Context, t store.Tenant, id string) error {
	exists, err := h.sources.SourceExists(ctx, t, id)
	if err != nil {
		return err
	}
	if !exists {
		return sourceNotFound(id)
	}
	return nil
}

// next: GET /v3/sources/{id}/command. Without a command queued it answers
// {"command_name": ""} (the idle form: the name may be empty). Extension:
// ?wait=N (seconds, at most 30) holds the request until a command is queued
// or N seconds pass, so an agent learns of a command within a second without
// polling hard.
func (h commandHandlers) next(c *gin.Context, r request) {
	var wait time.Duration
	if raw := c.Query("wait"); raw != "" {
		secs, err := strconv.ParseFloat(raw, 64)
		if err != nil || secs < 0 || secs > MaxCommandWait.Seconds() {
			fail(c, smserr.New(smserr.SMS9001, "wait").WithDetail("wait: seconds from 0 to 30"))
			return
		}
		wait = time.Duration(secs * float64(time.Second))
	}
	t := r.tenant
	ctx := c.Request.Context()
	if err := h.sourceExists(ctx, t, r.id); err != nil {
		fail(c, err)
		return
	}
	if now := h.now(); h.visits.due(t.DomainID+"/"+r.id, now) {
		if err := h.sources.TouchSource(ctx, t, r.id, nowMs(now), h.visits.every.Milliseconds()); err != nil {
			fail(c, err)
			return
		}
	}
	cmd, err := h.queue.Next(ctx, t, r.id, wait)
	if err != nil {
		fail(c, err)
		return
	}
	// The poll's end is a visit too: an agent that waited longer than
	// --agent-timeout is still there. A failed stamp is logged, not
	// answered: the command is claimed and would wait for redelivery.
	if now := h.now(); wait > 0 && h.visits.due(t.DomainID+"/"+r.id, now) {
		if err := h.sources.TouchSource(ctx, t, r.id, nowMs(now), h.visits.every.Milliseconds()); err != nil {
			logFor(c).WarnContext(ctx, "last visit not stamped at the end of a poll", "source", r.id, "err", err)
		}
	}
	if cmd == nil {
		ok(c, gin.H{"command_name": ""})
		return
	}
	param := gin.H{"task_id": cmd.TaskID}
	if cmd.Bucket != "" {
		param["bucket"] = cmd.Bucket
	}
	if cmd.Params != "" {
		var extra map[string]any
		if json.Unmarshal([]byte(cmd.Params), &extra) == nil {
			for k, v := range extra {
				if _, taken := param[k]; !taken {
					param[k] = v
				}
			}
		}
	}
	logFor(c).InfoContext(ctx, "command handed out", "source", r.id, "command", cmd.Name, "command_id", cmd.ID, "task", cmd.TaskID, "delivery", cmd.Deliveries)
	// command_id (our extension; the SDK ignores it) names this command
	// apart from others of the same name: the agent runs a new SYNC queued
	// while the previous one finishes, and reports each result with its id.
	ok(c, gin.H{"command_name": cmd.Name, "command_id": cmd.ID, "command_param": param})
}

// result: POST /v3/sources/{id}/command_result — records success or fail of
// a command handed out; repeating the same report is harmless.
func (h commandHandlers) result(c *gin.Context, r request) {
	var b struct {
		CommandName  *string         `json:"command_name"`
		Result       *string         `json:"result"`
		ResultDetail json.RawMessage `json:"result_detail"`
		// CommandID is our extension: the command_id handed out with the
		// command. Without it (the SDK) the oldest open command of the name
		// is meant.
		CommandID *string `json:"command_id"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	if b.CommandName == nil || *b.CommandName == "" {
		fail(c, smserr.New(smserr.SMS6020, "command_name"))
		return
	}
	if !sms.Command(*b.CommandName).Valid() {
		fail(c, smserr.New(smserr.SMS9001, "command_name").WithDetail("command_name: one of "+joinNames(sms.Commands)))
		return
	}
	if b.Result == nil || !sms.CommandResult(*b.Result).Valid() {
		fail(c, smserr.New(smserr.SMS6022, "result").WithDetail(fmt.Sprintf("result: %q or %q", sms.ResultSuccess, sms.ResultFail)))
		return
	}
	var cmdID string
	if b.CommandID != nil {
		cmdID = *b.CommandID
		if cmdID == "" || len(cmdID) > 64 {
			fail(c, smserr.New(smserr.SMS9001, "command_id").WithDetail("command_id: the id handed out with the command (1 to 64 characters)"))
			return
		}
	}
	// result_detail is free JSON (the SDK may send null); only its shape is checked.
	detail := string(b.ResultDetail)
	if detail == "" {
		detail = "null"
	}
	if len(detail) > 1<<20 {
		fail(c, smserr.New(smserr.SMS6023, "result_detail").WithDetail("result_detail: at most 1 MiB"))
		return
	}
	t := r.tenant
	ctx := c.Request.Context()
	if err := h.sourceExists(ctx, t, r.id); err != nil {
		fail(c, err)
		return
	}
	cmd, err := h.commands.CompleteCommand(ctx, t, r.id, cmdID, sms.Command(*b.CommandName), sms.CommandResult(*b.Result), detail, h.now())
	if errors.Is(err, store.ErrNotIssued) {
		what := "no " + *b.CommandName + " command"
		if cmdID != "" {
			what = "no " + *b.CommandName + " command " + cmdID
		}
		fail(c, smserr.New(smserr.SMS6021, *b.CommandName).WithDetail(what+" was handed out to this source"))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	logFor(c).InfoContext(ctx, "command result", "source", r.id, "command", cmd.Name, "task", cmd.TaskID, "result", cmd.Result)
	if cmd.TaskID != "" {
		if err := h.toTask(c, t, cmd); err != nil {
			fail(c, err)
			return
		}
	}
	okEmpty(c)
}

// toTask passes a command's result to its task: the workflow hears of START,
// STOP and SYNC; a log upload's result is the task's log_collect_status.
func (h commandHandlers) toTask(c *gin.Context, t store.Tenant, cmd *store.Command) error {
	ctx := c.Request.Context()
	if cmd.Name == sms.CmdUploadLog {
		status := sms.LogUploaded
		if cmd.Result != sms.ResultSuccess {
			status = sms.LogUploadFail
		}
		err := h.tasks.UpdateTask(ctx, t, cmd.TaskID, func(task *store.Task) error {
			task.LogCollectStatus = status
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if h.engine == nil {
		return nil
	}
	err := h.engine.CommandResult(ctx, cmd.TaskID, workflows.CommandResult{Command: cmd.Name, Success: cmd.Result == sms.ResultSuccess,
		Detail: cmd.ResultDetail})
	if errors.Is(err, engine.ErrNoRun) {
		return nil // the task is gone or its run ended: nothing waits
	}
	return err
}

// Enqueuer queues agent commands (dispatch.Dispatcher).
type Enqueuer interface {
	Enqueue(ctx context.Context, t store.Tenant, c *store.Command) error
}
