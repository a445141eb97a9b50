// Package netcheck measures the link between a source's agent and its
// target's receiver, over the data plane's own authenticated TLS
// connection (transport kind Probe): round-trip delay and jitter from a
// series of pings, the throughput a copy would get (the task's speed limit
// applies, as to a copy), and packet loss from the kernel's TCP
// retransmission counters. The agent reports the figures through
// POST /v3/{task_id}/update-network-check-info.
//
// # Wire format (after transport's handshake)
//
// Agent → receiver:
//
//	1 ping  seq u32 | opaque u64     (echoed back as a pong)
//	3 data  bytes                    (counted and dropped)
//	4 end                            (no more data)
//
// Receiver → agent:
//
//	2 pong  the ping's payload
//	5 result received u64 | elapsed-ns u64 (from the first data frame to end)
package netcheck

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/smsflow/smsflow/agent/transport"
)

const (
	tPing   = 1
	tPong   = 2
	tData   = 3
	tEnd    = 4
	tResult = 5

	chunk = 256 << 10
)

// Options shape a check; zero values take the defaults.
type Options struct {
	Pings    int           // round trips measured (20)
	Interval time.Duration // pause between pings (50 ms)
	Duration time.Duration // how long data is sent (3 s)
	MaxBytes int64         // and at most this much (1 GiB)
}

func (o *Options) defaults() {
	if o.Pings <= 0 {
		o.Pings = 20
	}
	if o.Interval <= 0 {
		o.Interval = 50 * time.Millisecond
	}
	if o.Duration <= 0 {
		o.Duration = 3 * time.Second
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
}

// Result is what a check measured.
type Result struct {
	Delay       time.Duration // mean round trip
	Jitter      time.Duration // mean difference between consecutive round trips (RFC 3550's idea)
	Mbps        float64       // payload throughput the receiver saw
	LossPercent float64       // TCP segments retransmitted ÷ sent during the check, in %
	Sent        int64         // payload bytes sent
}

// Run measures the link over c (a connection of kind Probe). The speed
// limit set on c (SetLimiter) applies to the throughput part.
func Run(ctx context.Context, c *transport.Conn, o Options) (Result, error) {
	o.defaults()
	var res Result
	before, statsErr := c.TCPStats()

	// Round trips, one at a time.
	rtts := make([]time.Duration, 0, o.Pings)
	var ping [12]byte
	for i := range o.Pings {
		if i > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(o.Interval):
			}
		}
		binary.BigEndian.PutUint32(ping[:4], uint32(i))
		t0 := time.Now()
		binary.BigEndian.PutUint64(ping[4:], uint64(t0.UnixNano()))
		_ = c.SetDeadline(t0.Add(10 * time.Second))
		if err := c.Send(tPing, ping[:]); err != nil {
			return res, fmt.Errorf("netcheck: ping: %w", err)
		}
		if err := c.Flush(); err != nil {
			return res, fmt.Errorf("netcheck: ping: %w", err)
		}
		typ, p, err := c.Recv()
		if err != nil {
			return res, fmt.Errorf("netcheck: pong: %w", err)
		}
		if typ != tPong || len(p) != len(ping) || binary.BigEndian.Uint32(p[:4]) != uint32(i) {
			return res, fmt.Errorf("netcheck: unexpected answer %d to ping %d", typ, i)
		}
		rtts = append(rtts, time.Since(t0))
	}
	res.Delay, res.Jitter = delayJitter(rtts)

	// Throughput: incompressible data for Duration (or MaxBytes).
	buf := make([]byte, chunk)
	_, _ = rand.Read(buf)
	_ = c.SetDeadline(time.Now().Add(o.Duration + 60*time.Second))
	start := time.Now()
	end := start.Add(o.Duration)
	for time.Now().Before(end) && res.Sent < o.MaxBytes {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := c.Send(tData, buf); err != nil {
			return res, fmt.Errorf("netcheck: data: %w", err)
		}
		res.Sent += int64(len(buf))
	}
	if err := c.Send(tEnd, nil); err != nil {
		return res, fmt.Errorf("netcheck: end: %w", err)
	}
	if err := c.Flush(); err != nil {
		return res, fmt.Errorf("netcheck: end: %w", err)
	}
	typ, p, err := c.Recv()
	if err != nil {
		return res, fmt.Errorf("netcheck: result: %w", err)
	}
	if typ != tResult || len(p) != 16 {
		return res, fmt.Errorf("netcheck: unexpected answer %d to end", typ)
	}
	got, ns := binary.BigEndian.Uint64(p[:8]), binary.BigEndian.Uint64(p[8:])
	if int64(got) != res.Sent {
		return res, fmt.Errorf("netcheck: the receiver counted %d bytes of %d", got, res.Sent)
	}
	// The rate is what arrived over the time from the first byte sent to
	// the receiver's count: frames wait in send buffers, so the receiver's
	// own clock (first chunk in to the end) reads a slow link fast.
	if el := time.Since(start).Seconds(); ns > 0 && el > 0 {
		res.Mbps = float64(got) * 8 / el / 1e6
	}
	if after, err := c.TCPStats(); err == nil && statsErr == nil && after.SegsOut > before.SegsOut {
		res.LossPercent = float64(after.Retrans-before.Retrans) / float64(after.SegsOut-before.SegsOut) * 100
	}
	return res, nil
}

// delayJitter is the mean round trip and the mean absolute difference of
// consecutive ones.
func delayJitter(rtts []time.Duration) (delay, jitter time.Duration) {
	if len(rtts) == 0 {
		return 0, 0
	}
	var sum, diffs time.Duration
	for i, d := range rtts {
		sum += d
		if i > 0 {
			diffs += time.Duration(math.Abs(float64(d - rtts[i-1])))
		}
	}
	delay = sum / time.Duration(len(rtts))
	if len(rtts) > 1 {
		jitter = diffs / time.Duration(len(rtts)-1)
	}
	return delay, jitter
}

// ErrProtocol: the agent sent something a probe does not expect.
var ErrProtocol = errors.New("netcheck: protocol error")

// Serve answers one check on c: echoes pings, counts data, reports.
func Serve(ctx context.Context, c *transport.Conn) error {
	var received uint64
	var first time.Time
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
		typ, p, err := c.Recv()
		if err != nil {
			return fmt.Errorf("netcheck: %w", err)
		}
		switch typ {
		case tPing:
			if len(p) != 12 {
				c.SendError("netcheck: bad ping")
				return fmt.Errorf("%w: ping of %d bytes", ErrProtocol, len(p))
			}
			if err := c.Send(tPong, p); err != nil {
				return err
			}
			if err := c.Flush(); err != nil {
				return err
			}
		case tData:
			if first.IsZero() {
				first = time.Now()
			}
			received += uint64(len(p))
		case tEnd:
			var out [16]byte
			binary.BigEndian.PutUint64(out[:8], received)
			if !first.IsZero() {
				binary.BigEndian.PutUint64(out[8:], uint64(time.Since(first).Nanoseconds()))
			}
			if err := c.Send(tResult, out[:]); err != nil {
				return err
			}
			return c.Flush()
		default:
			c.SendError(fmt.Sprintf("netcheck: unexpected frame %d", typ))
			return fmt.Errorf("%w: frame %d", ErrProtocol, typ)
		}
	}
}

// Evaluation grades a check for evaluation_result (6 to 8 characters in the
// spec): "failed" when the target cannot be reached, "degraded" when the
// link loses packets (≥ 1 %), is slow to answer (≥ 100 ms) or gives less
// than 10 Mbit/s (or, under a lower speed limit, less than 80 % of it),
// "healthy" otherwise.
func Evaluation(reached bool, r Result, limitMbps int32) string {
	floor := 10.0
	if limitMbps > 0 {
		floor = min(floor, 0.8*float64(limitMbps))
	}
	switch {
	case !reached:
		return "failed"
	case r.LossPercent >= 1 || r.Delay >= 100*time.Millisecond || r.Mbps < floor:
		return "degraded"
	}
	return "healthy"
}
