// Package throttle paces the agent's sending to the speed limit in force. The
// limit changes while a transfer runs (a speed window opens or closes, the
// operator posts new rules) and applies from the next chunk, without a
// reconnect.
package throttle

import (
	"context"
	"sync"

	"golang.org/x/time/rate"
)

// Bucket is a token bucket in bytes. The zero rate means no limit.
type Bucket struct {
	mu   sync.Mutex
	lim  *rate.Limiter
	mbps int32
}

// New returns a bucket at mbps Mbit/s (0 = unlimited).
func New(mbps int32) *Bucket {
	b := &Bucket{lim: rate.NewLimiter(rate.Inf, 0)}
	b.Set(mbps)
	return b
}

// BytesPerSecond converts Mbit/s (the API's unit) to bytes per second.
func BytesPerSecond(mbps int32) float64 { return float64(mbps) * 1e6 / 8 }

// Set changes the rate now. The burst is a tenth of a second of traffic
// (at least 64 KiB), small enough that a limit is held within a few percent
// over any second, large enough that a waiter is not woken per frame.
func (b *Bucket) Set(mbps int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mbps = mbps
	if mbps <= 0 {
		b.lim.SetLimit(rate.Inf)
		return
	}
	bps := BytesPerSecond(mbps)
	burst := max(int(bps/10), 64<<10)
	b.lim.SetBurst(burst)
	b.lim.SetLimit(rate.Limit(bps))
}

// Mbps is the rate in force.
func (b *Bucket) Mbps() int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mbps
}

// WaitN blocks until n bytes may be sent (in burst-sized steps, so any n
// works and a rate change applies mid-frame).
func (b *Bucket) WaitN(ctx context.Context, n int) error {
	for n > 0 {
		b.mu.Lock()
		step := min(n, max(b.lim.Burst(), 1))
		inf := b.lim.Limit() == rate.Inf
		b.mu.Unlock()
		if inf {
			return ctx.Err()
		}
		if err := b.lim.WaitN(ctx, step); err != nil {
			// A rate change between reading the burst and waiting can
			// make step larger than the new burst: go round again.
			if ctx.Err() == nil && step > b.lim.Burst() {
				continue
			}
			return err
		}
		n -= step
	}
	return nil
}
