package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/smsflow/smsflow/internal/dispatch"
)

func (e *env) workerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the migration worker only (workflows and activities), against --temporal-address",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			tmp, err := openTemporal(ctx, cfg, log, false)
			if err != nil {
				return err
			}
			defer tmp.close()
			queue := dispatch.New(a.store, dispatch.Options{Redeliver: cfg.CommandRedeliver, Logger: log})
			stopWorker, err := a.startWorker(ctx, tmp, queue)
			if err != nil {
				return err
			}
			defer stopWorker()
			if cfg.WorkerHealthAddr != "" {
				ln, err := net.Listen("tcp", cfg.WorkerHealthAddr)
				if err != nil {
					return err
				}
				hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
					defer cancel()
					if err := a.store.Ping(pctx); err != nil {
						http.Error(w, "database unavailable", http.StatusServiceUnavailable)
						return
					}
					_, _ = w.Write([]byte(`{"status":"ok"}`))
				})}
				go func() {
					if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
						log.Warn("worker health endpoint", "err", err)
					}
				}()
				defer hs.Close()
			}
			log.Info("smsflow worker started", "version", version, "temporal", cfg.TemporalAddress)
			<-ctx.Done()
			return nil
		},
	}
	addConfigFlags(cmd)
	return cmd
}
