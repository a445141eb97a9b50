package main

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/smsflow/smsflow/dispatch"
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
	srv := web.New(web.Deps{Store: a.store, IAM: a.iam, Box: a.box, Queue: queue, Engine: tmp.engine, Waves: waveEngine{tmp.engine},
		TaskOptions: a.taskOptions(), Logger: log, AgentTimeout: cfg.AgentTimeout, Version: version})
	ui := ""
	if tmp.server != nil {
		ui = tmp.server.UIAddr()
	}
	log.Info("smsflow started", "version", version, "all_in_one", allInOne, "data_dir", absDataDir(cfg.DataDir),
		"temporal_ui", ui)
	return web.Serve(ctx, ln, srv.Handler(), cfg.ShutdownTimeout, log)
}
