// Package tserver runs a Temporal server and its Web UI inside the smsflow
// process (`smsflow serve`), on a SQLite file in the data dir, so a new user
// gets durable workflows with one command and nothing else installed.
// Production uses an external cluster instead (--temporal-address).
//
// Only cmd/smsflow and the end-to-end tests import this package: linking the
// Temporal server costs minutes of build time, which the other packages'
// tests should not pay.
package tserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiopts "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	namespacepb "go.temporal.io/api/namespace/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/smsflow/smsflow/internal/netport"
)

// Options configure the embedded server.
type Options struct {
	// DataDir holds temporal.db (+ -wal, -shm) and the lock file.
	DataDir string
	// FrontendAddr is the gRPC address clients and workers dial
	// (host:port; port 0 picks a free one).
	FrontendAddr string
	// UIAddr serves the Temporal Web UI; empty disables it. The UI has no
	// sign-in: anyone who reaches it sees and can cancel every run.
	UIAddr string
	// UIPublicPath is the path prefix the UI is served under when a proxy
	// forwards it unchanged (e.g. "/temporal"); empty: the root.
	UIPublicPath string
	Namespace    string
	// Retention keeps closed runs (migrations are audited: weeks).
	Retention time.Duration
	// SearchAttributes registered on the namespace.
	SearchAttributes map[string]enumspb.IndexedValueType
	// InMemory uses a memory database (tests); DataDir is then only the lock's home.
	InMemory bool
	Logger   *slog.Logger
}

// Server is a running embedded Temporal.
type Server struct {
	server   temporal.Server
	ui       *uiserver.Server
	lock     *os.File
	frontend string
	uiAddr   string
}

const (
	clusterName = "active"
	// embeddedClusterID is fixed: the cluster's identity is stored in its
	// database and must not change between starts.
	embeddedClusterID = "6d2b1a8e-5c1f-4b9e-9d3a-7f0e2c4b8a11"
	dbFileName        = "temporal.db"
	lockName          = "temporal.lock"
)

// Start brings the server up (and the UI, when UIAddr is set) and returns
// once the frontend answers.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Retention <= 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("temporal: data dir: %w", err)
	}
	lock, err := lockDir(o.DataDir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()

	host, port, err := hostPort(o.FrontendAddr, "127.0.0.1:7233")
	if err != nil {
		return nil, err
	}
	// The UI exits the whole process when its port is taken: check first.
	var uiHost string
	var uiPort int
	if o.UIAddr != "" {
		uiHost, uiPort, err = hostPort(o.UIAddr, "127.0.0.1:8233")
		if err != nil {
			return nil, err
		}
		if err := portFree(uiHost, uiPort); err != nil {
			return nil, fmt.Errorf("temporal UI address %s: %w", o.UIAddr, err)
		}
	}
	if err := portFree(host, port); err != nil {
		return nil, fmt.Errorf("temporal frontend address %s:%d: %w", host, port, err)
	}

	sqlConf, err := sqlConfig(o)
	if err != nil {
		return nil, err
	}
	conf, err := serverConfig(host, port, sqlConf)
	if err != nil {
		return nil, err
	}
	frontend := net.JoinHostPort(host, strconv.Itoa(port))
	hosts := map[primitives.ServiceName]static.Hosts{}
	for name, svc := range conf.Services {
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(net.JoinHostPort(host, strconv.Itoa(svc.RPC.GRPCPort)))
	}
	dyn := dynamicconfig.StaticClient{
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 200,
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8192,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(slogLogger{log: o.Logger.With("component", "temporal")}),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("temporal: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("temporal: start: %w", err)
	}
	s := &Server{server: srv, lock: lock, frontend: frontend}
	if err := s.setRetention(ctx, o.Namespace, o.Retention); err != nil {
		srv.Stop()
		return nil, err
	}
	if o.UIAddr != "" {
		s.uiAddr = net.JoinHostPort(uiHost, strconv.Itoa(uiPort))
		s.ui = uiserver.NewServer(uiopts.WithConfigProvider(&uiconfig.Config{
			Host: uiHost, Port: uiPort, TemporalGRPCAddress: frontend, EnableUI: true,
			DefaultNamespace: o.Namespace, HideLogs: true, DisableNewsFetch: true, PublicPath: o.UIPublicPath,
			CORS: uiconfig.CORS{CookieInsecure: true},
		}))
		go func() {
			if err := s.ui.Start(); err != nil && !errors.Is(err, context.Canceled) {
				o.Logger.Error("temporal UI stopped", "err", err)
			}
		}()
	}
	ok = true
	o.Logger.Info("embedded temporal started", "frontend", frontend, "ui", s.uiAddr, "namespace", o.Namespace,
		"retention", o.Retention.String())
	return s, nil
}

// FrontendAddr is the gRPC address to dial.
func (s *Server) FrontendAddr() string { return s.frontend }

// UIAddr is where the Web UI listens ("" when disabled).
func (s *Server) UIAddr() string { return s.uiAddr }

// Stop shuts the UI and server down and releases the data dir lock. Stop
// workers and close clients first.
func (s *Server) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	s.server.Stop()
	s.lock.Close()
}

// setRetention applies the retention to the namespace (new or existing)
// through the frontend, retrying while the server finishes starting.
func (s *Server) setRetention(ctx context.Context, namespace string, retention time.Duration) error {
	conn, err := grpc.NewClient(s.frontend, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("temporal: dial frontend: %w", err)
	}
	defer conn.Close()
	svc := workflowservice.NewWorkflowServiceClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = svc.UpdateNamespace(cctx, &workflowservice.UpdateNamespaceRequest{
			Namespace: namespace,
			Config:    &namespacepb.NamespaceConfig{WorkflowExecutionRetentionTtl: durationpb.New(retention)},
		})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("temporal: set namespace retention: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lockDir takes an exclusive lock on the data dir's Temporal database:
// SQLite would let two processes open it and corrupt each other's state.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("temporal: lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("temporal: %s is in use by another smsflow process (%w); stop it or use another --data-dir",
			filepath.Join(dir, dbFileName), err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return f, nil
}

func hostPort(addr, def string) (string, int, error) {
	if addr == "" {
		addr = def
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("temporal: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("temporal: address %q: bad port", addr)
	}
	if h == "" {
		h = "127.0.0.1"
	}
	if port == 0 {
		port, err = freePort(h)
		if err != nil {
			return "", 0, err
		}
	}
	return h, port, nil
}

// freePort picks a port for a service that binds it later, while the
// server starts; see netport.Free for why not ":0".
func freePort(host string) (int, error) {
	p, err := netport.Free(host)
	if err != nil {
		return 0, fmt.Errorf("temporal: %w", err)
	}
	return p, nil
}

func portFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port in use: %w", err)
	}
	return l.Close()
}

func sqlConfig(o Options) (*config.SQL, error) {
	c := &config.SQL{PluginName: sqliteplugin.PluginName}
	if o.InMemory {
		c.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
		c.DatabaseName = "smsflow-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	} else {
		// WAL with synchronous=normal: ~2.5x the throughput of the defaults,
		// and it survives kill -9.
		c.ConnectAttributes = map[string]string{"mode": "rwc", "journal_mode": "wal", "synchronous": "normal"}
		c.DatabaseName = filepath.Join(o.DataDir, dbFileName)
		if _, err := os.Stat(c.DatabaseName); errors.Is(err, os.ErrNotExist) {
			// The schema is created once; nothing upgrades it, so the server
			// version is pinned in go.mod.
			if err := sqliteschema.SetupSchema(c); err != nil {
				return nil, fmt.Errorf("temporal: create schema: %w", err)
			}
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, o.Namespace, false, o.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("temporal: namespace: %w", err)
	}
	ns.Detail.Config.Retention = durationpb.New(o.Retention)
	if err := sqliteschema.CreateNamespaces(c, ns); err != nil {
		return nil, fmt.Errorf("temporal: create namespace: %w", err)
	}
	return c, nil
}

func serverConfig(host string, port int, sqlConf *config.SQL) (*config.Config, error) {
	var c config.Config
	c.Global.Membership.MaxJoinDuration = 30 * time.Second
	c.Global.Membership.BroadcastAddress = host
	c.Persistence.DefaultStore = "sqlite"
	c.Persistence.VisibilityStore = "sqlite"
	// Never change for an existing file.
	c.Persistence.NumHistoryShards = 1
	c.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: sqlConf}}
	httpPort, err := freePort(host)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	c.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{clusterName: {
			Enabled: true, InitialFailoverVersion: 1, RPCAddress: addr,
			HTTPAddress: net.JoinHostPort(host, strconv.Itoa(httpPort)), ClusterID: embeddedClusterID,
		}},
	}
	c.DCRedirectionPolicy.Policy = "noop"
	c.Services = map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		var svc config.Service
		svc.RPC.BindOnIP = host
		if name == "frontend" {
			svc.RPC.GRPCPort = port
			svc.RPC.HTTPPort = httpPort
		} else {
			p, err := freePort(host)
			if err != nil {
				return nil, err
			}
			svc.RPC.GRPCPort = p
		}
		c.Services[name] = svc
	}
	c.Archival.History.State = "disabled"
	c.Archival.Visibility.State = "disabled"
	c.NamespaceDefaults.Archival.History.State = "disabled"
	c.NamespaceDefaults.Archival.Visibility.State = "disabled"
	c.PublicClient.HostPort = addr
	return &c, nil
}

// slogLogger adapts slog to Temporal's logger; the server logs at warn and
// above unless smsflow runs at debug.
type slogLogger struct{ log *slog.Logger }

var _ tlog.Logger = slogLogger{}

func (s slogLogger) Debug(msg string, tags ...tag.Tag)  { s.emit(slog.LevelDebug, msg, tags) }
func (s slogLogger) Info(msg string, tags ...tag.Tag)   { s.emit(slog.LevelDebug, msg, tags) }
func (s slogLogger) Warn(msg string, tags ...tag.Tag)   { s.emit(slog.LevelWarn, msg, tags) }
func (s slogLogger) Error(msg string, tags ...tag.Tag)  { s.emit(slog.LevelError, msg, tags) }
func (s slogLogger) DPanic(msg string, tags ...tag.Tag) { s.emit(slog.LevelError, msg, tags) }
func (s slogLogger) Panic(msg string, tags ...tag.Tag)  { s.emit(slog.LevelError, msg, tags) }
func (s slogLogger) Fatal(msg string, tags ...tag.Tag)  { s.emit(slog.LevelError, msg, tags) }

func (s slogLogger) emit(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, len(tags))
	for i, t := range tags {
		attrs[i] = slog.Any(t.Key(), t.Value())
	}
	s.log.LogAttrs(ctx, level, msg, attrs...)
}
