package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// The agent's log, collected centrally (our extension). POST
// /v3/tasks/{id}/log (the spec's CollectLog) asks the agent for it with
// UPLOAD_LOG; the agent sends the log it keeps in memory here, and the
// operator downloads it: no shell on the source server needed to see why
// a copy failed. The spec uploads to an OBS bucket; its log_bucket names
// the upload here.

// uploadAgentLog: PUT /v3/tasks/{task_id}/agent-log?bucket=NAME, from the
// agent; the body is the log text (at most 12 MiB, as every body).
func (h taskHandlers) uploadAgentLog(c *gin.Context, r request) {
	bucket := c.Query("bucket")
	if len(bucket) > 255 {
		fail(c, smserr.New(smserr.SMS9001, "bucket").WithDetail("bucket: at most 255 characters"))
		return
	}
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	if len(body) == 0 {
		fail(c, smserr.New(smserr.SMS6013, "body").WithDetail("the log is empty"))
		return
	}
	l, err := h.store.SaveAgentLog(c.Request.Context(), r.tenant, r.id, bucket, body)
	if err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	ok(c, gin.H{"task_id": r.id, "size": l.Size, "created_at": l.CreatedAt.UnixMilli()})
}

// downloadAgentLog: GET /v3/tasks/{task_id}/agent-log, the newest upload as
// text.
func (h taskHandlers) downloadAgentLog(c *gin.Context, r request) {
	ctx, t := c.Request.Context(), r.tenant
	if _, err := h.store.Task(ctx, t, r.id); err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	l, err := h.store.LatestAgentLog(ctx, t, r.id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			fail(c, smserr.New(smserr.SMS9001, "agent-log").WithStatus(http.StatusNotFound).
				WithDetail("no agent log uploaded for task "+r.id+" yet: POST /v3/tasks/"+r.id+"/log asks the agent for it"))
			return
		}
		fail(c, err)
		return
	}
	text, err := l.Text()
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="sms-agent-`+r.id+`.log"`)
	c.Header("X-Smsflow-Log-Created-At", strconv.FormatInt(l.CreatedAt.UnixMilli(), 10))
	c.Data(http.StatusOK, "text/plain; charset=utf-8", text)
}
