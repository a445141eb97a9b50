package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/smsflow/smsflow/internal/dispatch"
	"github.com/smsflow/smsflow/web"
)

func (e *env) serveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run everything in one process: REST API, embedded Temporal with its Web UI, and the worker",
		Long: `serve runs smsflow on one machine with nothing else installed: a SQLite file in the
data dir (or MySQL with --db-dsn), an embedded Temporal server (its database in
<data-dir>/temporal) with its Web UI on --temporal-ui-addr, the migration worker, and the
REST API on --http-addr. With --temporal-address it uses that cluster instead.

The Temporal Web UI has no sign-in and shows, and can cancel, every domain's runs:
anyone who can reach --temporal-ui-addr can. Keep it on loopback (the default,
127.0.0.1:8233) and reach it through an SSH tunnel, or set --temporal-ui-proxy=true to
serve it at /temporal/ on --http-addr to smsflow's administrator only (user admin of
domain smsflow; a browser signs in as admin or smsflow/admin). A non-loopback
--temporal-ui-addr is logged as a warning at every start.

On first start with an empty database it creates an admin tenant and writes its
credentials to <data-dir>/admin-credentials.json (mode 0600).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.runAPI(cmd, true)
		},
	}
	addConfigFlags(cmd)
	return cmd
}

func (e *env) webCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "web",
		Short: "Run the REST API only (production: beside a Temporal cluster and `smsflow worker`)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.runAPI(cmd, false)
		},
	}
	addConfigFlags(cmd)
	return cmd
}

func (e *env) runAPI(cmd *cobra.Command, allInOne bool) error {
	cfg, err := e.load(cmd.Flags())
	if err != nil {
		return err
	}
	log := newLogger(cfg, e.errOut)
	ctx := cmd.Context()
	a, err := e.open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()
	path, err := a.iam.Bootstrap(ctx, cfg.DataDir, e.getenv)
	if err != nil {
		return err
	}
	if path != "" {
		fmt.Fprintf(e.errOut, "First start: admin credentials written to %s\n", absDataDir(path))
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()

	tmp, err := openTemporal(ctx, cfg, log, allInOne)
	if err != nil {
		return err
	}
	defer tmp.close()
	queue := dispatch.New(a.store, dispatch.Options{Redeliver: cfg.CommandRedeliver, Logger: log})
	go queue.Run(ctx)
	if allInOne {
		stopWorker, err := a.startWorker(ctx, tmp, queue)
		if err != nil {
			return err
		}
		defer stopWorker() // before the client and server close (deferred earlier)
	}
	// The API checks who owns an existing server in the targets folder
	// the worker keeps (an API-only process must see the same folder).
	targets, err := a.localProvider()
	if err != nil {
		return err
	}
	deps := web.Deps{Store: a.store, IAM: a.iam, Box: a.box, Queue: queue, Engine: tmp.engine, Targets: targets,
		TaskOptions: a.taskOptions(), Logger: log, AgentTimeout: cfg.AgentTimeout, Version: version,
		Waves: waveEngine{tmp.engine}}
	if allInOne {
		// The targets are on this machine: a wave's preflight checks their
		// free space (a separate worker's disk is not visible from here).
		deps.Capacity = targets
	}
	srv := web.New(deps)
	ui := ""
	if tmp.server != nil {
		ui = tmp.server.UIAddr()
	}
	if ui != "" && !isLoopback(ui) {
		log.Warn("THE TEMPORAL UI IS REACHABLE BEYOND THIS HOST WITHOUT SIGN-IN: it shows and can cancel every domain's runs; "+
			"set --temporal-ui-addr to a loopback address (and --temporal-ui-proxy for remote access)", "temporal_ui", ui)
	}
	if cfg.TemporalUIProxy {
		if ui == "" {
			return errors.New("--temporal-ui-proxy serves serve's embedded Temporal UI: it needs the embedded server and --temporal-ui-addr")
		}
		srv.MountTemporalUI(&url.URL{Scheme: "http", Host: dialable(ui)})
		log.Info("temporal UI served to the administrator", "path", web.TemporalUIPath+"/")
	}
	log.Info("smsflow started", "version", version, "all_in_one", allInOne, "data_dir", absDataDir(cfg.DataDir),
		"temporal_ui", ui)
	return web.Serve(ctx, ln, srv.Handler(), cfg.ShutdownTimeout, log)
}

// dialable turns a listen address on every interface into one to dial.
func dialable(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
