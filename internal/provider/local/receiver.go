package local

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/smsflow/smsflow/agent/blocksync"
	"github.com/smsflow/smsflow/agent/filesync"
	"github.com/smsflow/smsflow/agent/netcheck"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms"
)

// receivers are the running receiving ends, one per target folder. Each
// listens on loopback on a port recorded in the target's manifest, so a
// restarted worker listens where the agent already dials.
type receivers struct {
	mu      sync.Mutex
	running map[string]*receiver // by target location
}

type receiver struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

type receiverRecord struct {
	Port     int          `json:"port"`
	TaskID   string       `json:"task_id"`
	DomainID string       `json:"domain_id"`
	Type     sms.TaskType `json:"type"`
}

// Receiver starts the target's receiver (or finds it running) and returns
// its address.
func (p *Provider) Receiver(ctx context.Context, t provider.Target, task provider.ReceiverTask) (string, error) {
	if err := p.exists(t); err != nil {
		return "", err
	}
	if len(t.Disks) == 0 {
		// Known by its folder only (the task row keeps the location):
		// the disks come from the manifest.
		full, err := p.targetAt(t.Location)
		if err != nil {
			return "", fmt.Errorf("local provider: %w", err)
		}
		t.Disks = full.Disks
	}
	p.rx.mu.Lock()
	defer p.rx.mu.Unlock()
	if p.rx.running == nil {
		p.rx.running = map[string]*receiver{}
	}
	if r, ok := p.rx.running[t.Location]; ok {
		select {
		case <-r.done:
			r.cancel() // it died: release it, and start again
			delete(p.rx.running, t.Location)
		default:
			return r.addr, nil
		}
	}
	rec := p.readRecord(t.Location)
	addr := "127.0.0.1:0"
	if rec.Port > 0 {
		addr = "127.0.0.1:" + strconv.Itoa(rec.Port)
	}
	ln, err := transport.Listen(addr, task.Creds)
	if err != nil && rec.Port > 0 {
		// The recorded port is taken: a new one (an agent mid-copy will
		// fail its dial and the task's restart resumes it).
		ln, err = transport.Listen("127.0.0.1:0", task.Creds)
	}
	if err != nil {
		return "", fmt.Errorf("local provider: receiver: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := p.writeRecord(t.Location, receiverRecord{Port: port, TaskID: task.TaskID, DomainID: task.DomainID, Type: task.Type}); err != nil {
		ln.Close()
		return "", err
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &receiver{addr: ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	p.rx.running[t.Location] = r
	log := p.logger().With("task", task.TaskID, "receiver", r.addr)
	target := t
	go func() {
		defer close(r.done)
		err := ln.Serve(rctx, func(c *transport.Conn) {
			defer c.Close()
			if err := p.serveConn(rctx, c, target, task.Type); err != nil {
				log.Warn("receiver: pass failed", "kind", c.Kind(), "err", err)
			}
		}, func(err error) { log.Warn("receiver: refused a connection", "err", err) })
		if err != nil {
			log.Warn("receiver stopped", "err", err)
		}
	}()
	log.Info("receiver listening")
	return r.addr, nil
}

func (p *Provider) serveConn(ctx context.Context, c *transport.Conn, t provider.Target, typ sms.TaskType) error {
	file := typ == sms.MigrateFile
	switch {
	case c.Kind() == transport.KindProbe:
		return netcheck.Serve(ctx, c)
	case c.Kind() == transport.KindBlock && !file:
		return blocksync.Receive(ctx, c, t.Disks)
	case c.Kind() == transport.KindVerify && !file:
		return blocksync.ServeVerify(ctx, c, t.Disks)
	case c.Kind() == transport.KindFile && file:
		return filesync.Receive(ctx, c, RootDir(t.Location))
	case c.Kind() == transport.KindVerify && file:
		return filesync.ServeVerify(ctx, c, RootDir(t.Location))
	}
	c.SendError(fmt.Sprintf("this target receives %s, not protocol %d", typ, c.Kind()))
	return fmt.Errorf("protocol %d refused for a %s target", c.Kind(), typ)
}

// StopReceiver stops the target's receiver, if one runs.
func (p *Provider) StopReceiver(t provider.Target) {
	p.rx.mu.Lock()
	r, ok := p.rx.running[t.Location]
	delete(p.rx.running, t.Location)
	p.rx.mu.Unlock()
	if ok {
		r.cancel()
		<-r.done
	}
}

// StopReceivers stops them all (worker shutdown).
func (p *Provider) StopReceivers() {
	p.rx.mu.Lock()
	rs := p.rx.running
	p.rx.running = nil
	p.rx.mu.Unlock()
	for _, r := range rs {
		r.cancel()
		<-r.done
	}
}

// RestoreReceivers restarts, on their recorded ports, the receivers of the
// targets that had one: after a worker restart an agent mid-copy finds its
// receiver where it was. creds looks the task's credentials up; a task that
// is gone is skipped.
func (p *Provider) RestoreReceivers(ctx context.Context, creds func(ctx context.Context, domainID, taskID string) (transport.Creds, error)) error {
	entries, err := os.ReadDir(p.Root)
	if err != nil {
		return fmt.Errorf("local provider: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		loc := filepath.Join(p.Root, e.Name())
		rec := p.readRecord(loc)
		if rec.Port == 0 || rec.TaskID == "" {
			continue
		}
		c, err := creds(ctx, rec.DomainID, rec.TaskID)
		if err != nil {
			p.logger().Info("receiver not restored", "task", rec.TaskID, "err", err)
			continue
		}
		t, err := p.targetAt(loc)
		if err != nil {
			continue
		}
		if _, err := p.Receiver(ctx, t, provider.ReceiverTask{TaskID: rec.TaskID, DomainID: rec.DomainID, Type: rec.Type, Creds: c}); err != nil {
			p.logger().Warn("receiver not restored", "task", rec.TaskID, "err", err)
		}
	}
	return nil
}

// targetAt rebuilds a target from its folder's manifest.
func (p *Provider) targetAt(loc string) (provider.Target, error) {
	b, err := os.ReadFile(filepath.Join(loc, "target.json"))
	if err != nil {
		return provider.Target{}, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return provider.Target{}, err
	}
	t := provider.Target{Location: loc, Name: m.Spec.Name}
	for i := range m.Spec.Disks {
		t.Disks = append(t.Disks, DiskFile(loc, i))
	}
	return t, nil
}

func (p *Provider) readRecord(loc string) receiverRecord {
	var r receiverRecord
	b, err := os.ReadFile(filepath.Join(loc, "receiver.json"))
	if err == nil {
		_ = json.Unmarshal(b, &r)
	}
	return r
}

func (p *Provider) writeRecord(loc string, r receiverRecord) error {
	b, _ := json.Marshal(r)
	tmp := filepath.Join(loc, "receiver.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("local provider: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(loc, "receiver.json")); err != nil {
		return fmt.Errorf("local provider: %w", err)
	}
	return nil
}

func (p *Provider) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

var _ provider.ReceiverHost = (*Provider)(nil)
