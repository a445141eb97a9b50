package web

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/sms/smserr"
)

// fail answers with the spec's error body. An *smserr.Error goes out as it
// is; anything else is an internal error: logged with the request id, and
// answered with a generic 500 that leaks nothing. A retryError adds its
// Retry-After; a body left unread is dropped with the connection.
func fail(c *gin.Context, err error) {
	dropUnreadBody(c)
	var re *retryError
	if errors.As(err, &re) {
		c.Header("Retry-After", retryAfterSeconds(re.after))
	}
	e, ok := smserr.As(err)
	if !ok {
		logFor(c).ErrorContext(c.Request.Context(), "internal error", "err", err)
		e = internalError()
	} else if e.Err != nil {
		logFor(c).InfoContext(c.Request.Context(), "request refused", "code", e.Code, "cause", e.Err)
	}
	c.Header("Content-Type", "application/json;charset=UTF-8")
	c.AbortWithStatusJSON(e.Status, e.Body())
}

// internalError is the answer to a failure that is not the client's: the
// catalog's generic code with HTTP 500.
func internalError() *smserr.Error {
	return smserr.New(smserr.InternalCode).WithStatus(http.StatusInternalServerError)
}

// ok answers 200 with a JSON body.
func ok(c *gin.Context, body any) {
	c.JSON(http.StatusOK, body)
}

// okEmpty answers 200 with `{}`: the spec documents a bare string body for
// updates and deletes, which the SDK keeps as a raw string; `{}` also decodes
// for the one operation the SDK parses as an object (PUT /v3/tasks/{id}).
func okEmpty(c *gin.Context) {
	c.Data(http.StatusOK, "application/json;charset=UTF-8", []byte("{}"))
}

func logFor(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(ctxLogger); ok {
		return l.(*slog.Logger)
	}
	return slog.Default()
}

// notFound is the answer for a missing row of the caller's tenant (another
// tenant's rows are missing too): the resource's SMS code with HTTP 404.
func notFound(code smserr.Code, id string) *smserr.Error {
	return smserr.New(code, id).WithStatus(http.StatusNotFound).WithDetail("no such resource: " + id)
}

// asError keeps *smserr.Error values and wraps the rest as internal errors.
func asError(err error) error {
	var e *smserr.Error
	if errors.As(err, &e) {
		return e
	}
	return err
}
