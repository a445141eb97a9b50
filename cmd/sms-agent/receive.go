package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/smsflow/smsflow/agent/blocksync"
	"github.com/smsflow/smsflow/agent/filesync"
	"github.com/smsflow/smsflow/agent/netcheck"
	"github.com/smsflow/smsflow/agent/transport"
)

// runReceiver is the target side: it accepts the task's agent only (the
// task's certificate, pinned, and its passphrase) and writes into the target
// disks (block level) or under the target root (file level).
func runReceiver(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("receive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "0.0.0.0:8900", "address to listen on")
	certFile := fs.String("cert", "", "the task's certificate (PEM; GET /v3/tasks/{id}/certkey)")
	keyFile := fs.String("key", "", "the task's private key (PEM)")
	passFile := fs.String("passphrase-file", "", "file holding the task's passphrase (GET /v3/tasks/{id}/passphrase)")
	var disks multi
	fs.Var(&disks, "disk", "target disk (device or image file), in the order of the task's target disks (repeatable)")
	root := fs.String("root", "", "target root for a file-level migration")
	maxBytes := fs.Int64("max-bytes", 0, "file level: cap on the tree's bytes, e.g. the sum of the task's target disk sizes (0: none); over it a pass fails with SMS.0519")
	maxConns := fs.Int("max-conns", transport.DefaultMaxConns, "authenticated connections served at once (one data connection at a time regardless)")
	idle := fs.Duration("idle-timeout", transport.DefaultIdleTimeout, "a connection silent this long is closed")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *certFile == "" || *keyFile == "" || *passFile == "" {
		return fmt.Errorf("--cert, --key and --passphrase-file are required")
	}
	if (len(disks) == 0) == (*root == "") {
		return fmt.Errorf("give --disk (block level) or --root (file level)")
	}
	if *maxBytes < 0 || *maxConns < 1 || *idle <= 0 {
		return fmt.Errorf("--max-bytes, --max-conns and --idle-timeout must be positive")
	}
	log, err := newLogger(stderr, *logLevel, "text")
	if err != nil {
		return err
	}
	read := func(p string) (string, error) {
		b, err := os.ReadFile(p)
		return string(b), err
	}
	cert, err := read(*certFile)
	if err != nil {
		return err
	}
	key, err := read(*keyFile)
	if err != nil {
		return err
	}
	pass, err := read(*passFile)
	if err != nil {
		return err
	}
	ln, err := transport.Listen(*listen, transport.Creds{CertPEM: cert, KeyPEM: key, Passphrase: strings.TrimSpace(pass)})
	if err != nil {
		return err
	}
	ln.Limits = transport.Limits{MaxConns: *maxConns, IdleTimeout: *idle}
	log.Info("receiver listening", "addr", ln.Addr().String(), "disks", len(disks), "root", *root)
	return ln.Serve(ctx, func(c *transport.Conn) {
		defer c.Close()
		// Ends when this receiver stops or a newer data connection of the
		// task replaces this one.
		ctx := c.Context()
		var err error
		switch {
		case c.Kind() == transport.KindProbe:
			err = netcheck.Serve(ctx, c)
		case c.Kind() == transport.KindBlock && len(disks) > 0:
			err = blocksync.Receive(ctx, c, disks)
		case c.Kind() == transport.KindVerify && len(disks) > 0:
			err = blocksync.ServeVerify(ctx, c, disks)
		case c.Kind() == transport.KindFile && *root != "":
			err = filesync.ReceiveWith(ctx, c, *root, filesync.ReceiveOptions{MaxBytes: *maxBytes})
		case c.Kind() == transport.KindVerify && *root != "":
			err = filesync.ServeVerify(ctx, c, *root)
		default:
			c.SendError("this receiver does not take that protocol")
			err = fmt.Errorf("protocol %d refused", c.Kind())
		}
		if err != nil {
			log.Warn("pass failed", "err", err)
		} else {
			log.Info("pass done", "kind", c.Kind())
		}
	}, func(err error) { log.Warn("connection refused", "err", err) })
}
