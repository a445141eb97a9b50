package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serveWith runs l.Serve until the test ends (and waits for it).
func serveWith(t *testing.T, l *Listener, handle func(*Conn), reject func(error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Serve(ctx, handle, reject)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// Two data connections of one task never run together: however many race
// in, the handlers run one at a time, each new one after the previous one
// returned (it replaces it).
func TestDataConnectionsOneAtATime(t *testing.T) {
	c := creds(t)
	l, err := Listen("127.0.0.1:0", c)
	require.NoError(t, err)
	var running, most atomic.Int32
	var served atomic.Int32
	serveWith(t, l, func(conn *Conn) {
		defer conn.Close()
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		served.Add(1)
		// Echo until the peer leaves or the connection is replaced.
		for {
			typ, p, err := conn.Recv()
			if err != nil {
				return
			}
			if conn.Send(typ, p) != nil || conn.Flush() != nil {
				return
			}
		}
	}, nil)

	first, err := Dial(context.Background(), l.Addr().String(), c, KindFile)
	require.NoError(t, err)
	defer first.Close()
	require.NoError(t, first.Send(7, []byte("x")))
	require.NoError(t, first.Flush())
	_, _, err = first.Recv()
	require.NoError(t, err, "the first connection runs")

	const racers = 8
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			kind := []Kind{KindBlock, KindFile, KindVerify}[i%3]
			conn, err := Dial(context.Background(), l.Addr().String(), c, kind)
			if err != nil {
				// Replaced by another racer before it was answered: the
				// agent would dial again.
				return
			}
			defer conn.Close()
			// Each gets its turn, possibly cut short by the next racer.
			if conn.Send(7, []byte("y")) == nil && conn.Flush() == nil {
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				_, _, _ = conn.Recv()
			}
		})
	}
	wg.Wait()
	// The first one was replaced: its link is cut.
	_ = first.SetDeadline(time.Now().Add(10 * time.Second))
	_, _, err = first.Recv()
	require.Error(t, err, "the replaced connection is stopped")
	assert.EqualValues(t, 1, most.Load(), "two data connections of the task ran at once")
	assert.GreaterOrEqual(t, served.Load(), int32(2))
}

// A handler that does not stop when replaced keeps its slot: the newcomer
// is refused as busy (the agent dials again later), never run beside it.
func TestDataConnectionBusyWhenTheOldOneHangs(t *testing.T) {
	c := creds(t)
	l, err := Listen("127.0.0.1:0", c)
	require.NoError(t, err)
	l.Limits.ReplaceWait = 200 * time.Millisecond
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	serveWith(t, l, func(conn *Conn) {
		defer conn.Close()
		started <- struct{}{}
		<-release // ignores its context
	}, nil)
	defer close(release)
	first, err := Dial(context.Background(), l.Addr().String(), c, KindBlock)
	require.NoError(t, err)
	defer first.Close()
	<-started
	_, err = Dial(context.Background(), l.Addr().String(), c, KindFile)
	require.Error(t, err)
	assert.True(t, IsBusy(err), "%v", err)
	assert.Empty(t, started, "the second ran beside the first")

	// A probe is no data connection: it is served meanwhile.
	probe, err := Dial(context.Background(), l.Addr().String(), c, KindProbe)
	require.NoError(t, err)
	probe.Close()
}

// The authenticated connections are capped.
func TestMaxConns(t *testing.T) {
	c := creds(t)
	l, err := Listen("127.0.0.1:0", c)
	require.NoError(t, err)
	l.Limits.MaxConns = 2
	serveWith(t, l, func(conn *Conn) {
		defer conn.Close()
		_, _, _ = conn.Recv()
	}, nil)
	for range 2 {
		conn, err := Dial(context.Background(), l.Addr().String(), c, KindProbe)
		require.NoError(t, err)
		defer conn.Close()
	}
	_, err = Dial(context.Background(), l.Addr().String(), c, KindProbe)
	require.Error(t, err)
	assert.True(t, IsBusy(err), "%v", err)
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func rss(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	require.NoError(t, err)
	f := strings.Fields(string(b))
	pages, err := strconv.ParseUint(f[1], 10, 64)
	require.NoError(t, err)
	return pages * uint64(os.Getpagesize())
}

// 100 authenticated connections, each announcing an 8 MiB frame and then
// stalling, cost the receiver little: the buffer grows with what arrives,
// not with what the header announces (it was 8 MiB each, up front).
func TestStalledFramesMemory(t *testing.T) {
	c := creds(t)
	l, err := Listen("127.0.0.1:0", c)
	require.NoError(t, err)
	const n = 100
	l.Limits.MaxConns = n + 10
	var mu sync.Mutex
	var conns []*Conn
	serveWith(t, l, func(conn *Conn) {
		defer conn.Close()
		mu.Lock()
		conns = append(conns, conn)
		mu.Unlock()
		_, _, _ = conn.Recv()
	}, nil)
	var clients []*Conn
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for range n {
		// Probes: no data connection, so none replaces another.
		cl, err := Dial(context.Background(), l.Addr().String(), c, KindProbe)
		require.NoError(t, err)
		clients = append(clients, cl)
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(conns) == n }, 20*time.Second, 10*time.Millisecond)
	mu.Lock()
	base := make([]int64, n)
	for i, sc := range conns {
		base[i] = sc.BytesReceived()
	}
	mu.Unlock()
	heap0, rss0 := heapInUse(), rss(t)

	var hdr [5]byte
	hdr[0] = 1
	binary.BigEndian.PutUint32(hdr[1:], MaxPayload)
	for _, cl := range clients {
		// The header alone, straight to the TLS connection.
		_, err := cl.raw.Write(hdr[:])
		require.NoError(t, err)
	}
	// Every receiving end has the header in hand.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i, sc := range conns {
			if sc.BytesReceived() <= base[i] {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond)
	var heapMax, rssMax uint64
	for range 10 { // the readers run right after the bytes are counted
		runtime.Gosched()
		heapMax, rssMax = max(heapMax, heapInUse()), max(rssMax, rss(t))
	}
	const limit = 100 << 20
	t.Logf("heap %d → %d MiB, RSS %d → %d MiB", heap0>>20, heapMax>>20, rss0>>20, rssMax>>20)
	assert.Less(t, int64(heapMax)-int64(heap0), int64(limit), "heap growth")
	assert.Less(t, int64(rssMax)-int64(rss0), int64(limit), "RSS growth")
}

// The hello is read with a small bound, before the passphrase is checked:
// a peer announcing an 8 MiB hello is told off at once instead of being
// waited for.
func TestHelloIsSmall(t *testing.T) {
	c := creds(t)
	addr, rejected := serve(t, c)
	conf, err := c.tlsConfig(false)
	require.NoError(t, err)
	raw, err := tls.Dial("tcp", addr, conf)
	require.NoError(t, err)
	defer raw.Close()
	var hdr [5]byte
	hdr[0] = frameHello
	binary.BigEndian.PutUint32(hdr[1:], MaxPayload)
	_, err = raw.Write(append(hdr[:], magic...))
	require.NoError(t, err)
	require.NoError(t, raw.SetReadDeadline(time.Now().Add(10*time.Second)))
	cl := newConn(raw, &countingConn{Conn: raw})
	_, _, err = cl.Recv()
	var re *RemoteError
	require.ErrorAs(t, err, &re, "the receiver waited for the 8 MiB hello")
	assert.Equal(t, "bad hello", re.Msg)
	assert.Contains(t, (<-rejected).Error(), "over the 4096 limit")
}

// After the handshake every read is bounded by the idle timeout.
func TestIdleTimeout(t *testing.T) {
	c := creds(t)
	l, err := Listen("127.0.0.1:0", c)
	require.NoError(t, err)
	l.Limits.IdleTimeout = 200 * time.Millisecond
	got := make(chan error, 1)
	serveWith(t, l, func(conn *Conn) {
		defer conn.Close()
		_, _, err := conn.Recv()
		got <- err
	}, nil)
	cl, err := Dial(context.Background(), l.Addr().String(), c, KindBlock)
	require.NoError(t, err)
	defer cl.Close()
	select {
	case err := <-got:
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout())
	case <-time.After(10 * time.Second):
		t.Fatal("a silent peer holds the connection past the idle timeout")
	}
}

// countingListener counts the accepted connections open at once.
type countingListener struct {
	net.Listener
	open, most atomic.Int32
	fail       atomic.Int32 // accept errors to return first
}

func (l *countingListener) Accept() (net.Conn, error) {
	if l.fail.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := l.open.Add(1)
	for {
		m := l.most.Load()
		if n <= m || l.most.CompareAndSwap(m, n) {
			break
		}
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// Silent peers without credentials hold at most MaxHandshakes descriptors,
// each for the handshake timeout; the task's agent gets through after them.
func TestSilentConnectionsBounded(t *testing.T) {
	c := creds(t)
	l, err := Listen("127.0.0.1:0", c)
	require.NoError(t, err)
	cl := &countingListener{Listener: l.ln}
	l.ln = cl
	l.Limits.MaxHandshakes = 16
	l.Limits.HandshakeTimeout = 250 * time.Millisecond
	serveWith(t, l, func(conn *Conn) { conn.Close() }, nil)
	var silent []net.Conn
	defer func() {
		for _, s := range silent {
			s.Close()
		}
	}()
	for range 248 {
		s, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		silent = append(silent, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var conn *Conn
	for {
		// The agent's handshake may itself meet the short timeout under
		// load: it dials again, as the runner does.
		conn, err = Dial(ctx, l.Addr().String(), c, KindProbe)
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	require.NoError(t, err)
	conn.Close()
	assert.LessOrEqual(t, cl.most.Load(), int32(16+1), "connections held at once")
}

// An accept error (out of descriptors) does not stop the receiver.
func TestServeSurvivesAcceptErrors(t *testing.T) {
	c := creds(t)
	l, err := Listen("127.0.0.1:0", c)
	require.NoError(t, err)
	cl := &countingListener{Listener: l.ln}
	cl.fail.Store(5)
	l.ln = cl
	var rejects atomic.Int32
	served := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		served <- l.Serve(ctx, func(conn *Conn) { conn.Close() }, func(err error) {
			if strings.Contains(err.Error(), "too many open files") {
				rejects.Add(1)
			}
		})
	}()
	conn, err := Dial(context.Background(), l.Addr().String(), c, KindProbe)
	require.NoError(t, err, "the receiver stopped on an accept error")
	conn.Close()
	assert.EqualValues(t, 5, rejects.Load())
	cancel()
	assert.NoError(t, <-served)
}

// TestHandshakesCappedPerIP: a host that keeps re-dialling silent sockets
// holds at most MaxHandshakesPerIP handshakes; the task's agent, from
// another address, still gets in at once. The listener used to stop
// accepting while MaxHandshakes peers were silent, so the agent queued
// behind every socket the attacker had dialled.
func TestHandshakesCappedPerIP(t *testing.T) {
	c := creds(t)
	l, err := Listen("127.0.0.1:0", c)
	require.NoError(t, err)
	l.Limits.MaxHandshakes = 16
	l.Limits.HandshakeTimeout = time.Second
	serveWith(t, l, func(conn *Conn) { conn.Close() }, nil)
	addr := l.Addr().String()

	// The attacker keeps 128 silent sockets dialled from 127.0.0.1, dialling
	// again (after a short pause) whenever one is closed.
	actx, stop := context.WithCancel(context.Background())
	var attackers sync.WaitGroup
	var dialled atomic.Int64
	for range 128 {
		attackers.Go(func() {
			for actx.Err() == nil {
				s, err := net.Dial("tcp", addr)
				if err != nil {
					continue
				}
				dialled.Add(1)
				unhook := context.AfterFunc(actx, func() { s.Close() })
				_, _ = s.Read(make([]byte, 1))
				unhook()
				s.Close()
				select {
				case <-actx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	defer func() { stop(); attackers.Wait() }()
	require.Eventually(t, func() bool { return dialled.Load() >= 128 }, 10*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	conn, err := dialWith(ctx, nd, addr, c, KindProbe)
	require.NoError(t, err, "the agent from 127.0.0.2 while 127.0.0.1 re-dials silent sockets")
	conn.Close()
}
