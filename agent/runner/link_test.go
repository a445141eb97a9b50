package runner

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/agent/blocksync"
	"github.com/smsflow/smsflow/agent/internal/testcert"
	"github.com/smsflow/smsflow/agent/smsapi"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/netport"
	"github.com/smsflow/smsflow/internal/sms"
)

// blockTarget is a real block receiver for task t3 on loopback, and the
// source image it copies from. It returns the receiver's address.
func blockTarget(t *testing.T, f *fakeAPI, size int64) (addr, src, dst string) {
	t.Helper()
	cert, key := testcert.New("t3")
	f.creds = transport.Creds{CertPEM: cert, KeyPEM: key, Passphrase: "p"}
	dir := t.TempDir()
	src, dst = filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	data := make([]byte, size)
	_, _ = rand.Read(data)
	require.NoError(t, os.WriteFile(src, data, 0o600))
	require.NoError(t, os.WriteFile(dst, nil, 0o600))
	require.NoError(t, os.Truncate(dst, size))
	l, err := transport.Listen("127.0.0.1:0", f.creds)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		_ = l.Serve(ctx, func(c *transport.Conn) {
			defer c.Close()
			switch c.Kind() {
			case transport.KindBlock:
				_ = blocksync.Receive(ctx, c, []string{dst})
			case transport.KindVerify:
				_ = blocksync.ServeVerify(ctx, c, []string{dst})
			}
		}, func(error) {})
	}()
	return l.Addr().String(), src, dst
}

func copyCommand(name sms.Command, id, addr string, size int64) smsapi.Command {
	p := fmt.Sprintf(`{"task_id":"t3","migrate_type":"MIGRATE_BLOCK","target_addr":%q,"disks":[{"index":0,"name":"/dev/vda","size":%d}]}`, addr, size)
	return smsapi.Command{Name: name, ID: id, Param: json.RawMessage(p)}
}

func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	require.NoError(t, err)
	y, err := os.ReadFile(b)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(x, y), "the target is byte-identical to the source")
}

// TestSyncQueuedWhileSyncFinishes: the workflow queues the next SYNC while
// the previous one is still finishing (here: its verification report is
// being answered). The agent runs it right after the first ends, and each
// result names its command; before, the second was taken for the first
// ("handed out again while it runs") and dropped until the server handed
// it out again a minute later.
func TestSyncQueuedWhileSyncFinishes(t *testing.T) {
	f, srv := newFakeAPI(t)
	const size = 4 << 20
	addr, src, dst := blockTarget(t, f, size)
	finishing, release := make(chan struct{}), make(chan struct{})
	f.onConsistency = func(n int) {
		if n == 1 {
			close(finishing)
			<-release
		}
	}
	r, logs := startRunner(t, srv, t.TempDir(), func(c *Config) {
		c.DiskPaths = map[string]string{"/dev/vda": src}
		c.PollWait = time.Second
	})
	require.Eventually(t, func() bool { return r.SourceID() != "" }, 10*time.Second, 10*time.Millisecond)

	f.commands <- copyCommand("SYNC", "sync-1", addr, size)
	select {
	case <-finishing:
	case <-time.After(20 * time.Second):
		t.Fatal("the first SYNC did not reach its verification report")
	}
	f.commands <- copyCommand("SYNC", "sync-2", addr, size)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "command queued behind the task's running pass") },
		10*time.Second, 10*time.Millisecond, "the agent took the second SYNC")
	released := time.Now()
	close(release)

	first := f.next(t)
	assert.Equal(t, commandResult{Name: "SYNC", ID: "sync-1", Result: "success", Detail: map[string]string{}}, first)
	second := f.next(t) // within f.next's 10 s, not after a 60 s redelivery
	assert.Equal(t, commandResult{Name: "SYNC", ID: "sync-2", Result: "success", Detail: map[string]string{}}, second)
	t.Logf("the second SYNC ended %v after the first was released", time.Since(released))
	f.mu.Lock()
	assert.Equal(t, 2, f.consistency, "both passes ran and verified")
	f.mu.Unlock()
	assert.NotContains(t, logs.String(), "handed out again while it runs")
	sameFiles(t, src, dst)
}

// TestRedeliveredCommandIsNotRunTwice: a copy command handed out again
// under its own id while it runs is the same order.
func TestRedeliveredCommandIsNotRunTwice(t *testing.T) {
	f, srv := newFakeAPI(t)
	const size = 1 << 20
	addr, src, _ := blockTarget(t, f, size)
	finishing, release := make(chan struct{}), make(chan struct{})
	f.onConsistency = func(n int) {
		if n == 1 {
			close(finishing)
			<-release
		}
	}
	r, logs := startRunner(t, srv, t.TempDir(), func(c *Config) { c.DiskPaths = map[string]string{"/dev/vda": src} })
	require.Eventually(t, func() bool { return r.SourceID() != "" }, 10*time.Second, 10*time.Millisecond)
	f.commands <- copyCommand("START", "start-1", addr, size)
	<-finishing
	f.commands <- copyCommand("START", "start-1", addr, size)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "handed out again while it runs") },
		10*time.Second, 10*time.Millisecond)
	close(release)
	assert.Equal(t, "start-1", f.next(t).ID)
	select {
	case res := <-f.results:
		t.Fatalf("a second result: %+v", res)
	case <-time.After(500 * time.Millisecond):
	}
	f.mu.Lock()
	assert.Equal(t, 1, f.consistency, "one pass")
	f.mu.Unlock()
}

// relay forwards TCP connections to a receiver and can be cut: every
// connection closed and new ones refused, as a partition looks to the agent
// once its connections time out.
type relay struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
	forwarded    atomic.Int64
	accepted     atomic.Int64      // connections relayed so far
	onBytes      func(total int64) // called as bytes go to the receiver
}

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &relay{addr: ln.Addr().String(), target: target, ln: ln}
	go r.serve(ln)
	t.Cleanup(r.cut)
	return r
}

func (r *relay) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, up)
		r.mu.Unlock()
		r.accepted.Add(1)
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := up.Write(buf[:n]); werr != nil {
						break
					}
					if total := r.forwarded.Add(int64(n)); r.onBytes != nil {
						r.onBytes(total)
					}
				}
				if err != nil {
					break
				}
			}
			up.Close()
		}()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// cut closes the listener and every connection.
func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// restore listens again on the same address.
func (r *relay) restore() error {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	go r.serve(ln)
	return nil
}

// TestCopyRidesOutAnOutage: the link is cut mid-pass and stays down for
// 2.5 s with the give-up set to 4 s (scaled: 30 minutes is the default; the
// old dial gave up after 2 of them, here 0.27 s). The copy waits, dials
// again, completes byte-identical and succeeds. An outage longer than the
// give-up fails the command with SMS.0807.
func TestCopyRidesOutAnOutage(t *testing.T) {
	f, srv := newFakeAPI(t)
	const size = 8 << 20
	addr, src, dst := blockTarget(t, f, size)
	rl := newRelay(t, addr)
	var once sync.Once
	restored := make(chan error, 1)
	rl.onBytes = func(total int64) {
		if total > 2<<20 {
			once.Do(func() {
				go func() {
					rl.cut()
					time.AfterFunc(2500*time.Millisecond, func() { restored <- rl.restore() })
				}()
			})
		}
	}
	r, logs := startRunner(t, srv, t.TempDir(), func(c *Config) {
		c.DiskPaths = map[string]string{"/dev/vda": src}
		c.LinkRetryFor = 4 * time.Second
	})
	require.Eventually(t, func() bool { return r.SourceID() != "" }, 10*time.Second, 10*time.Millisecond)
	start := time.Now()
	f.commands <- copyCommand("START", "start-1", rl.addr, size)
	select {
	case err := <-restored:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the link was never cut")
	}
	res := f.nextWithin(t, time.Minute)
	assert.Equal(t, "success", res.Result, "%+v", res)
	assert.GreaterOrEqual(t, time.Since(start), 2500*time.Millisecond, "the outage was ridden out, not missed")
	assert.Contains(t, logs.String(), "target unreachable; retrying")
	sameFiles(t, src, dst)

	// Down for good: the command fails once the give-up has passed.
	rl.cut()
	start = time.Now()
	f.commands <- copyCommand("SYNC", "sync-1", rl.addr, size)
	res = f.nextWithin(t, time.Minute)
	assert.Equal(t, "fail", res.Result)
	assert.Equal(t, "SMS.0807", res.Detail["error_code"], "%+v", res)
	assert.GreaterOrEqual(t, time.Since(start), 4*time.Second, "retried for the whole give-up")
}

// TestDialRetriesUnreachable: a receiver that refuses connections is dialed
// again with backoff until it answers, within the give-up; past it the
// error is errUnreachable (final, SMS.0807), and a refused passphrase is
// final at once.
func TestDialRetriesUnreachable(t *testing.T) {
	cert, key := testcert.New("t3")
	creds := transport.Creds{CertPEM: cert, KeyPEM: key, Passphrase: "p"}
	// Nothing listens there: refused. Not a port from ":0": in the
	// ephemeral range another socket could take it before the receiver
	// comes back below.
	addr, err := netport.Addr("127.0.0.1")
	require.NoError(t, err)

	r := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := context.Background()

	down := &outage{limit: 500 * time.Millisecond}
	t0 := time.Now()
	_, err = r.dial(ctx, addr, creds, transport.KindProbe, down)
	require.Error(t, err)
	assert.True(t, errors.Is(err, errUnreachable), "%v", err)
	assert.GreaterOrEqual(t, time.Since(t0), 500*time.Millisecond, "retried until the give-up")

	// The receiver comes back 1.5 s later: found, within a give-up of 10 s.
	back := make(chan error, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond) // the outage being simulated
		l, err := transport.Listen(addr, creds)
		back <- err
		if err != nil {
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = l.Serve(sctx, func(c *transport.Conn) { c.Close() }, func(error) {})
	}()
	down = &outage{limit: 10 * time.Second}
	c, err := r.dial(ctx, addr, creds, transport.KindProbe, down)
	select {
	case lerr := <-back:
		require.NoError(t, lerr, "the receiver could not come back on its port")
	default:
	}
	require.NoError(t, err, "an unreachable receiver is retried, not final")
	c.Close()
	assert.True(t, down.since.IsZero(), "a connection ends the outage")

	bad := creds
	bad.Passphrase = "wrong"
	t0 = time.Now()
	_, err = r.dial(ctx, addr, bad, transport.KindProbe, &outage{limit: time.Minute})
	require.Error(t, err)
	assert.True(t, errors.Is(err, errUnreachable))
	assert.Less(t, time.Since(t0), 5*time.Second, "a refusal is not retried")
}

// TestOutageCountsFromTheBreak: the give-up is measured from when the link
// went down, not from the copy's start (a copy of hours keeps the whole
// budget for each outage), and a connection resets it.
func TestOutageCountsFromTheBreak(t *testing.T) {
	o := &outage{limit: time.Minute}
	t0 := time.Now()
	assert.False(t, o.over(t0.Add(time.Hour)), "up: never over")
	o.begin(t0)
	o.begin(t0.Add(30 * time.Second)) // still the same outage
	assert.False(t, o.over(t0.Add(59*time.Second)))
	assert.True(t, o.over(t0.Add(61*time.Second)))
	o.end()
	o.begin(t0.Add(2 * time.Hour))
	assert.False(t, o.over(t0.Add(2*time.Hour+30*time.Second)), "a new outage has the whole budget")
}

// TestPollWaitFitsAgentTimeout: the agent reads the server's agent timeout
// and long-polls for less than half of it, so it never reads disconnected
// while it waits; without the setting it keeps its own wait.
func TestPollWaitFitsAgentTimeout(t *testing.T) {
	for _, tc := range []struct {
		timeout string
		want    string
	}{
		{"5", "1"},   // 1.5 s: under 2.5 s
		{"30", "14"}, // under 15 s
		{"90", "30"}, // the agent's own 30 s already fits
		{"", "30"},   // an older server says nothing
	} {
		t.Run("timeout="+tc.timeout, func(t *testing.T) {
			f, srv := newFakeAPI(t)
			f.agentTimeout = tc.timeout
			r, _ := startRunner(t, srv, t.TempDir(), func(c *Config) { c.PollWait = 30 * time.Second })
			require.Eventually(t, func() bool {
				f.mu.Lock()
				defer f.mu.Unlock()
				return r.SourceID() != "" && len(f.waits) > 0
			}, 10*time.Second, 10*time.Millisecond)
			f.mu.Lock()
			defer f.mu.Unlock()
			assert.Equal(t, tc.want, f.waits[0])
		})
	}
}

// drop closes the relay's connections and keeps listening: a flap.
func (r *relay) drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// TestCopyFlappingLinkRetriesSoon: a link that flaps (each connection
// dropped after 1 MiB, five times; the link itself stays up) costs the copy
// about a second per flap, not a wait that doubles with each one: the
// backoff starts short again after a pass that got through. Before, the
// waits grew 1, 2, 4, 8, 16 s (15.5 s at least with the jitter), and on
// a link flapping every 20 s a pass never finished (TestBadNetwork).
func TestCopyFlappingLinkRetriesSoon(t *testing.T) {
	f, srv := newFakeAPI(t)
	const size = 8 << 20
	addr, src, dst := blockTarget(t, f, size)
	rl := newRelay(t, addr)
	var mu sync.Mutex
	flaps := 0
	var gen, base int64
	rl.onBytes = func(total int64) {
		mu.Lock()
		defer mu.Unlock()
		// One flap per connection, after 1 MiB of its own: the next waits
		// for the reconnect and counts from there, so a drop that runs
		// late (its goroutine) on a loaded machine is neither counted
		// twice against one connection nor lands in the next one's TLS
		// handshake.
		if g := rl.accepted.Load(); g != gen {
			gen, base = g, total
		}
		if flaps < 5 && gen > int64(flaps) && total-base > 1<<20 {
			flaps++
			go rl.drop()
		}
	}
	r, logs := startRunner(t, srv, t.TempDir(), func(c *Config) {
		c.DiskPaths = map[string]string{"/dev/vda": src}
	})
	require.Eventually(t, func() bool { return r.SourceID() != "" }, 10*time.Second, 10*time.Millisecond)
	start := time.Now()
	f.commands <- copyCommand("START", "start-1", rl.addr, size)
	res := f.nextWithin(t, time.Minute)
	took := time.Since(start)
	assert.Equal(t, "success", res.Result, "%+v", res)
	mu.Lock()
	assert.Equal(t, 5, flaps, "the link flapped five times")
	mu.Unlock()
	// Two drops may land in one pass (a drop runs a moment after its byte).
	reruns := strings.Count(logs.String(), "running the pass again")
	assert.GreaterOrEqual(t, reruns, 3, logs.String())
	assert.LessOrEqual(t, reruns, 5, logs.String())
	assert.Less(t, took, 12*time.Second, "each flap cost about a second")
	sameFiles(t, src, dst)
}
