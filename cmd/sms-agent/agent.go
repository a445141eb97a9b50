package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/smsflow/smsflow/agent/discover"
	"github.com/smsflow/smsflow/agent/filesync"
	"github.com/smsflow/smsflow/agent/logring"
	"github.com/smsflow/smsflow/agent/runner"
	"github.com/smsflow/smsflow/agent/smsapi"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/agent/usage"
)

func runAgent(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", os.Getenv("SMS_AGENT_SERVER"), "SMS API endpoint, e.g. http://smsflow:8080 (env SMS_AGENT_SERVER)")
	ak := fs.String("ak", os.Getenv("SMS_AGENT_AK"), "access key (env SMS_AGENT_AK)")
	skFile := fs.String("sk-file", "", "file holding the secret key (or env SMS_AGENT_SK)")
	skFlag := fs.String("sk", "", "secret key: other users can read it in the process list; prefer --sk-file, SMS_AGENT_SK or the config file")
	config := fs.String("config", os.Getenv("SMS_AGENT_CONFIG"), `config file of "key: value" lines named as these flags (flags win) (env SMS_AGENT_CONFIG)`)
	project := fs.String("project", os.Getenv("SMS_AGENT_PROJECT"), "project id, sent as X-Project-Id (env SMS_AGENT_PROJECT)")
	name := fs.String("name", "", "name the operator sees (default: host name)")
	stateDir := fs.String("state-dir", "/var/lib/sms-agent", "where checkpoints and block hashes are kept")
	root := fs.String("root", "/", "root of the machine: /proc, /sys and /etc are read under it")
	fileRoot := fs.String("file-root", "/", "what a file-level migration copies (tests and demos copy a folder)")
	var images, excludes multi
	fs.Var(&images, "disk-image", "NAME=FILE: the disk NAME is the image FILE (repeatable; tests and demos migrate files as disks)")
	fs.Var(&excludes, "exclude", "path skipped by file-level copies (repeatable)")
	onlyImages := fs.Bool("only-images", false, "report only the --disk-image disks, not the machine's")
	machineID := fs.String("machine-id", "", "stable machine identity (default: /etc/machine-id)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	poll := fs.Duration("poll-wait", 30*time.Second, "long-poll wait for commands")
	progressEvery := fs.Duration("progress-every", 3*time.Second, "how often progress is reported")
	linkRetry := fs.Duration("link-retry", 30*time.Minute, "how long a copy rides out its target or the API being unreachable before it fails")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *config != "" {
		if err := applyConfigFile(fs, *config); err != nil {
			return err
		}
	}
	sk := os.Getenv("SMS_AGENT_SK")
	if *skFlag != "" {
		sk = *skFlag
	}
	if *skFile != "" {
		b, err := os.ReadFile(*skFile)
		if err != nil {
			return fmt.Errorf("--sk-file: %w", err)
		}
		sk = strings.TrimSpace(string(b))
	}
	var missing []string
	for flagName, v := range map[string]string{"--server": *server, "--ak": *ak, "--sk-file, SMS_AGENT_SK or sk in --config": sk, "--project": *project} {
		if v == "" {
			missing = append(missing, flagName)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	// The newest 4 MiB of the log stay in memory for UPLOAD_LOG.
	ring := logring.New(4 << 20)
	log, err := newLogger(io.MultiWriter(stderr, ring), *logLevel, *logFormat)
	if err != nil {
		return err
	}
	diskPaths := map[string]string{}
	for _, im := range images {
		n, f, ok := strings.Cut(im, "=")
		if !ok || n == "" || f == "" {
			return fmt.Errorf("--disk-image %q: want NAME=FILE", im)
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(n, "/dev/") {
			n = "/dev/" + n
		}
		diskPaths[n] = abs
	}
	mid := *machineID
	if mid == "" {
		if b, err := os.ReadFile(filepath.Join(*root, "etc", "machine-id")); err == nil {
			mid = strings.TrimSpace(string(b))
		}
	}
	api := &smsapi.Client{BaseURL: *server, AK: *ak, SK: sk, ProjectID: *project, MachineID: mid,
		HTTP: &http.Client{Timeout: *poll + 30*time.Second}}
	sampler := usage.NewSampler(*root)
	_, _ = sampler.Sample() // the first sample sets the baseline
	r := runner.New(runner.Config{
		API: api,
		Discover: func(ctx context.Context) (any, error) {
			return discover.Discover(ctx, discover.Options{Root: *root, Name: *name, DiskImages: diskPaths,
				OnlyImages: *onlyImages, AgentVersion: discover.AgentVersionPrefix + version})
		},
		DiskPaths: diskPaths, FileRoot: *fileRoot, Excludes: excludes, Files: filePlane{}, StateDir: *stateDir,
		PollWait: *poll, ProgressEvery: *progressEvery, LinkRetryFor: *linkRetry, Logger: log, Logs: ring.Bytes,
		Usage: func() runner.Usage {
			u, err := sampler.Sample()
			if err != nil {
				return runner.Usage{}
			}
			return runner.Usage{TotalCPU: u.TotalCPUUsage, AgentCPU: u.AgentCPUUsage, TotalMem: u.TotalMemUsage,
				AgentMem: u.AgentMemUsage, TotalDiskIO: u.TotalDiskIO, AgentDiskIO: u.AgentDiskIO, TotalMemPercent: u.TotalMemPercent}
		},
	})
	log.Info("sms-agent starting", "version", version, "server", *server, "state_dir", *stateDir)
	err = r.Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// filePlane runs file-level passes with agent/filesync.
type filePlane struct{}

func (filePlane) Send(ctx context.Context, c *transport.Conn, root string, excludes []string, progress func(done, total int64)) (int64, int64, error) {
	st, err := filesync.Send(ctx, c, filesync.SendOptions{Root: root, Excludes: excludes,
		Progress: func(p filesync.Progress) { progress(p.BytesDone, p.BytesTotal) }})
	return st.BytesSent + st.BytesSkipped, st.BytesSent, err
}

func (filePlane) Verify(ctx context.Context, c *transport.Conn, root string, excludes []string) (smsapi.Consistency, error) {
	res, err := filesync.Verify(ctx, c, filesync.SendOptions{Root: root, Excludes: excludes})
	return smsapi.Consistency{DirCheck: res.Dir, Total: clamp32(res.Total), Different: clamp32(res.Different),
		TargetMiss: clamp32(res.TargetMissing), TargetMore: clamp32(res.TargetExtra)}, err
}

func clamp32(v int64) int32 { return int32(min(v, 1<<31-1)) }
