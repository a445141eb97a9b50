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

// ReceiverNet is where receivers listen and what agents are told to dial.
// The zero value is loopback on any free port: one machine, nothing to set.
type ReceiverNet struct {
	// Listen is the IP receivers listen on (empty: 127.0.0.1; 0.0.0.0 or
	// :: for every interface).
	Listen string
	// Advertise is the host or IP put in the agent's target_addr (empty:
	// Listen).
	Advertise string
	// PortMin and PortMax bound the ports receivers take (both zero: any
	// free port), so a firewall can open one range.
	PortMin, PortMax int
	// PerDomain caps the receivers one domain runs at once, so one tenant
	// cannot take every port of the range. 0 is half the range (rounded
	// up) when a range is set, no cap otherwise; negative, no cap.
	PerDomain int
}

// perDomain is the cap on one domain's receivers (0: none).
func (n ReceiverNet) perDomain() int {
	switch {
	case n.PerDomain > 0:
		return n.PerDomain
	case n.PerDomain < 0 || n.PortMin == 0:
		return 0
	}
	return (n.PortMax - n.PortMin + 2) / 2
}

func (n ReceiverNet) listenHost() string {
	if n.Listen == "" {
		return "127.0.0.1"
	}
	return n.Listen
}

func (n ReceiverNet) advertiseHost() string {
	if n.Advertise != "" {
		return n.Advertise
	}
	return n.listenHost()
}

func (n ReceiverNet) inRange(port int) bool {
	return n.PortMin == 0 || (port >= n.PortMin && port <= n.PortMax)
}

// listen binds a receiver: on the recorded port when it is free and in the
// range (an agent mid-copy dials it again after a worker restart), else on
// the first free port of the range, else on any free port.
func (n ReceiverNet) listen(recorded int, creds transport.Creds) (*transport.Listener, error) {
	host := n.listenHost()
	if recorded > 0 && n.inRange(recorded) {
		ln, err := transport.Listen(net.JoinHostPort(host, strconv.Itoa(recorded)), creds)
		if err == nil {
			return ln, nil
		}
		// The recorded port is taken: a new one (an agent mid-copy will
		// fail its dial and the task's restart resumes it).
	}
	if n.PortMin == 0 {
		return transport.Listen(net.JoinHostPort(host, "0"), creds)
	}
	var last error
	for port := n.PortMin; port <= n.PortMax; port++ {
		ln, err := transport.Listen(net.JoinHostPort(host, strconv.Itoa(port)), creds)
		if err == nil {
			return ln, nil
		}
		last = err
	}
	return nil, fmt.Errorf("no free port in %d-%d: %w", n.PortMin, n.PortMax, last)
}

// receivers are the running receiving ends, one per task: a target is held
// by one task at a time (owner.go), and a receiver accepts only its task's
// agent. Each listens on a port recorded in the target's manifest, so a
// restarted worker listens where the agent already dials.
type receivers struct {
	mu      sync.Mutex
	running map[string]*receiver // by task id
}

type receiver struct {
	addr     string
	location string // the target folder it writes
	domainID string
	cancel   context.CancelFunc
	done     chan struct{}
}

type receiverRecord struct {
	Port     int          `json:"port"`
	TaskID   string       `json:"task_id"`
	DomainID string       `json:"domain_id"`
	Type     sms.TaskType `json:"type"`
}

// Receiver starts the task's receiver on its target (or finds it running)
// and returns its address. The target must be held by the task (owner.go):
// a free target of the task's domain is taken, one of another domain or
// held by another task is refused.
func (p *Provider) Receiver(ctx context.Context, t provider.Target, task provider.ReceiverTask) (string, error) {
	if err := p.exists(t); err != nil {
		return "", err
	}
	if err := p.hold(t.Location, task); err != nil {
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
	if r, ok := p.rx.running[task.TaskID]; ok {
		select {
		case <-r.done:
			r.cancel() // it died: release it, and start again
			delete(p.rx.running, task.TaskID)
		default:
			if r.location == t.Location {
				return r.addr, nil
			}
			// The task's target moved (never expected): the old
			// receiver must not keep writing the old folder.
			r.cancel()
			<-r.done
			delete(p.rx.running, task.TaskID)
		}
	}
	if most := p.Net.perDomain(); most > 0 {
		n := 0
		for _, r := range p.rx.running {
			select {
			case <-r.done: // stopped on its own: holds no port
			default:
				if r.domainID == task.DomainID {
					n++
				}
			}
		}
		if n >= most {
			return "", fmt.Errorf("local provider: receiver: domain %s already runs %d receivers, the most one domain may", task.DomainID, n)
		}
	}
	rec := p.readRecord(t.Location)
	ln, err := p.Net.listen(rec.Port, task.Creds)
	if err != nil {
		return "", fmt.Errorf("local provider: receiver: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := p.writeRecord(t.Location, receiverRecord{Port: port, TaskID: task.TaskID, DomainID: task.DomainID, Type: task.Type}); err != nil {
		ln.Close()
		return "", err
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &receiver{addr: net.JoinHostPort(p.Net.advertiseHost(), strconv.Itoa(port)), location: t.Location, cancel: cancel,
		done: make(chan struct{}), domainID: task.DomainID}
	p.rx.running[task.TaskID] = r
	log := p.logger().With("task", task.TaskID, "receiver", r.addr, "listen", ln.Addr().String())
	target := t
	maxBytes := p.treeCap(t.Location)
	go func() {
		defer close(r.done)
		err := ln.Serve(rctx, func(c *transport.Conn) {
			defer c.Close()
			// c.Context() ends with the receiver, or when a newer data
			// connection of the task replaces this one.
			if err := p.serveConn(c.Context(), c, target, task.Type, maxBytes); err != nil {
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

// treeCap is the file-level cap on the tree's bytes: the sum of the task's
// target disk sizes (0, no cap, when the spec has none).
func (p *Provider) treeCap(loc string) int64 {
	b, err := os.ReadFile(filepath.Join(loc, "target.json"))
	if err != nil {
		return 0
	}
	var m manifest
	if json.Unmarshal(b, &m) != nil {
		return 0
	}
	var sum int64
	for _, d := range m.Spec.Disks {
		sum = satAdd(sum, max(d.Size, 0))
	}
	return sum
}

func (p *Provider) serveConn(ctx context.Context, c *transport.Conn, t provider.Target, typ sms.TaskType, maxBytes int64) error {
	file := typ == sms.MigrateFile
	switch {
	case c.Kind() == transport.KindProbe:
		return netcheck.Serve(ctx, c)
	case c.Kind() == transport.KindBlock && !file:
		return blocksync.Receive(ctx, c, t.Disks)
	case c.Kind() == transport.KindVerify && !file:
		return blocksync.ServeVerify(ctx, c, t.Disks)
	case c.Kind() == transport.KindFile && file:
		return filesync.ReceiveWith(ctx, c, RootDir(t.Location), filesync.ReceiveOptions{MaxBytes: maxBytes})
	case c.Kind() == transport.KindVerify && file:
		return filesync.ServeVerify(ctx, c, RootDir(t.Location))
	}
	c.SendError(fmt.Sprintf("this target receives %s, not protocol %d", typ, c.Kind()))
	return fmt.Errorf("protocol %d refused for a %s target", c.Kind(), typ)
}

// hold checks that task may receive into the folder loc, and records it as
// the holder of a free target of its domain.
func (p *Provider) hold(loc string, task provider.ReceiverTask) error {
	if err := p.inRoot(loc); err != nil {
		return err
	}
	p.own.Lock()
	defer p.own.Unlock()
	o, ok, err := readOwner(loc)
	if err != nil {
		return err
	}
	switch {
	case !ok && filepath.Base(loc) == task.TaskID && task.DomainID != "":
		// The task's own folder from before owners were recorded.
		return writeOwner(loc, owner{DomainID: task.DomainID, TaskID: task.TaskID, Created: true})
	case !ok || o.DomainID != task.DomainID:
		return fmt.Errorf("local provider: receiver: target %s: %w", filepath.Base(loc), provider.ErrNotFound)
	case o.TaskID == task.TaskID:
		return nil
	case o.TaskID == "":
		o.TaskID = task.TaskID
		return writeOwner(loc, o)
	}
	return fmt.Errorf("local provider: receiver: target %s: %w", filepath.Base(loc), provider.ErrInUse)
}

// StopReceiver stops the receivers writing into the target, if any run.
func (p *Provider) StopReceiver(t provider.Target) {
	p.rx.mu.Lock()
	var stop []*receiver
	for id, r := range p.rx.running {
		if r.location == t.Location {
			stop = append(stop, r)
			delete(p.rx.running, id)
		}
	}
	p.rx.mu.Unlock()
	for _, r := range stop {
		r.cancel()
		<-r.done
	}
}

// stopReceiver stops the task's receiver, if one runs.
func (p *Provider) stopReceiver(taskID string) {
	p.rx.mu.Lock()
	r, ok := p.rx.running[taskID]
	delete(p.rx.running, taskID)
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
