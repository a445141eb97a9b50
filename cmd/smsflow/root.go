package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/smsflow/smsflow/config"
	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/provider/local"
	"github.com/smsflow/smsflow/internal/store"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

type env struct {
	out, errOut io.Writer
	getenv      func(string) string
}

func newRootCmd(out, errOut io.Writer, getenv func(string) string) *cobra.Command {
	e := &env{out: out, errOut: errOut, getenv: getenv}
	root := &cobra.Command{
		Use:   "smsflow",
		Short: "Self-hosted Server Migration Service (Huawei Cloud SMS API v3)",
		Long: `smsflow moves servers into a cloud: the SMS API v3, every migration a durable workflow.

Configuration comes from defaults < YAML file (--config) < SMSFLOW_* environment < flags.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.AddCommand(e.serveCmd(), e.webCmd(), e.workerCmd(), e.adminCmd(), e.healthcheckCmd())
	return root
}

// addConfigFlags gives a command every configuration flag.
func addConfigFlags(cmd *cobra.Command) {
	config.RegisterFlags(cmd.Flags())
}

func addConfigFlagsTo(fs *pflag.FlagSet) {
	config.RegisterFlags(fs)
}

func (e *env) load(fs *pflag.FlagSet) (config.Config, error) {
	return config.Load(fs, e.getenv)
}

func newLogger(c config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(c.LogLevel)))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// app holds what every subcommand opens from the configuration.
type app struct {
	cfg   config.Config
	log   *slog.Logger
	store *store.Store
	box   *secret.Box
	iam   *iam.Service
	// targets is the local provider, one per process: the API checks
	// existing servers' owners with the instance the worker writes them.
	targets *local.Provider
}

func (e *env) open(ctx context.Context, cfg config.Config, log *slog.Logger) (*app, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	key, err := secret.LoadOrCreateKey(cfg.SecretKey, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	box, err := secret.NewBox(key)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Options{DSN: cfg.DBDSN, DataDir: cfg.DataDir, Logger: log})
	if err != nil {
		return nil, err
	}
	svc := iam.New(st, box, iam.Options{
		TokenTTL: cfg.TokenTTL, MaxSkew: cfg.SignatureMaxSkew, CacheTTL: cfg.AuthCacheTTL, Logger: log,
	})
	return &app{cfg: cfg, log: log, store: st, box: box, iam: svc}, nil
}

func (a *app) close() {
	if err := a.store.Close(); err != nil {
		a.log.Warn("closing the database", "err", err)
	}
}

func absDataDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
