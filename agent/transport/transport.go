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

func newConn(raw *tls.Conn, counter *countingConn) *Conn {
	return &Conn{raw: raw, counter: counter, r: bufio.NewReaderSize(raw, 256<<10), w: bufio.NewWriterSize(raw, 256<<10),
		ctx: context.Background()}
}

// Kind is the protocol the dialer chose.
func (c *Conn) Kind() Kind { return c.kind }

// SetLimiter paces what Send writes from now on; ctx bounds the waits.
func (c *Conn) SetLimiter(ctx context.Context, l Limiter) { c.ctx, c.limiter = ctx, l }

// BytesSent and BytesReceived count what crossed the wire (TLS records
// included): the figure the incremental-sync target is measured on.
func (c *Conn) BytesSent() int64     { return c.counter.sent.Load() }
func (c *Conn) BytesReceived() int64 { return c.counter.recv.Load() }

// SetDeadline bounds the next reads and writes.
func (c *Conn) SetDeadline(t time.Time) error { return c.raw.SetDeadline(t) }

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
	c.hdr[0] = typ
	binary.BigEndian.PutUint32(c.hdr[1:], uint32(len(payload)))
	if _, err := c.w.Write(c.hdr[:]); err != nil {
		return err
	}
	_, err := c.w.Write(payload)
	return err
}

// Flush sends what Send buffered.
func (c *Conn) Flush() error { return c.w.Flush() }

// SendError tells the peer why this end gives up, best effort.
func (c *Conn) SendError(msg string) {
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	_ = c.raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if c.Send(frameError, []byte(msg)) == nil {
		_ = c.Flush()
	}
}

// Recv reads the next frame. The payload is valid until the next Recv. A
// frame of type error from the peer comes back as *RemoteError.
func (c *Conn) Recv() (uint8, []byte, error) {
	typ, p, err := readFrame(c.r, c.rhdr[:], &c.buf)
	if err != nil {
		return 0, nil, err
	}
	if typ == frameError {
		return 0, nil, &RemoteError{Msg: string(p)}
	}
	return typ, p, nil
}

// readFrame reads one frame into *buf (grown as needed, never past
// MaxPayload).
func readFrame(r io.Reader, hdr []byte, buf *[]byte) (uint8, []byte, error) {
	if _, err := io.ReadFull(r, hdr[:5]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > MaxPayload {
		return 0, nil, fmt.Errorf("transport: frame of %d bytes over the %d limit", n, MaxPayload)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	p := (*buf)[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// Dial connects to a receiver, proves the task's identity and asks for kind.
func Dial(ctx context.Context, addr string, creds Creds, kind Kind) (*Conn, error) {
	conf, err := creds.tlsConfig(false)
	if err != nil {
		return nil, err
	}
	nd := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
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

// Listener accepts the task's agent only.
type Listener struct {
	ln    net.Listener
	conf  *tls.Config
	creds Creds
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
func (l *Listener) Accept() (*Conn, error) {
	tcp, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	return l.handshake(tcp)
}

func (l *Listener) handshake(tcp net.Conn) (*Conn, error) {
	counter := &countingConn{Conn: tcp}
	raw := tls.Server(counter, l.conf)
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	if err := raw.Handshake(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("transport: TLS handshake from %s: %w", tcp.RemoteAddr(), err)
	}
	c := newConn(raw, counter)
	typ, p, err := c.Recv()
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
	if err := c.Send(frameOK, nil); err != nil {
		raw.Close()
		return nil, err
	}
	if err := c.Flush(); err != nil {
		raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// Serve accepts connections until ctx ends or the listener closes, and runs
// handle for each authenticated one in its own goroutine: the TLS handshake
// and the passphrase check happen there too, so a slow or hostile peer does
// not hold up the next. reject, if set, hears of every refused peer.
func (l *Listener) Serve(ctx context.Context, handle func(*Conn), reject func(error)) error {
	// However Serve ends, the port is let go: a receiver started again
	// binds it anew.
	defer l.ln.Close()
	go func() {
		<-ctx.Done()
		l.ln.Close()
	}()
	for {
		tcp, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			c, err := l.handshake(tcp)
			if err != nil {
				if reject != nil {
					reject(err)
				}
				return
			}
			handle(c)
		}()
	}
}
