// Command sms-agent is smsflow's migration agent. On a source server,
// `sms-agent run` registers the machine with the SMS API, takes commands and
// copies the disks (block level) or the file tree (file level) to the
// target's receiver. On a target server, `sms-agent receive` is that
// receiver. It imports none of the server's packages (TestAgentStaysSmall).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if len(os.Args) > 1 {
				os.Exit(0) // asked for: -h
			}
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "sms-agent:", err)
		os.Exit(1)
	}
}

const usageText = `sms-agent — smsflow's migration agent

  sms-agent run      --server URL --ak AK --sk-file F --project ID [flags] | --config FILE   on the source server
  sms-agent receive  --listen ADDR --cert F --key F --passphrase-file F [--disk PATH]... | [--root DIR]   on the target
  sms-agent version

Run "sms-agent <command> -h" for the flags of a command.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return flag.ErrHelp
	}
	switch args[0] {
	case "run":
		return runAgent(ctx, args[1:], stderr)
	case "receive":
		return runReceiver(ctx, args[1:], stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	fmt.Fprint(stderr, usageText)
	return fmt.Errorf("unknown command %q", args[0])
}

// multi is a repeatable flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
