package netport

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFreeIsBelowTheEphemeralRange(t *testing.T) {
	hi := ephemeralStart()
	seen := map[int]bool{}
	for range 50 {
		p, err := Free("127.0.0.1")
		require.NoError(t, err)
		if hi-floor >= 1000 {
			require.GreaterOrEqual(t, p, floor)
			require.Less(t, p, hi, "a port from the ephemeral range can be taken by any outgoing connection")
		}
		seen[p] = true
		// The port is really free: it binds.
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		require.NoError(t, err)
		require.NoError(t, l.Close())
	}
	require.Len(t, seen, 50, "a port handed out is never handed out again")
}

// TestPickSkipsHeldAndGivenPorts: a range whose only port is held by a
// listener, or was handed out before, yields no port; its free neighbour
// is handed out once.
func TestPickSkipsHeldAndGivenPorts(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	_, err = pick("127.0.0.1", port, port+1)
	require.Error(t, err, "a port in use is not handed out")

	free, err := Free("127.0.0.1")
	require.NoError(t, err)
	_, err = pick("127.0.0.1", free, free+1)
	require.Error(t, err, "a port handed out before is not handed out again")

	given.Lock()
	delete(given.ports, free) // as if never handed out
	given.Unlock()
	p, err := pick("127.0.0.1", free, free+1)
	require.NoError(t, err)
	require.Equal(t, free, p)
}

func TestEphemeralStart(t *testing.T) {
	old := rangeFile
	t.Cleanup(func() { rangeFile = old })
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          int
	}{
		{"linux default", "32768\t60999\n", 32768},
		{"narrowed", "40000 50000", 40000},
		{"garbage", "x y", 32768},
		{"one field", "1024", 32768},
		{"out of range", "70000 80000", 32768},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rangeFile = filepath.Join(dir, tc.name)
			require.NoError(t, os.WriteFile(rangeFile, []byte(tc.content), 0o600))
			require.Equal(t, tc.want, ephemeralStart())
		})
	}
	rangeFile = filepath.Join(dir, "missing")
	require.Equal(t, 32768, ephemeralStart())
}

func TestFreeFallsBackWhenNoRoom(t *testing.T) {
	old := rangeFile
	t.Cleanup(func() { rangeFile = old })
	rangeFile = filepath.Join(t.TempDir(), "range")
	require.NoError(t, os.WriteFile(rangeFile, []byte("20500 60999"), 0o600))
	p, err := Free("127.0.0.1")
	require.NoError(t, err)
	require.NotZero(t, p)
}
