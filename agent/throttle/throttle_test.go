package throttle

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBucketPaces(t *testing.T) {
	b := New(8) // 1 MB/s, burst 100 kB
	assert.Equal(t, int32(8), b.Mbps())
	start := time.Now()
	require.NoError(t, b.WaitN(context.Background(), 600_000))
	// 600 kB at 1 MB/s less the initial burst: at least ~0.4 s, whatever
	// the machine's speed (only the lower bound is asserted).
	assert.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond)
}

func TestUnlimitedAndChanges(t *testing.T) {
	b := New(0)
	require.NoError(t, b.WaitN(context.Background(), 1<<30), "no limit: nothing to wait for")

	b.Set(1) // 125 kB/s: 2 MB would take 16 s
	go func() {
		time.Sleep(100 * time.Millisecond)
		b.Set(0)
	}()
	start := time.Now()
	require.NoError(t, b.WaitN(context.Background(), 2_000_000))
	assert.Less(t, time.Since(start), 8*time.Second, "lifting the limit frees a waiter mid-transfer")

	b.Set(1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.Error(t, b.WaitN(ctx, 10_000_000), "a canceled wait ends")
}

func TestBytesPerSecond(t *testing.T) {
	assert.Equal(t, 5e6, BytesPerSecond(40))
	assert.Equal(t, 25e6, BytesPerSecond(200))
}
