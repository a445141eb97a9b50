// Package netport picks TCP ports for listeners that must be named before
// they are bound: the embedded Temporal server's services (each is given a
// port in its config and binds it later, while starting) and the servers the
// tests launch.
package netport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// floor is the lowest port Free hands out: below it live the well-known
// services a machine may start later (databases, proxies) by number.
const floor = 20000

// tries bounds the random draws before Free gives up.
const tries = 64

// given holds the ports this process has handed out: a port checked free
// is bound only later, so a second draw could land on it meanwhile (one
// Temporal start draws five).
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// rangeFile holds the kernel's ephemeral port range ("32768\t60999").
var rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Free returns a port on host that nothing listened on a moment ago, drawn at
// random between 20000 and the start of the kernel's ephemeral range, and
// never one it returned before in this process.
//
// Why not ":0": the kernel hands out such a port from its ephemeral range,
// the same pool every outgoing connection's local port and every other ":0"
// listener draws from. Between the check and the real bind (seconds, for a
// Temporal service) one of those took it often enough to fail CI: the
// service's listener failed and the server panicked. Below the range only a
// listener that names its port can take it, and the random draw makes two
// such pickers meeting on one port unlikely.
func Free(host string) (int, error) {
	lo, hi := floor, ephemeralStart()
	if hi-lo < 1000 {
		// An unusual kernel range leaves no room below it: take the
		// kernel's pick.
		return listenFree(host, 0)
	}
	return pick(host, lo, hi)
}

// pick draws a port in [lo, hi) that is free and was not handed out before.
func pick(host string, lo, hi int) (int, error) {
	given.Lock()
	defer given.Unlock()
	var last error
	for range tries {
		p := lo + rand.IntN(hi-lo)
		if given.ports[p] {
			continue
		}
		if _, err := listenFree(host, p); err != nil {
			last = err
			continue
		}
		given.ports[p] = true
		return p, nil
	}
	if last == nil {
		last = fmt.Errorf("every draw was a port handed out before")
	}
	return 0, fmt.Errorf("netport: no free port on %s between %d and %d: %w", host, lo, hi, last)
}

// Addr is Free as "host:port".
func Addr(host string) (string, error) {
	p, err := Free(host)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

func listenFree(host string, port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return 0, fmt.Errorf("netport: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralStart is the first port of the kernel's ephemeral range; 32768
// (Linux's default, below the BSDs' and macOS's 49152) where it cannot be read.
func ephemeralStart() int {
	const def = 32768
	raw, err := os.ReadFile(rangeFile)
	if err != nil {
		return def
	}
	f := strings.Fields(string(raw))
	if len(f) != 2 {
		return def
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 || n > 65535 {
		return def
	}
	return n
}
