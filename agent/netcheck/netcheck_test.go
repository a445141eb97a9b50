package netcheck

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/agent/internal/testcert"
	"github.com/smsflow/smsflow/agent/throttle"
	"github.com/smsflow/smsflow/agent/transport"
)

// receiver runs Serve for each connection and reports how each ended.
func receiver(t *testing.T) (transport.Creds, string, chan error) {
	t.Helper()
	cert, key := testcert.New("task-nc")
	creds := transport.Creds{CertPEM: cert, KeyPEM: key, Passphrase: "pass"}
	l, err := transport.Listen("127.0.0.1:0", creds)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ended := make(chan error, 4)
	go func() {
		_ = l.Serve(ctx, func(c *transport.Conn) {
			defer c.Close()
			ended <- Serve(ctx, c)
		}, func(error) {})
	}()
	return creds, l.Addr().String(), ended
}

func TestCheckOverLoopback(t *testing.T) {
	creds, addr, ended := receiver(t)
	c, err := transport.Dial(context.Background(), addr, creds, transport.KindProbe)
	require.NoError(t, err)
	defer c.Close()
	res, err := Run(context.Background(), c, Options{Pings: 10, Interval: time.Millisecond, Duration: 300 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, <-ended)
	assert.Positive(t, res.Delay)
	assert.Less(t, res.Delay, 50*time.Millisecond, "loopback answers fast")
	assert.Positive(t, res.Sent)
	assert.Greater(t, res.Mbps, 50.0, "loopback carries more than 50 Mbit/s")
	assert.Less(t, res.LossPercent, 1.0, "loopback loses nothing")
	assert.Equal(t, "healthy", Evaluation(true, res, 0))
}

// The task's speed limit applies: the throughput measured is what a copy
// would get.
func TestCheckHonoursTheLimit(t *testing.T) {
	creds, addr, ended := receiver(t)
	c, err := transport.Dial(context.Background(), addr, creds, transport.KindProbe)
	require.NoError(t, err)
	defer c.Close()
	c.SetLimiter(context.Background(), throttle.New(40))
	res, err := Run(context.Background(), c, Options{Pings: 2, Interval: time.Millisecond, Duration: 2 * time.Second})
	require.NoError(t, err)
	require.NoError(t, <-ended)
	// Never above the limit (the old bug read fast); a stall on a loaded
	// machine may read low, so the floor is loose.
	assert.LessOrEqual(t, res.Mbps, 40*1.15, "at most 40 Mbit/s (payload, TLS overhead aside)")
	assert.GreaterOrEqual(t, res.Mbps, 40*0.5, "about 40 Mbit/s")
	assert.Equal(t, "healthy", Evaluation(true, res, 40), "at its limit a link is not degraded")
}

// TestCheckMeasuresASlowLink: a slow link is measured at its speed. The
// receiver's clock starts when the first chunk has arrived, so that chunk is
// not part of the rate (counted in, a 9 Mbit/s link read as healthy 10.5).
func TestCheckMeasuresASlowLink(t *testing.T) {
	creds, addr, ended := receiver(t)
	c, err := transport.Dial(context.Background(), addr, creds, transport.KindProbe)
	require.NoError(t, err)
	defer c.Close()
	c.SetLimiter(context.Background(), throttle.New(4))
	res, err := Run(context.Background(), c, Options{Pings: 2, Interval: time.Millisecond, Duration: 2 * time.Second})
	require.NoError(t, err)
	require.NoError(t, <-ended)
	assert.LessOrEqual(t, res.Mbps, 4*1.15, "a slow link does not read fast")
	assert.GreaterOrEqual(t, res.Mbps, 4*0.5, "about 4 Mbit/s")
}

func TestServeRefusesGarbage(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  uint8
		p    []byte
	}{
		{"short ping", tPing, []byte{1, 2}},
		{"result from the agent", tResult, make([]byte, 16)},
		{"unknown frame", 77, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds, addr, ended := receiver(t)
			c, err := transport.Dial(context.Background(), addr, creds, transport.KindProbe)
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.Send(tc.typ, tc.p))
			require.NoError(t, c.Flush())
			assert.ErrorIs(t, <-ended, ErrProtocol)
			_, _, err = c.Recv()
			var re *transport.RemoteError
			assert.ErrorAs(t, err, &re, "the agent learns why")
		})
	}
}

// A receiver that miscounts (or a stream cut short) is an error, not a
// figure.
func TestRunChecksTheCount(t *testing.T) {
	cert, key := testcert.New("task-nc")
	creds := transport.Creds{CertPEM: cert, KeyPEM: key, Passphrase: "pass"}
	l, err := transport.Listen("127.0.0.1:0", creds)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = l.Serve(ctx, func(c *transport.Conn) {
			defer c.Close()
			for {
				typ, p, err := c.Recv()
				if err != nil {
					return
				}
				switch typ {
				case tPing:
					_ = c.Send(tPong, p)
					_ = c.Flush()
				case tEnd:
					var out [16]byte
					binary.BigEndian.PutUint64(out[:8], 5) // not what was sent
					binary.BigEndian.PutUint64(out[8:], uint64(time.Second))
					_ = c.Send(tResult, out[:])
					_ = c.Flush()
					return
				}
			}
		}, func(error) {})
	}()
	c, err := transport.Dial(context.Background(), l.Addr().String(), creds, transport.KindProbe)
	require.NoError(t, err)
	defer c.Close()
	_, err = Run(context.Background(), c, Options{Pings: 1, Duration: 50 * time.Millisecond})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "counted 5 bytes")
}

func TestDelayJitter(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		rtts          []time.Duration
		delay, jitter time.Duration
	}{
		{nil, 0, 0},
		{[]time.Duration{5 * ms}, 5 * ms, 0},
		{[]time.Duration{10 * ms, 10 * ms, 10 * ms}, 10 * ms, 0},
		{[]time.Duration{10 * ms, 20 * ms, 10 * ms, 20 * ms}, 15 * ms, 10 * ms},
		{[]time.Duration{1 * ms, 4 * ms, 7 * ms}, 4 * ms, 3 * ms},
	} {
		d, j := delayJitter(tc.rtts)
		assert.Equal(t, tc.delay, d, "%v", tc.rtts)
		assert.Equal(t, tc.jitter, j, "%v", tc.rtts)
	}
}

func TestEvaluation(t *testing.T) {
	good := Result{Delay: 5 * time.Millisecond, Mbps: 500}
	assert.Equal(t, "healthy", Evaluation(true, good, 0))
	assert.Equal(t, "failed", Evaluation(false, good, 0))
	lossy := good
	lossy.LossPercent = 2.5
	assert.Equal(t, "degraded", Evaluation(true, lossy, 0))
	slow := good
	slow.Delay = 150 * time.Millisecond
	assert.Equal(t, "degraded", Evaluation(true, slow, 0))
	capped := good
	capped.Mbps = 5
	assert.Equal(t, "degraded", Evaluation(true, capped, 0), "5 Mbit/s is too little for a migration")
	assert.Equal(t, "healthy", Evaluation(true, capped, 5), "unless the operator capped it at 5")
	for _, s := range []string{"healthy", "degraded", "failed"} {
		assert.True(t, len(s) >= 6 && len(s) <= 8, "%q fits evaluation_result's 6 to 8 characters", s)
	}
}
