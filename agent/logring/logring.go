// Package logring keeps the newest part of the agent's log in memory, so
// that an operator can collect it through the API (UPLOAD_LOG) without a
// shell on the source server. It is an io.Writer beside stderr.
package logring

import (
	"bytes"
	"sync"
)

// Ring holds at most its size of the newest log bytes.
type Ring struct {
	mu   sync.Mutex
	buf  []byte // len == size once full
	next int    // where the next byte goes
	full bool
	lost int64 // bytes overwritten
}

// New makes a ring of size bytes (at least 1 KiB).
func New(size int) *Ring {
	return &Ring{buf: make([]byte, max(size, 1<<10))}
}

// Write keeps p (its newest bytes if p is larger than the ring). It never
// fails, so a logger writing through it never stops.
func (r *Ring) Write(p []byte) (int, error) {
	n := len(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(p) > len(r.buf) {
		r.lost += int64(len(p) - len(r.buf))
		p = p[len(p)-len(r.buf):]
	}
	for len(p) > 0 {
		c := copy(r.buf[r.next:], p)
		if r.full {
			r.lost += int64(c)
		}
		p = p[c:]
		r.next += c
		if r.next == len(r.buf) {
			r.next, r.full = 0, true
		}
	}
	return n, nil
}

// Bytes is a copy of what the ring holds, oldest first. Once the ring has
// wrapped, the partial first line is dropped and a note says how much came
// before.
func (r *Ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return bytes.Clone(r.buf[:r.next])
	}
	out := make([]byte, 0, len(r.buf)+64)
	out = append(out, r.buf[r.next:]...)
	out = append(out, r.buf[:r.next]...)
	if i := bytes.IndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	note := []byte("[sms-agent: earlier log lines were dropped; this is the newest part of the log]\n")
	return append(note, out...)
}
