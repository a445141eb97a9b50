package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/smsflow/smsflow/activities"
	"github.com/smsflow/smsflow/config"
	"github.com/smsflow/smsflow/internal/dispatch"
	"github.com/smsflow/smsflow/internal/provider/local"
	"github.com/smsflow/smsflow/internal/temporal/engine"
	"github.com/smsflow/smsflow/internal/temporal/tserver"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/web"
	"github.com/smsflow/smsflow/worker"
)

// temporalSide is the Temporal a process uses: the embedded server (serve
// without --temporal-address) or an external cluster.
type temporalSide struct {
	server *tserver.Server
	client client.Client
	engine *engine.Engine
}

func (t *temporalSide) close() {
	if t.client != nil {
		t.client.Close()
	}
	if t.server != nil {
		t.server.Stop()
	}
}

// openTemporal starts the embedded server when allowed and no external
// address is configured, then dials it.
func openTemporal(ctx context.Context, cfg config.Config, log *slog.Logger, embed bool) (*temporalSide, error) {
	t := &temporalSide{}
	addr, uiBase := cfg.TemporalAddress, uiLinkBase(cfg)
	var tlsConf *tls.Config
	if addr == "" {
		if !embed {
			return nil, errors.New("--temporal-address (SMSFLOW_TEMPORAL_ADDRESS) is required: only serve embeds a Temporal server")
		}
		srv, err := tserver.Start(ctx, tserver.Options{
			DataDir: filepath.Join(cfg.DataDir, "temporal"), FrontendAddr: cfg.TemporalEmbedAddr, UIAddr: cfg.TemporalUIAddr,
			UIPublicPath: uiPublicPath(cfg),
			Namespace:    cfg.TemporalNamespace, Retention: cfg.TemporalRetention, SearchAttributes: engine.SearchAttributes,
			Logger: temporalLogger(log, cfg),
		})
		if err != nil {
			return nil, err
		}
		t.server, addr = srv, srv.FrontendAddr()
	} else {
		var err error
		if tlsConf, err = temporalTLS(cfg); err != nil {
			return nil, err
		}
	}
	c, err := client.DialContext(ctx, client.Options{
		HostPort: addr, Namespace: cfg.TemporalNamespace, Logger: tlog.NewStructuredLogger(temporalLogger(log, cfg)),
		ConnectionOptions: client.ConnectionOptions{TLS: tlsConf},
	})
	if err != nil {
		t.close()
		return nil, fmt.Errorf("temporal at %s: %w", addr, err)
	}
	t.client = c
	t.engine = &engine.Engine{Client: c, Namespace: cfg.TemporalNamespace, UIBase: uiBase}
	// Also for the embedded server: its namespace got the attributes of
	// the smsflow that created it, and a later one adds its own (SmsWaveId).
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := t.engine.EnsureSearchAttributes(sctx); err != nil {
		log.Warn("the Temporal UI cannot filter tasks and waves by their attributes", "err", err)
	}
	return t, nil
}

// temporalLogger keeps Temporal's own chatter at warn unless smsflow runs at
// debug.
func temporalLogger(log *slog.Logger, cfg config.Config) *slog.Logger {
	if cfg.LogLevel == "debug" {
		return log
	}
	return slog.New(levelFloor{h: log.Handler(), min: slog.LevelWarn})
}

type levelFloor struct {
	h   slog.Handler
	min slog.Level
}

func (l levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.h.Enabled(ctx, lv)
}
func (l levelFloor) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFloor{h: l.h.WithAttrs(a), min: l.min}
}
func (l levelFloor) WithGroup(n string) slog.Handler {
	return levelFloor{h: l.h.WithGroup(n), min: l.min}
}

func temporalTLS(cfg config.Config) (*tls.Config, error) {
	if cfg.TemporalTLSCert == "" && cfg.TemporalTLSCA == "" && cfg.TemporalTLSServer == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TemporalTLSServer}
	if cfg.TemporalTLSCert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.TemporalTLSCert, cfg.TemporalTLSKey)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if cfg.TemporalTLSCA != "" {
		pem, err := os.ReadFile(cfg.TemporalTLSCA)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal TLS CA %s: no certificate", cfg.TemporalTLSCA)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// newActivities builds the worker's activities: the local provider keeps
// targets under --targets-dir and runs their receivers where --receiver-listen
// and --receiver-ports say, telling agents --receiver-advertise.
func (a *app) newActivities(queue *dispatch.Dispatcher) (*activities.Activities, *local.Provider, error) {
	prov, err := a.localProvider()
	if err != nil {
		return nil, nil, err
	}
	o := a.taskOptions()
	return &activities.Activities{Store: a.store, Queue: queue, Provider: prov, Box: a.box, Logger: a.log,
		AgentTimeout: a.cfg.AgentTimeout, Waves: activities.StoreWaves{DB: a.store},
		MemberOptions: activities.MemberOptions{TimeZone: o.TimeZone, SyncInterval: o.SyncInterval,
			AgentStepTimeout: o.AgentStepTimeout}}, prov, nil
}

// targetsDir is where the local provider keeps targets.
func (a *app) targetsDir() string {
	if a.cfg.TargetsDir != "" {
		return a.cfg.TargetsDir
	}
	return filepath.Join(a.cfg.DataDir, "targets")
}

// localProvider is the process's local provider on --targets-dir.
func (a *app) localProvider() (*local.Provider, error) {
	if a.targets != nil {
		return a.targets, nil
	}
	prov, err := local.New(a.targetsDir())
	if err != nil {
		return nil, err
	}
	prov.Logger = a.log
	lo, hi, err := config.ParsePortRange(a.cfg.ReceiverPorts) // checked by Validate
	if err != nil {
		return nil, err
	}
	prov.Net = local.ReceiverNet{Listen: a.cfg.ReceiverListen, Advertise: a.cfg.ReceiverHost(), PortMin: lo, PortMax: hi}
	a.targets = prov
	return prov, nil
}

// startWorker starts the migration worker and the receivers of the targets
// that had one (an agent mid-copy finds its receiver again after a restart).
// stop ends both.
func (a *app) startWorker(ctx context.Context, t *temporalSide, queue *dispatch.Dispatcher) (stop func(), err error) {
	acts, prov, err := a.newActivities(queue)
	if err != nil {
		return nil, err
	}
	if err := prov.RestoreReceivers(ctx, acts.TaskCreds); err != nil {
		a.log.Warn("receivers not restored", "err", err)
	}
	w := worker.New(t.client, acts, sdkworker.Options{})
	if err := w.Start(); err != nil {
		prov.StopReceivers()
		return nil, fmt.Errorf("start worker: %w", err)
	}
	return func() { w.Stop(); prov.StopReceivers() }, nil
}

// taskOptions are the run options of tasks. The zone is named once here
// ("Local" becomes the machine's IANA name) so wave members get a name too;
// if the machine's zone has none, the setting stays as configured and the
// API refuses task creation with SMS.8509 until --timezone names one.
func (a *app) taskOptions() web.TaskOptions {
	zone := a.cfg.TimeZone
	if z, err := wave.ResolveZone(zone); err == nil {
		zone = z
	} else {
		a.log.Warn("time zone has no IANA name: tasks cannot be created", "timezone", zone, "err", err)
	}
	return web.TaskOptions{TimeZone: zone, SyncInterval: a.cfg.SyncInterval, AgentStepTimeout: a.cfg.AgentStepTimeout}
}

// uiPublicPath is the embedded UI's path prefix: the proxy's when it serves
// the UI through the API listener.
func uiPublicPath(cfg config.Config) string {
	if cfg.TemporalUIProxy {
		return web.TemporalUIPath
	}
	return ""
}

// uiLinkBase is where the API's and the console's links to a run point:
// the proxy's path on the API listener with --temporal-ui-proxy (the UI's
// own address is loopback, out of the operator's reach), else the UI's
// address; "" without a UI.
func uiLinkBase(cfg config.Config) string {
	switch {
	case cfg.TemporalUIAddr == "":
		return ""
	case cfg.TemporalUIProxy:
		return web.TemporalUIPath
	default:
		return "http://" + cfg.TemporalUIAddr
	}
}

// isLoopback tells whether a host:port listens on loopback only (an empty
// host listens on every interface).
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
