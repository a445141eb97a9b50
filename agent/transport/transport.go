// Package transport is the link between a source's agent and the target's
// receiver: TLS 1.3 where both ends present the task's certificate (pinned:
// no other certificate is accepted, whatever CA signed it), then the task's
// passphrase, then length-prefixed frames. The block and file protocols run
// on top; each connection says which one it speaks.
package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is the protocol a connection speaks after the handshake.
type Kind uint8

const (
	KindBlock  Kind = 1 // block-level copy and sync of disks
	KindFile   Kind = 2 // file-level copy and sync of a tree
	KindVerify Kind = 3 // consistency check
	KindProbe  Kind = 4 // network check (agent/netcheck)
)

// MaxPayload bounds one frame: a peer announcing more is refused before
// anything is allocated.
const MaxPayload = 8 << 20

// maxHello bounds the hello (magic, kind and passphrase): it is read before
// the passphrase is checked, so a peer without credentials gets no more.
const maxHello = 4 << 10

// growStep is what a frame's buffer grows by ahead of the bytes that
// arrived: a peer announcing a large frame and then stalling holds this
// much, not the frame's size.
const growStep = 64 << 10

// Frame types shared by every protocol; protocols use 1..0xEF.
const (
	frameHello uint8 = 0xF0
	frameOK    uint8 = 0xF1
	frameError uint8 = 0xFF
)

var magic = []byte("SMSF1")

// Creds are the task's TLS certificate, key and passphrase (the certkey and
// passphrase endpoints serve them to the agent; the receiver gets them from
// the task).
type Creds struct {
	CertPEM    string
	KeyPEM     string
	Passphrase string
}

func (c Creds) tlsConfig(server bool) (*tls.Config, error) {
	pair, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
	if err != nil {
		return nil, fmt.Errorf("transport: task certificate: %w", err)
	}
	if c.Passphrase == "" {
		return nil, errors.New("transport: empty passphrase")
	}
	want := pair.Certificate[0]
	pin := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 || !bytes.Equal(raw[0], want) {
			return errors.New("transport: peer certificate is not the task's")
		}
		return nil
	}
	conf := &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair},
		// The chain is not checked against a CA: the peer must present
		// exactly the task certificate (VerifyPeerCertificate pins it).
		InsecureSkipVerify: true, VerifyPeerCertificate: pin,
	}
	if server {
		conf.ClientAuth = tls.RequireAnyClientCert
	}
	return conf, nil
}

// RemoteError is an error the peer reported before closing.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return "transport: peer: " + e.Msg }

// StoppingMsg is what a receiver tells the sender when it shuts down
// mid-pass (its worker stopping): the sender may come back and resume.
const StoppingMsg = "transport: receiver stopping"

// IsStopping tells whether err is a receiver's shutdown notice.
func IsStopping(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Msg == StoppingMsg
}

// ErrAuth: the passphrase did not match.
var ErrAuth = errors.New("transport: authentication failed")

// Conn is an authenticated, framed connection. Send and Flush are for one
// goroutine, Recv for one goroutine (they may be different).
type Conn struct {
	raw     *tls.Conn
	counter *countingConn
	r       *bufio.Reader
	w       *bufio.Writer
	kind    Kind
	limiter Limiter
	ctx     context.Context
	hdr     [5]byte
	rhdr    [5]byte
	buf     []byte

	// idle, when set, bounds every read and write: no peer holds a
	// connection silent for longer. dl is the deadline set by SetDeadline
	// (zero for none): the idle deadline never extends past it, so a kick
	// (a deadline in the past) is not undone by the next read.
	idle time.Duration
	dlMu sync.Mutex
	dl   time.Time
	// final is set by the first kick or SendError: a kick after it would
	// cut the last message short, so none happens.
	final bool

	// life is the connection's own context (see Context); stop cancels it.
	life context.Context
	stop context.CancelFunc
	done chan struct{} // closed once the handler returned (listener side)
}

// Limiter paces the bytes sent (a token bucket).
type Limiter interface {
	WaitN(ctx context.Context, n int) error
}

type countingConn struct {
	net.Conn
	sent, recv atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.sent.Add(int64(n))
	return n, err
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.recv.Add(int64(n))
	return n, err
}

// connBuf is the size of a connection's read and write buffers. Payloads
// larger than it bypass them, so it need not be large; it is what every
// connection costs before any frame.
const connBuf = 64 << 10

func newConn(raw *tls.Conn, counter *countingConn) *Conn {
	return &Conn{raw: raw, counter: counter, r: bufio.NewReaderSize(raw, connBuf), w: bufio.NewWriterSize(raw, connBuf),
		ctx: context.Background(), life: context.Background(), stop: func() {}}
}

// Context ends when the connection must stop: its listener is stopping, or
// a newer data connection of the task replaces it. A handler passes it to
// the pass it runs (dialed connections: context.Background()).
func (c *Conn) Context() context.Context { return c.life }

// Kind is the protocol the dialer chose.
func (c *Conn) Kind() Kind { return c.kind }

// SetLimiter paces what Send writes from now on; ctx bounds the waits.
func (c *Conn) SetLimiter(ctx context.Context, l Limiter) { c.ctx, c.limiter = ctx, l }

// BytesSent and BytesReceived count what crossed the wire (TLS records
// included): the figure the incremental-sync target is measured on.
func (c *Conn) BytesSent() int64     { return c.counter.sent.Load() }
func (c *Conn) BytesReceived() int64 { return c.counter.recv.Load() }

// SetDeadline bounds the next reads and writes (the zero time: only the
// idle timeout, if any, bounds them).
func (c *Conn) SetDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.dl = t
	return c.raw.SetDeadline(t)
}

// arm sets the idle deadline for the next read or write, never later than
// the deadline SetDeadline set.
func (c *Conn) arm(write bool) {
	if c.idle <= 0 {
		return
	}
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	d := time.Now().Add(c.idle)
	if !c.dl.IsZero() && c.dl.Before(d) {
		d = c.dl
	}
	if write {
		_ = c.raw.SetWriteDeadline(d)
	} else {
		_ = c.raw.SetReadDeadline(d)
	}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.raw.Close() }

// Send buffers a frame; it reaches the peer on Flush or when the buffer
// fills. A limiter, if set, is waited on for the frame's size first.
func (c *Conn) Send(typ uint8, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("transport: frame of %d bytes over the %d limit", len(payload), MaxPayload)
	}
	if c.limiter != nil {
		if err := c.limiter.WaitN(c.ctx, len(payload)+len(c.hdr)); err != nil {
			return err
		}
	}
	c.arm(true)
	c.hdr[0] = typ
	binary.BigEndian.PutUint32(c.hdr[1:], uint32(len(payload)))
	if _, err := c.w.Write(c.hdr[:]); err != nil {
		return err
	}
	_, err := c.w.Write(payload)
	return err
}

// Flush sends what Send buffered.
func (c *Conn) Flush() error {
	c.arm(true)
	return c.w.Flush()
}

// SendError tells the peer why this end gives up, best effort.
func (c *Conn) SendError(msg string) {
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	c.dlMu.Lock()
	c.final = true
	c.dl = time.Now().Add(5 * time.Second)
	_ = c.raw.SetWriteDeadline(c.dl)
	c.dlMu.Unlock()
	if c.Send(frameError, []byte(msg)) == nil {
		_ = c.Flush()
	}
}

// Recv reads the next frame. The payload is valid until the next Recv. A
// frame of type error from the peer comes back as *RemoteError.
func (c *Conn) Recv() (uint8, []byte, error) {
	return c.recv(MaxPayload)
}

func (c *Conn) recv(limit uint32) (uint8, []byte, error) {
	c.arm(false)
	typ, p, err := readFrame(c.r, c.rhdr[:], &c.buf, limit)
	if err != nil {
		return 0, nil, err
	}
	if typ == frameError {
		return 0, nil, &RemoteError{Msg: string(p)}
	}
	return typ, p, nil
}

// readFrame reads one frame of at most limit bytes into *buf. The buffer
// grows with the bytes that arrive (growStep ahead), not with the size the
// header announces: a peer that announces a large frame and stalls costs
// little.
func readFrame(r io.Reader, hdr []byte, buf *[]byte, limit uint32) (uint8, []byte, error) {
	if _, err := io.ReadFull(r, hdr[:5]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:5]))
	if n > int(limit) {
		return 0, nil, fmt.Errorf("transport: frame of %d bytes over the %d limit", n, limit)
	}
	p := (*buf)[:0]
	for len(p) < n {
		step := min(n-len(p), max(growStep, len(p)))
		if cap(p) < len(p)+step {
			// Double at most: the copies stay linear in the frame's size.
			grown := make([]byte, len(p), min(n, max(len(p)+step, 2*cap(p))))
			copy(grown, p)
			p = grown
		}
		if _, err := io.ReadFull(r, p[len(p):len(p)+step]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
		p = p[:len(p)+step]
	}
	if cap(p) > cap(*buf) {
		*buf = p
	}
	return hdr[0], p, nil
}

// Dial connects to a receiver, proves the task's identity and asks for kind.
func Dial(ctx context.Context, addr string, creds Creds, kind Kind) (*Conn, error) {
	return dialWith(ctx, &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}, addr, creds, kind)
}

// dialWith is Dial through nd (tests dial from another loopback address).
func dialWith(ctx context.Context, nd *net.Dialer, addr string, creds Creds, kind Kind) (*Conn, error) {
	conf, err := creds.tlsConfig(false)
	if err != nil {
		return nil, err
	}
	tcp, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	// Count beneath TLS, so the figures are what crossed the wire.
	counter := &countingConn{Conn: tcp}
	raw := tls.Client(counter, conf)
	if err := raw.HandshakeContext(ctx); err != nil {
		tcp.Close()
		return nil, fmt.Errorf("transport: TLS handshake with %s: %w", addr, err)
	}
	c := newConn(raw, counter)
	c.kind = kind
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	} else {
		_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	}
	hello := append(append([]byte(nil), magic...), byte(kind))
	hello = append(hello, creds.Passphrase...)
	if err := c.Send(frameHello, hello); err != nil {
		raw.Close()
		return nil, fmt.Errorf("transport: hello: %w", err)
	}
	if err := c.Flush(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("transport: hello: %w", err)
	}
	typ, _, err := c.Recv()
	if err != nil {
		raw.Close()
		var re *RemoteError
		if errors.As(err, &re) && re.Msg == ErrAuth.Error() {
			return nil, ErrAuth
		}
		return nil, fmt.Errorf("transport: handshake with %s: %w", addr, err)
	}
	if typ != frameOK {
		raw.Close()
		return nil, fmt.Errorf("transport: handshake with %s: unexpected frame %#x", addr, typ)
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// Limits bound what the peers of a listener can hold. Zero fields take the
// defaults below.
type Limits struct {
	// MaxConns bounds the authenticated connections at once; one more is
	// told the receiver is busy (the agent retries its dial).
	MaxConns int
	// MaxHandshakes bounds the connections not yet authenticated: the
	// listener stops accepting while that many are in their handshake, so
	// silent peers cannot exhaust descriptors.
	MaxHandshakes int
	// MaxHandshakesPerIP bounds them per remote address: one more from
	// that address is accepted and closed at once, so one host re-dialling
	// silent sockets cannot fill MaxHandshakes and keep the task's agent
	// out.
	MaxHandshakesPerIP int
	// HandshakeTimeout bounds the TLS handshake and the hello together.
	HandshakeTimeout time.Duration
	// IdleTimeout bounds every read and write after the handshake.
	IdleTimeout time.Duration
	// ReplaceWait is how long a new data connection waits for the one it
	// replaces to stop before it is refused as busy.
	ReplaceWait time.Duration
}

// Default limits.
const (
	DefaultMaxConns           = 8
	DefaultMaxHandshakes      = 16
	DefaultMaxHandshakesPerIP = 4
	// DefaultHandshakeTimeout is short: a TLS handshake and a small hello
	// take milliseconds even on a poor link, and every second of it is a
	// second a silent peer holds a slot.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultIdleTimeout is long: a sender may hash a large file between
	// two frames (a verification), or wait while the receiver hashes its
	// old copy — minutes per hundred GiB. A dead peer is found sooner by
	// TCP keepalive; this bounds a live one that stays silent.
	DefaultIdleTimeout = time.Hour
	DefaultReplaceWait = 30 * time.Second
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxConns, DefaultMaxConns)
	def(&l.MaxHandshakes, DefaultMaxHandshakes)
	def(&l.MaxHandshakesPerIP, DefaultMaxHandshakesPerIP)
	defD(&l.HandshakeTimeout, DefaultHandshakeTimeout)
	defD(&l.IdleTimeout, DefaultIdleTimeout)
	defD(&l.ReplaceWait, DefaultReplaceWait)
	return l
}

// BusyMsg starts what a receiver answers a connection it has no room for.
const BusyMsg = "transport: receiver busy"

// IsBusy tells whether err is a receiver's busy refusal: the sender may
// dial again later.
func IsBusy(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && strings.HasPrefix(re.Msg, BusyMsg)
}

// isData: the kinds that read or write the target. One task has one such
// connection at a time.
func (k Kind) isData() bool { return k == KindBlock || k == KindFile || k == KindVerify }

// Listener accepts the task's agent only.
type Listener struct {
	ln    net.Listener
	conf  *tls.Config
	creds Creds
	// Limits apply to Serve; set them before it starts.
	Limits Limits

	mu    sync.Mutex
	data  *Conn // the running data connection, if any
	conns int   // authenticated connections being served
}

// Listen listens on addr ("127.0.0.1:0" picks a port) for the task's agent.
func Listen(addr string, creds Creds) (*Listener, error) {
	conf, err := creds.tlsConfig(true)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	return &Listener{ln: ln, conf: conf, creds: creds}, nil
}

// Addr is where the listener listens.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops listening.
func (l *Listener) Close() error { return l.ln.Close() }

// Accept waits for the next connection and authenticates it. A peer that
// fails the TLS pin or the passphrase gets an error back (and the caller an
// error wrapping ErrAuth or the TLS failure); the listener stays usable.
// Accept applies the hello and idle limits, not the connection counts
// (Serve does).
func (l *Listener) Accept() (*Conn, error) {
	tcp, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	lim := l.Limits.withDefaults()
	c, err := l.handshake(tcp, lim)
	if err != nil {
		return nil, err
	}
	if err := c.ok(); err != nil {
		return nil, err
	}
	return c, nil
}

// handshake runs TLS and reads the hello; the peer is not answered yet.
func (l *Listener) handshake(tcp net.Conn, lim Limits) (*Conn, error) {
	counter := &countingConn{Conn: tcp}
	raw := tls.Server(counter, l.conf)
	_ = raw.SetDeadline(time.Now().Add(lim.HandshakeTimeout))
	if err := raw.Handshake(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("transport: TLS handshake from %s: %w", tcp.RemoteAddr(), err)
	}
	c := newConn(raw, counter)
	// The hello is read with its own small bound: nothing larger is
	// buffered for a peer that has not proved the passphrase yet.
	typ, p, err := c.recv(maxHello)
	if err != nil || typ != frameHello || len(p) < len(magic)+1 || !bytes.Equal(p[:len(magic)], magic) {
		c.SendError("bad hello")
		raw.Close()
		return nil, fmt.Errorf("transport: bad hello from %s (%v)", raw.RemoteAddr(), err)
	}
	kind := Kind(p[len(magic)])
	pass := p[len(magic)+1:]
	if subtle.ConstantTimeCompare(pass, []byte(l.creds.Passphrase)) != 1 {
		c.SendError(ErrAuth.Error())
		raw.Close()
		return nil, fmt.Errorf("%w from %s", ErrAuth, raw.RemoteAddr())
	}
	if kind < KindBlock || kind > KindProbe {
		c.SendError(fmt.Sprintf("unknown protocol %d", kind))
		raw.Close()
		return nil, fmt.Errorf("transport: unknown protocol %d from %s", kind, raw.RemoteAddr())
	}
	c.kind = kind
	c.buf = nil // the hello's buffer is not kept
	c.idle = lim.IdleTimeout
	return c, nil
}

// ok answers the hello: the connection is the peer's from here on.
func (c *Conn) ok() error {
	if err := c.Send(frameOK, nil); err != nil {
		c.raw.Close()
		return err
	}
	if err := c.Flush(); err != nil {
		c.raw.Close()
		return err
	}
	c.dlMu.Lock()
	if !c.final {
		// A kick while answering stays in force.
		c.dl = time.Time{}
		_ = c.raw.SetDeadline(c.dl)
	}
	c.dlMu.Unlock()
	return nil
}

// refuse tells the peer it is not served, and closes.
func (c *Conn) refuse(msg string) {
	c.SendError(msg)
	c.raw.Close()
}

// kick makes the connection's handler stop: its context ends, then its
// reads and writes fail (the context first, so the handler knows why).
func (c *Conn) kick() {
	c.stop()
	c.cut()
}

// cut fails the connection's reads and writes from now on, unless the
// handler is already sending its last message (SendError), which has its
// own bound.
func (c *Conn) cut() {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if c.final {
		return
	}
	c.final = true
	c.dl = time.Now()
	_ = c.raw.SetDeadline(c.dl)
}

// admit counts an authenticated connection in, and for a data connection
// takes the task's data slot: a running data connection is stopped first,
// and c waits (at most lim.ReplaceWait) until its handler has returned, so
// two passes of one task never run at once. The returned func releases
// what admit took.
func (l *Listener) admit(ctx context.Context, c *Conn, lim Limits) (func(), error) {
	l.mu.Lock()
	if l.conns >= lim.MaxConns {
		l.mu.Unlock()
		return nil, fmt.Errorf("%s: %d connections open", BusyMsg, lim.MaxConns)
	}
	l.conns++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		l.conns--
		if l.data == c {
			l.data = nil
		}
		l.mu.Unlock()
	}
	if !c.kind.isData() {
		return release, nil
	}
	timer := time.NewTimer(lim.ReplaceWait)
	defer timer.Stop()
	l.mu.Lock()
	for l.data != nil {
		old := l.data
		old.kick()
		l.mu.Unlock()
		select {
		case <-old.done:
		case <-timer.C:
			release()
			return nil, fmt.Errorf("%s: the task's previous data connection did not stop", BusyMsg)
		case <-ctx.Done():
			release()
			return nil, fmt.Errorf("%s: stopping", BusyMsg)
		}
		l.mu.Lock()
	}
	l.data = c
	l.mu.Unlock()
	return release, nil
}

// Serve accepts connections until ctx ends or the listener closes, and runs
// handle for each authenticated one in its own goroutine: the TLS handshake
// and the passphrase check happen there too, so a slow or hostile peer does
// not hold up the next. reject, if set, hears of every refused peer and of
// accept errors.
//
// The Limits hold: at most MaxHandshakes peers in their handshake (no more
// are accepted meanwhile), at most MaxHandshakesPerIP of them from one
// address (more are accepted and closed), at most MaxConns served, every read bounded by
// the idle timeout, and one data connection (block, file or verify) at a
// time: a new one stops the running one and starts once that one's handler
// has returned (a reconnecting agent is not kept waiting by its own dead
// connection; two passes of one task never run together). handle should
// run its pass under c.Context(), which ends when it is replaced or Serve
// stops. An accept error never ends Serve: it retries with a backoff. When
// ctx ends, Serve stops every connection and returns once their handlers
// have.
func (l *Listener) Serve(ctx context.Context, handle func(*Conn), reject func(error)) error {
	lim := l.Limits.withDefaults()
	// However Serve ends, the port is let go: a receiver started again
	// binds it anew.
	ctx, cancel := context.WithCancel(ctx)
	var handlers sync.WaitGroup
	defer func() {
		cancel()
		l.ln.Close()
		handlers.Wait()
	}()
	go func() {
		<-ctx.Done()
		l.ln.Close()
	}()
	pending := make(chan struct{}, lim.MaxHandshakes)
	var (
		perIPMu sync.Mutex
		perIP   = map[string]int{} // connections in their handshake, by remote address
	)
	var backoff time.Duration
	for {
		select {
		case pending <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		tcp, err := l.ln.Accept()
		if err != nil {
			<-pending
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors, an aborted connection…: the receiver
			// stays up and tries again.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if reject != nil {
				reject(fmt.Errorf("transport: accept (retrying in %v): %w", backoff, err))
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		backoff = 0
		ip := remoteIP(tcp)
		perIPMu.Lock()
		if perIP[ip] >= lim.MaxHandshakesPerIP {
			perIPMu.Unlock()
			<-pending
			tcp.Close()
			if reject != nil {
				reject(fmt.Errorf("transport: %s: too many connections in their handshake from that address", ip))
			}
			continue
		}
		perIP[ip]++
		perIPMu.Unlock()
		handlers.Go(func() {
			unhook := context.AfterFunc(ctx, func() { _ = tcp.SetDeadline(time.Now()) })
			c, err := l.handshake(tcp, lim)
			unhook()
			perIPMu.Lock()
			if perIP[ip]--; perIP[ip] == 0 {
				delete(perIP, ip)
			}
			perIPMu.Unlock()
			<-pending
			if err != nil {
				if reject != nil {
					reject(err)
				}
				return
			}
			c.life, c.stop = context.WithCancel(ctx)
			c.done = make(chan struct{})
			defer c.stop()
			// Ending Serve stops the connection even if its handler
			// does not watch c.Context().
			unkick := context.AfterFunc(c.life, c.cut)
			defer unkick()
			release, err := l.admit(ctx, c, lim)
			if err != nil {
				c.refuse(err.Error())
				close(c.done)
				if reject != nil {
					reject(fmt.Errorf("transport: %s: %w", c.raw.RemoteAddr(), err))
				}
				return
			}
			defer func() {
				release()
				close(c.done)
			}()
			if c.life.Err() != nil {
				c.refuse(BusyMsg + ": replaced by a newer connection before it started")
				return
			}
			if err := c.ok(); err != nil {
				if reject != nil {
					reject(err)
				}
				return
			}
			handle(c)
		})
	}
}

// remoteIP is the address a connection comes from, without its port.
func remoteIP(c net.Conn) string {
	a := c.RemoteAddr()
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}
