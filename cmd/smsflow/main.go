// Command smsflow is the self-hosted Server Migration Service: `serve` runs
// everything in one process, `web` the API alone, `admin` manages tenants.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// Zones load from the binary on hosts without zoneinfo (distroless
	// images, Windows): a task's speed windows mean the same on every worker.
	_ "time/tzdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd(os.Stdout, os.Stderr, os.Getenv).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "smsflow:", err)
		os.Exit(1)
	}
}
