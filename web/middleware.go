package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/sms/smserr"
)

const (
	ctxLogger    = "smsflow.logger"
	ctxPrincipal = "smsflow.principal"
	ctxBody      = "smsflow.body"
	headerReqID  = "X-Request-Id"
)

// requestID gives every answer, success or error, an X-Request-Id (the SDK
// copies it into its errors), and binds a logger carrying it.
func requestID(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := secret.RandomString(32, secret.Hex)
		c.Header(headerReqID, id)
		c.Set(ctxLogger, log.With("request_id", id))
		c.Next()
	}
}

// MaxQueryBytes bounds a request's query string. The API's queries are
// short (ids of at most 255 characters, paging, filters); net/http itself
// answers a request line or headers over the server's MaxHeaderBytes in
// plain text, so this limit, well below it, answers first with the spec's
// body.
const MaxQueryBytes = 8 << 10

// hardening sets the headers every answer carries and refuses an oversized
// query. Every answer is no-store: many carry secrets (tokens, the target
// password, the task's certificate key and passphrase) and the rest is one
// tenant's data, which no shared cache should keep. nosniff stops browsers
// from reading a JSON error as HTML.
func hardening() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		if n := len(c.Request.URL.RawQuery); n > MaxQueryBytes {
			fail(c, smserr.New(smserr.SMS9001, "query").WithStatus(http.StatusRequestURITooLong).
				WithDetail(fmt.Sprintf("query: %d bytes, at most %d", n, MaxQueryBytes)))
			return
		}
		c.Next()
	}
}

// accessLog writes one line per request: never headers or bodies, which hold
// tokens, signatures and passwords.
func accessLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		attrs := []any{
			"method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(),
			"duration_ms", float64(time.Since(start).Microseconds()) / 1000, "remote", c.ClientIP(),
		}
		if p, ok := principal(c); ok {
			attrs = append(attrs, "domain", p.DomainName, "user", p.UserName, "auth", p.Method, "role", string(p.Role))
		}
		lvl := slog.LevelInfo
		if c.Writer.Status() >= 500 {
			lvl = slog.LevelError
		}
		logFor(c).Log(c.Request.Context(), lvl, "http request", attrs...)
	}
}

// recovery turns a panic into the spec's 500 body; the stack goes to the log.
func recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				logFor(c).ErrorContext(c.Request.Context(), "panic in handler", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				if !c.Writer.Written() {
					fail(c, internalError())
				} else {
					c.Abort()
				}
			}
		}()
		c.Next()
	}
}

func principal(c *gin.Context) (iam.Principal, bool) {
	v, ok := c.Get(ctxPrincipal)
	if !ok {
		return iam.Principal{}, false
	}
	return v.(iam.Principal), true
}

// mustPrincipal is for handlers behind the auth middleware.
func mustPrincipal(c *gin.Context) iam.Principal {
	p, _ := principal(c)
	return p
}
