// Package web serves the SMS API v3 over Gin: the handlers (one file per
// resource), the authentication middleware and the spec's error envelope.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/web/console"
)

// CodeNoAPI answers unknown routes and methods (with 404/405): the catalog
// has no dedicated code, and the body keeps the spec's shape.
const CodeNoAPI = smserr.SMS9001

// Store is everything the handlers read and write.
type Store interface {
	MigProjectStore
	TemplateStore
	SourceStore
	CommandStore
	AgentStore
	TaskStore
	WaveStore
	Ping(ctx context.Context) error
}

// Queue queues agent commands and hands them out (dispatch.Dispatcher).
type Queue interface {
	CommandQueue
	Enqueuer
}

// IAM authenticates callers and issues tokens.
type IAM interface {
	Authenticator
	TokenIssuer
	AgentBinder
}

// Deps are the server's collaborators, passed in explicitly.
type Deps struct {
	Store Store
	IAM   IAM
	Box   *secret.Box
	Queue Queue
	// Engine runs tasks as workflows; TaskOptions tune them.
	Engine      TaskEngine
	TaskOptions TaskOptions
	// Targets knows who owns each existing target server, so a task binds
	// (exist_server, target_server.vm_id) only one of its own domain. Nil:
	// no existing server can be bound.
	Targets provider.Binder
	// Waves runs waves (nil: waves can be planned but not run); Capacity
	// tells the targets' free space to a wave's preflight (nil: not
	// checked).
	Waves    WaveEngine
	Capacity CapacityChecker
	Logger   *slog.Logger
	// AgentTimeout: a source whose agent has been silent this long shows
	// connected=false (default 90s).
	AgentTimeout time.Duration
	Version      string
	Now          func() time.Time
	// Body bounds the reading of request bodies (zero: the defaults).
	Body BodyOptions
}

// Server is the HTTP API.
type Server struct {
	deps    Deps
	engine  *gin.Engine
	console *console.Console
}

var _ IAM = (*iam.Service)(nil)

// New builds the API handler.
func New(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.AgentTimeout == 0 {
		d.AgentTimeout = 90 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Use(requestID(d.Logger), accessLog(), recovery(), hardening(), withBodyGate(newBodyGate(d.Body)))
	s := &Server{deps: d, engine: r}
	s.console = console.New(console.Deps{Auth: d.IAM, Box: d.Box, Store: d.Store, Projects: consoleProjects{store: d.Store},
		Templates: consoleTemplates{store: d.Store, box: d.Box}, API: consoleAPI{h: r},
		Logger: d.Logger, Now: d.Now, AgentTimeout: d.AgentTimeout})
	s.routes(r)
	return s
}

// Handler is the http.Handler of the API.
func (s *Server) Handler() http.Handler { return s.engine }

// Engine exposes the Gin engine so later pieces (web pages) mount on it.
func (s *Server) Engine() *gin.Engine { return s.engine }

func (s *Server) healthz(c *gin.Context) { ok(c, gin.H{"status": "ok"}) }

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.deps.Store.Ping(ctx); err != nil {
		logFor(c).WarnContext(ctx, "database not ready", "err", err)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "database unavailable"})
		return
	}
	ok(c, gin.H{"status": "ready"})
}

// WriteTimeout bounds a request from the end of its headers to the end of
// its answer, so a client that stops reading a large answer (a list, an
// export) does not hold its connection and buffers forever. It covers the
// request body too (net/http starts it when the headers are read): it stays
// well above the body read timeout (agent log uploads) and the command long
// poll (MaxCommandWait).
const WriteTimeout = 10 * time.Minute

// Serve answers on ln until ctx ends, then drains in-flight requests for at
// most grace.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, log *slog.Logger) error {
	// Headers must arrive within 10 s. ReadTimeout is only the fallback for
	// a body nothing reads: the API reads bodies through its body gate,
	// which moves the deadline with a minimum transfer rate (BodyOptions),
	// so a large agent log gets its time and a trickled body does not hold
	// a connection for minutes.
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("API listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
