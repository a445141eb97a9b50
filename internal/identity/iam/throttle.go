package iam

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// LoginThrottle bounds password guessing. Failed sign-ins are counted per
// user (domain and user name as sent, known or not, so the answer does not
// tell which exist) and per client address, in fixed windows; past the limit
// a sign-in is refused with ThrottledError until the window ends, before its
// password is checked. A successful sign-in clears its user's count (not the
// address's: one valid account must not reset an address's guesses).
type LoginThrottle struct {
	// UserFailures and AddrFailures are the failures allowed per Window
	// (defaults 5 per user and 20 per address, in 15 minutes).
	UserFailures int
	AddrFailures int
	Window       time.Duration
	// MaxChecks is how many password hashes run at once (default half the
	// CPUs, at least 1): a guessing loop then queues behind the others
	// instead of taking every core. A check waits at most CheckWait
	// (default 5s) for its turn, then fails with ErrBusy.
	MaxChecks int
	CheckWait time.Duration
	// MaxEntries bounds the counters kept (default 100000); expired ones are
	// swept first, then arbitrary ones dropped.
	MaxEntries int
}

func (o LoginThrottle) withDefaults() LoginThrottle {
	if o.UserFailures <= 0 {
		o.UserFailures = 5
	}
	if o.AddrFailures <= 0 {
		o.AddrFailures = 20
	}
	if o.Window <= 0 {
		o.Window = 15 * time.Minute
	}
	if o.MaxChecks <= 0 {
		o.MaxChecks = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.CheckWait <= 0 {
		o.CheckWait = 5 * time.Second
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100_000
	}
	return o
}

// ThrottledError refuses a sign-in for too many recent failures.
type ThrottledError struct {
	// RetryAfter is when the window that refuses it ends.
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("iam: too many failed sign-ins, retry in %s", e.RetryAfter.Round(time.Second))
}

// ErrBusy: the password checks were all taken for longer than CheckWait.
var ErrBusy = errors.New("iam: too many sign-ins at once")

type failures struct {
	n     int
	start time.Time
}

// loginGuard is the state of a LoginThrottle.
type loginGuard struct {
	o      LoginThrottle
	checks chan struct{}
	// waiting counts the sign-ins queued for a check (for tests and logs).
	mu      sync.Mutex
	waiting int
	byKey   map[string]failures // "u\x00domain\x00user" and "a\x00addr"
}

func newLoginGuard(o LoginThrottle) *loginGuard {
	o = o.withDefaults()
	return &loginGuard{o: o, checks: make(chan struct{}, o.MaxChecks), byKey: map[string]failures{}}
}

func userKey(domain, user string) string { return "u\x00" + domain + "\x00" + user }
func addrKey(addr string) string         { return "a\x00" + addr }

type limitKey struct {
	key   string
	limit int
}

// reservation is an attempt counted by reserve: the keys and the windows
// it was counted in, so that undo takes it back from those windows only.
type reservation struct {
	keys   []string
	starts []time.Time
}

// reserve counts an attempt against every key before its password is
// checked, in one step under the lock: parallel guesses for one user cannot
// all pass a check made before any of them has failed. When a key is at its
// limit nothing is counted and it reports how long the keys stay refused.
func (g *loginGuard) reserve(now time.Time, keys ...limitKey) (time.Duration, reservation) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		f, ok := g.byKey[k.key]
		if ok && now.Sub(f.start) < g.o.Window && f.n >= k.limit {
			wait = max(wait, f.start.Add(g.o.Window).Sub(now))
		}
	}
	if wait > 0 {
		return wait, reservation{}
	}
	r := reservation{keys: make([]string, 0, len(keys)), starts: make([]time.Time, 0, len(keys))}
	for _, k := range keys {
		f, ok := g.byKey[k.key]
		if !ok || now.Sub(f.start) >= g.o.Window {
			if !ok && len(g.byKey) >= g.o.MaxEntries {
				g.sweepLocked(now)
			}
			f = failures{start: now}
		}
		f.n++
		g.byKey[k.key] = f
		r.keys = append(r.keys, k.key)
		r.starts = append(r.starts, f.start)
	}
	return 0, r
}

// undo takes back a reserved attempt that did not fail (a success, or one
// that never had its password checked), from the windows it was counted in.
func (g *loginGuard) undo(r reservation) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, k := range r.keys {
		f, ok := g.byKey[k]
		if !ok || !f.start.Equal(r.starts[i]) || f.n == 0 {
			continue
		}
		f.n--
		g.byKey[k] = f
	}
}

// sweepLocked drops the expired counters, and arbitrary ones if the map is
// still full (a flood of made-up names must not grow it without bound).
func (g *loginGuard) sweepLocked(now time.Time) {
	for k, f := range g.byKey {
		if now.Sub(f.start) >= g.o.Window {
			delete(g.byKey, k)
		}
	}
	for k := range g.byKey {
		if len(g.byKey) < g.o.MaxEntries {
			break
		}
		delete(g.byKey, k)
	}
}

func (g *loginGuard) reset(key string) {
	g.mu.Lock()
	delete(g.byKey, key)
	g.mu.Unlock()
}

// check runs fn (a password hash) when one of the MaxChecks turns is free.
func (g *loginGuard) check(ctx context.Context, fn func() bool) (bool, error) {
	select {
	case g.checks <- struct{}{}:
	default:
		g.mu.Lock()
		g.waiting++
		g.mu.Unlock()
		t := time.NewTimer(g.o.CheckWait)
		defer t.Stop()
		var err error
		select {
		case g.checks <- struct{}{}:
		case <-t.C:
			err = ErrBusy
		case <-ctx.Done():
			err = fmt.Errorf("iam: waiting for a password check: %w", ctx.Err())
		}
		g.mu.Lock()
		g.waiting--
		g.mu.Unlock()
		if err != nil {
			return false, err
		}
	}
	defer func() { <-g.checks }()
	return fn(), nil
}

// SignInsWaiting is how many sign-ins wait for a password check.
func (s *Service) SignInsWaiting() int {
	s.login.mu.Lock()
	defer s.login.mu.Unlock()
	return s.login.waiting
}
