// Package dispatch queues commands for source agents and hands them out,
// with long polling: an agent that asks with a wait is answered as soon as a
// command is queued for it, not at its next poll.
//
// Commands live in the database (store.Command), so they survive restarts
// and reach an agent whichever API replica it polls. A queue in this process
// wakes its waiters at once; a queue in another process (the worker, another
// replica) is noticed by one poller per process that asks the database for
// new commands every PollInterval — one cheap query, however many agents wait.
package dispatch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/smsflow/smsflow/internal/store"
)

// Store is what the dispatcher needs.
type Store interface {
	EnqueueCommand(ctx context.Context, t store.Tenant, c *store.Command) error
	NextCommand(ctx context.Context, t store.Tenant, sourceID string, now time.Time, redeliver time.Duration) (*store.Command, error)
	QueuedSince(ctx context.Context, seq int64, limit int) ([]store.Command, error)
	MaxCommandSeq(ctx context.Context) (int64, error)
}

// Options tune the dispatcher.
type Options struct {
	// Redeliver is how long an issued command waits for its result before it
	// is handed out again.
	Redeliver time.Duration
	// PollInterval is how often the cross-process poller looks for commands.
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Dispatcher queues and hands out commands.
type Dispatcher struct {
	store Store
	opts  Options
	log   *slog.Logger

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
}

// New builds a dispatcher; call Run to follow other processes' queues.
func New(s Store, opts Options) *Dispatcher {
	if opts.Redeliver == 0 {
		opts.Redeliver = time.Minute
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{store: s, opts: opts, log: log, waiters: map[string]map[chan struct{}]struct{}{}}
}

func key(domainID, sourceID string) string { return domainID + "/" + sourceID }

// Enqueue queues a command for a source and wakes its waiting agent.
func (d *Dispatcher) Enqueue(ctx context.Context, t store.Tenant, c *store.Command) error {
	if c.ID == "" {
		c.ID = uuid.NewString()
	}
	if err := d.store.EnqueueCommand(ctx, t, c); err != nil {
		return err
	}
	d.notify(key(t.DomainID, c.SourceID))
	return nil
}

// Next hands out the source's next command, waiting up to wait for one to be
// queued. nil means none (the agent polls again).
func (d *Dispatcher) Next(ctx context.Context, t store.Tenant, sourceID string, wait time.Duration) (*store.Command, error) {
	k := key(t.DomainID, sourceID)
	deadline := time.Now().Add(wait)
	for {
		// Subscribe before looking, so a command queued between the look and
		// the wait still wakes us.
		ch, cancel := d.subscribe(k)
		c, err := d.store.NextCommand(ctx, t, sourceID, time.Now(), d.opts.Redeliver)
		if err != nil || c != nil {
			cancel()
			return c, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			cancel()
			return nil, nil
		}
		timer := time.NewTimer(min(left, d.opts.Redeliver))
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			cancel()
			return nil, nil
		}
		timer.Stop()
		cancel()
	}
}

func (d *Dispatcher) subscribe(k string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	d.mu.Lock()
	set := d.waiters[k]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		d.waiters[k] = set
	}
	set[ch] = struct{}{}
	d.mu.Unlock()
	return ch, func() {
		d.mu.Lock()
		delete(set, ch)
		if len(set) == 0 && d.waiters[k] != nil && len(d.waiters[k]) == 0 {
			delete(d.waiters, k)
		}
		d.mu.Unlock()
	}
}

func (d *Dispatcher) notify(k string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.waiters[k] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Waiting tells how many agents wait on long polls (metrics, tests).
func (d *Dispatcher) Waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, s := range d.waiters {
		n += len(s)
	}
	return n
}

// Run follows commands queued by other processes until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	seq, err := d.store.MaxCommandSeq(ctx)
	if err != nil {
		d.log.Warn("command poller: cannot read the queue head", "err", err)
	}
	t := time.NewTicker(d.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			cmds, err := d.store.QueuedSince(ctx, seq, 500)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("command poller", "err", err)
				}
				break
			}
			for _, c := range cmds {
				seq = max(seq, c.Seq)
				d.notify(key(c.DomainID, c.SourceID))
			}
			if len(cmds) < 500 {
				break
			}
		}
	}
}
