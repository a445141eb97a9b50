package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/sms/smserr"
)

// MaxBodyBytes bounds a request body: AK/SK-signed calls are limited to 12 MB
// by the hosted service (§3.2); we apply it to every call.
const MaxBodyBytes = 12 << 20

// maxLoginBodyBytes bounds a token request: it is anonymous by nature and a
// real one is a few hundred bytes.
const maxLoginBodyBytes = 64 << 10

// BodyOptions bound how the API reads request bodies. Bodies are read only
// after the caller is authenticated from its headers (a token, or an active
// AK with a fresh X-Sdk-Date), so these bound what authenticated callers, and
// anonymous token requests, can make the server hold.
type BodyOptions struct {
	// Slots is how many bodies are read at once (default 16); each may hold
	// up to MaxBodyBytes while it is read and handled.
	Slots int
	// SlotWait is how long a request waits for a slot before it is answered
	// 503 with Retry-After (default 2s).
	SlotWait time.Duration
	// MinRate is the slowest transfer accepted, in bytes per second, after
	// Grace (defaults 64 KiB/s and 10s): a 12 MiB agent log then has
	// 3 min 22 s, and a body trickled at 1 byte/s is cut after about 10 s
	// with a 408.
	MinRate int64
	Grace   time.Duration
	// LoginSlots and LoginGrace are the token route's own gate (defaults 4
	// and 2s): anonymous sign-ins never take the slots authenticated
	// bodies need, and a token request trickled at 1 byte/s holds its slot
	// about LoginGrace, not Grace.
	LoginSlots int
	LoginGrace time.Duration
}

func (o BodyOptions) withDefaults() BodyOptions {
	if o.Slots <= 0 {
		o.Slots = 16
	}
	if o.SlotWait <= 0 {
		o.SlotWait = 2 * time.Second
	}
	if o.MinRate <= 0 {
		o.MinRate = 64 << 10
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.LoginSlots <= 0 {
		o.LoginSlots = 4
	}
	if o.LoginGrace <= 0 {
		o.LoginGrace = 2 * time.Second
	}
	return o
}

// login is the options of the token route's gate.
func (o BodyOptions) login() BodyOptions {
	o = o.withDefaults()
	o.Slots, o.Grace = o.LoginSlots, o.LoginGrace
	return o
}

// bodyGate holds the slots of the bodies being read.
type bodyGate struct {
	o     BodyOptions
	slots chan struct{}
}

func newBodyGate(o BodyOptions) *bodyGate {
	o = o.withDefaults()
	return &bodyGate{o: o, slots: make(chan struct{}, o.Slots)}
}

const (
	ctxBodyGate  = "smsflow.bodygate"
	ctxBodyLimit = "smsflow.bodylimit"
)

// withBodyGate makes the gate available to readBody.
func withBodyGate(g *bodyGate) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(ctxBodyGate, g)
		c.Next()
	}
}

// limitBody lowers the body limit of a route below MaxBodyBytes.
func limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(ctxBodyLimit, n)
		c.Next()
	}
}

// acquire takes a slot, waiting at most SlotWait: a server busy reading
// bodies answers 503 rather than queueing without bound.
func (g *bodyGate) acquire(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(g.o.SlotWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-t.C:
		return throttled(http.StatusServiceUnavailable, time.Second,
			"too many request bodies are being read; retry shortly")
	case <-ctx.Done():
		return smserr.New(smserr.SMS6010).WithDetail("the request was canceled").Wrap(ctx.Err())
	}
}

func (g *bodyGate) release() { <-g.slots }

// hasBody tells whether the request carries a body to read.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// readBody reads the whole (bounded) body once: the signature covers it and
// the handler decodes it. The request's Body is replaced by a fresh reader.
func readBody(c *gin.Context) ([]byte, error) {
	if v, ok := c.Get(ctxBody); ok {
		return v.([]byte), nil
	}
	body, err := readBodyInto(c, nil, true)
	if err != nil {
		return nil, err
	}
	keepBody(c, body)
	return body, nil
}

func keepBody(c *gin.Context, body []byte) {
	c.Set(ctxBody, body)
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
}

// readBodyInto reads the body through the gate into h (when not nil) and,
// if keep, into the returned slice; a body that is not kept is hashed and
// dropped, so a signed GET holds no memory for it.
func readBodyInto(c *gin.Context, h hash.Hash, keep bool) ([]byte, error) {
	r := c.Request
	if !hasBody(r) {
		return nil, nil
	}
	limit := int64(MaxBodyBytes)
	if v, ok := c.Get(ctxBodyLimit); ok {
		limit = v.(int64)
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	g, _ := c.Get(ctxBodyGate)
	gate, _ := g.(*bodyGate)
	if gate == nil {
		gate = newBodyGate(BodyOptions{})
	}
	if err := gate.acquire(r.Context()); err != nil {
		return nil, err
	}
	defer gate.release()

	rc := http.NewResponseController(c.Writer)
	dr := &deadlineReader{r: http.MaxBytesReader(c.Writer, r.Body, limit), rc: rc, start: time.Now(),
		minRate: gate.o.MinRate, grace: gate.o.Grace}
	// Whatever the outcome, the handler runs without our deadline (the
	// server sets its own for the next request on this connection).
	defer dr.clear()
	var src io.Reader = dr
	if h != nil {
		src = io.TeeReader(dr, h)
	}
	var body []byte
	var err error
	switch {
	case !keep:
		_, err = io.Copy(io.Discard, src)
	case r.ContentLength > 0:
		body, err = readGrowing(src, r.ContentLength)
	default:
		body, err = io.ReadAll(src)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, tooLarge(limit)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, smserr.New(smserr.SMS6010).WithStatus(http.StatusRequestTimeout).
				WithDetail("the request body arrived too slowly").Wrap(err)
		}
		return nil, smserr.New(smserr.SMS6010).WithDetail("cannot read the request body").Wrap(err)
	}
	return body, nil
}

// firstBodyBuf is the buffer a body starts in.
const firstBodyBuf = 32 << 10

// readGrowing reads a body of n announced bytes into a buffer that grows as
// the bytes arrive (doubling, never past n): a caller that announces 12 MiB
// and sends nothing pins 32 KiB, not 12 MiB.
func readGrowing(r io.Reader, n int64) ([]byte, error) {
	buf := make([]byte, 0, min(n, firstBodyBuf))
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), n))
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		switch {
		case err == io.EOF && int64(len(buf)) == n:
			return buf, nil
		case err == io.EOF:
			// Shorter than announced: as io.ReadFull said before.
			return nil, io.ErrUnexpectedEOF
		case err != nil:
			return nil, err
		}
	}
	return buf, nil
}

func tooLarge(limit int64) error {
	return smserr.New(smserr.SMS6014).WithStatus(http.StatusRequestEntityTooLarge).
		WithDetail("request body larger than " + strconv.FormatInt(limit>>10, 10) + " KiB")
}

// deadlineReader enforces a minimum transfer rate on a body: before each
// read it moves the connection's read deadline to start + grace + the time
// the bytes so far and this read's share would take at minRate. A steady
// client never meets it; one that trickles is cut once it falls behind.
type deadlineReader struct {
	r       io.Reader
	rc      *http.ResponseController
	start   time.Time
	n       int64
	minRate int64
	grace   time.Duration
	off     bool // the writer cannot set deadlines (a test recorder)
}

// deadlineChunk is the share of one read in the allowance: reads of a huge
// buffer must not buy a long deadline.
const deadlineChunk = 32 << 10

func (d *deadlineReader) Read(p []byte) (int, error) {
	if !d.off {
		ahead := d.n + int64(min(len(p), deadlineChunk))
		dl := d.start.Add(d.grace + time.Duration(ahead)*time.Second/time.Duration(d.minRate))
		if err := d.rc.SetReadDeadline(dl); err != nil {
			d.off = true
		}
	}
	n, err := d.r.Read(p)
	d.n += int64(n)
	return n, err
}

func (d *deadlineReader) clear() {
	if !d.off {
		_ = d.rc.SetReadDeadline(time.Time{})
	}
}

// dropUnreadBody is called when a request is refused before its body was
// read: the connection is closed after the answer, and the server is told
// not to read the rest (net/http would otherwise try to drain up to 256 KiB
// of it, at the client's pace, to reuse the connection).
func dropUnreadBody(c *gin.Context) {
	if _, read := c.Get(ctxBody); read || !hasBody(c.Request) {
		return
	}
	c.Header("Connection", "close")
	_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now())
}

// newBodyHash is the hash the signature needs.
func newBodyHash() hash.Hash { return sha256.New() }
