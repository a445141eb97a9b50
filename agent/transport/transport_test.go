package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/agent/internal/testcert"
)

func creds(t testing.TB) Creds {
	cert, key := testcert.New("task-1")
	return Creds{CertPEM: cert, KeyPEM: key, Passphrase: "s3cret-passphrase"}
}

// serve runs a listener whose handler echoes frames back, and reports
// refusals.
func serve(t *testing.T, c Creds) (string, chan error) {
	t.Helper()
	l, err := Listen("127.0.0.1:0", c)
	require.NoError(t, err)
	rejected := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		_ = l.Serve(ctx, func(conn *Conn) {
			defer conn.Close()
			for {
				typ, p, err := conn.Recv()
				if err != nil {
					return
				}
				if typ == 9 {
					conn.SendError("no such thing")
					return
				}
				if conn.Send(typ, p) != nil || conn.Flush() != nil {
					return
				}
			}
		}, func(err error) { rejected <- err })
	}()
	return l.Addr().String(), rejected
}

func TestRoundTrip(t *testing.T) {
	c := creds(t)
	addr, _ := serve(t, c)
	conn, err := Dial(context.Background(), addr, c, KindBlock)
	require.NoError(t, err)
	defer conn.Close()
	big := bytes.Repeat([]byte{0xAB}, MaxPayload)
	for _, p := range [][]byte{nil, []byte("hello"), big} {
		require.NoError(t, conn.Send(7, p))
		require.NoError(t, conn.Flush())
		typ, got, err := conn.Recv()
		require.NoError(t, err)
		assert.Equal(t, uint8(7), typ)
		assert.Equal(t, len(p), len(got))
		assert.True(t, bytes.Equal(p, got))
	}
	assert.Greater(t, conn.BytesSent(), int64(MaxPayload), "the counter sees the wire, TLS records included")
	require.Error(t, conn.Send(7, make([]byte, MaxPayload+1)), "no frame over the limit is sent")

	require.NoError(t, conn.Send(9, nil))
	require.NoError(t, conn.Flush())
	_, _, err = conn.Recv()
	var re *RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "no such thing", re.Msg)
}

func TestRefusals(t *testing.T) {
	c := creds(t)
	addr, rejected := serve(t, c)

	wrongPass := c
	wrongPass.Passphrase = "guess"
	_, err := Dial(context.Background(), addr, wrongPass, KindBlock)
	assert.ErrorIs(t, err, ErrAuth)
	assert.ErrorIs(t, <-rejected, ErrAuth)

	otherCert, otherKey := testcert.New("task-1") // same name, another key
	_, err = Dial(context.Background(), addr, Creds{CertPEM: otherCert, KeyPEM: otherKey, Passphrase: c.Passphrase}, KindBlock)
	require.Error(t, err, "a certificate other than the task's is refused")
	assert.Contains(t, (<-rejected).Error(), "TLS handshake")

	for _, k := range []Kind{0, KindProbe + 1, 42} {
		_, err = Dial(context.Background(), addr, c, k)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "unknown protocol")
		<-rejected
	}

	// A receiver with another task's certificate is refused by the agent.
	other := creds(t)
	otherAddr, _ := serve(t, other)
	_, err = Dial(context.Background(), otherAddr, c, KindBlock)
	require.Error(t, err)

	// The listener keeps serving the right agent after all that.
	conn, err := Dial(context.Background(), addr, c, KindFile)
	require.NoError(t, err)
	conn.Close()

	_, err = Listen("127.0.0.1:0", Creds{CertPEM: "junk", KeyPEM: "junk", Passphrase: "x"})
	assert.Error(t, err)
	_, err = Listen("127.0.0.1:0", Creds{CertPEM: c.CertPEM, KeyPEM: c.KeyPEM})
	assert.Error(t, err, "a passphrase is required")
}

type slowLimiter struct{ waited int }

func (l *slowLimiter) WaitN(_ context.Context, n int) error { l.waited += n; return nil }

func TestLimiterSeesEveryByte(t *testing.T) {
	c := creds(t)
	addr, _ := serve(t, c)
	conn, err := Dial(context.Background(), addr, c, KindBlock)
	require.NoError(t, err)
	defer conn.Close()
	l := &slowLimiter{}
	conn.SetLimiter(context.Background(), l)
	require.NoError(t, conn.Send(1, make([]byte, 1000)))
	require.NoError(t, conn.Send(1, make([]byte, 24)))
	assert.Equal(t, 1024+2*5, l.waited)
}

func TestReadFrameRefusesHugeAndTruncated(t *testing.T) {
	var buf []byte
	hdr := make([]byte, 5)
	_, _, err := readFrame(bytes.NewReader([]byte{1, 0xFF, 0xFF, 0xFF, 0xFF}), hdr, &buf, MaxPayload)
	require.Error(t, err)
	assert.Nil(t, buf, "nothing allocated for a lying header")
	_, _, err = readFrame(bytes.NewReader([]byte{1, 0, 0, 0, 10, 'a', 'b'}), hdr, &buf, MaxPayload)
	assert.True(t, errors.Is(err, errUnexpectedEOF()), "%v", err)
	_, _, err = readFrame(strings.NewReader(""), hdr, &buf, MaxPayload)
	assert.Error(t, err)
}

func errUnexpectedEOF() error { return io.ErrUnexpectedEOF }

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0xFF, 0, 0, 0, 0})
	f.Add([]byte{1, 0x7F, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf []byte
		hdr := make([]byte, 5)
		r := bytes.NewReader(data)
		for {
			typ, p, err := readFrame(r, hdr, &buf, MaxPayload)
			if err != nil {
				return
			}
			_ = typ
			if len(p) > MaxPayload {
				t.Fatalf("payload of %d", len(p))
			}
		}
	})
}

func TestDialTimesOutOnASilentPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// Port 9 (discard) is closed here; a refused dial fails fast either way.
	_, err := Dial(ctx, "127.0.0.1:9", creds(t), KindBlock)
	assert.Error(t, err)
}
