package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/testkit/diskimage"
	"github.com/smsflow/smsflow/internal/testkit/testutil"
)

// impairment is what a badLink does to the bytes it carries. This kernel
// has no netem, so loss is emulated above TCP: a lost segment shows as a
// stall (the retransmission timeout), a loss TCP does not survive as a
// connection closed under the endpoints.
type impairment struct {
	// delay is the one-way latency added to every chunk (a delay line: it
	// costs latency, not throughput).
	delay time.Duration
	// stallP is the chance a chunk is held back for stall.
	stallP float64
	stall  time.Duration
	// closeP is the chance a chunk kills its connection instead.
	closeP float64
}

// badLink is one namespace's path through the relay, the API link and the
// data link alike: its impairment, its cut and its live connections.
type badLink struct {
	mu        sync.Mutex
	imp       impairment
	cutUntil  time.Time
	blackhole bool
	rng       *rand.Rand
	conns     map[*relayConn]struct{}
	killed    int
}

func newBadLink(seed uint64) *badLink {
	return &badLink{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), conns: map[*relayConn]struct{}{}}
}

func (l *badLink) set(imp impairment) {
	l.mu.Lock()
	l.imp = imp
	l.mu.Unlock()
}

// flap closes every connection of the link at once, as a link that goes
// down and up again does.
func (l *badLink) flap() {
	l.mu.Lock()
	conns := make([]*relayConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.killed += len(conns)
	l.mu.Unlock()
	for _, c := range conns {
		c.kill()
	}
}

// cut takes the link down for d. Refused: the open connections are closed
// and new ones closed at once. Blackholed: nothing moves on the open
// connections and new ones are held silent, until the cut ends.
func (l *badLink) cut(d time.Duration, blackhole bool) {
	l.mu.Lock()
	l.cutUntil, l.blackhole = time.Now().Add(d), blackhole
	l.mu.Unlock()
	if !blackhole {
		l.flap()
	}
}

// down tells whether the link is cut now, and how.
func (l *badLink) down() (cut, blackhole bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.cutUntil), l.blackhole
}

// delay is the link's one-way latency now.
func (l *badLink) delay() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.imp.delay
}

// chunkFate draws what happens to one chunk.
func (l *badLink) chunkFate() (stall time.Duration, kill bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	imp := l.imp
	switch x := l.rng.Float64(); {
	case x < imp.closeP:
		l.killed++
		return 0, true
	case x < imp.closeP+imp.stallP:
		return imp.stall, false
	}
	return 0, false
}

// relayConn is one relayed connection: the client's side and the server's.
type relayConn struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

func (c *relayConn) kill() {
	c.once.Do(func() {
		close(c.done)
		c.client.Close()
		c.server.Close()
	})
}

// badRelay is the user-space router between the namespaces and the host:
// it listens on one address (the one --receiver-advertise names and the
// agents' --server dials) and forwards each port to its target, through the
// link of the namespace the connection comes from.
type badRelay struct {
	ip    string
	links map[string]*badLink // by the client's address; fixed before serving
	quit  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	lns   []net.Listener
}

// forward relays ip:port to target.
func (r *badRelay) forward(port int, target string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(r.ip, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.lns = append(r.lns, ln)
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.serve(c, target)
			}()
		}
	}()
	return nil
}

func (r *badRelay) serve(c net.Conn, target string) {
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	l := r.links[host]
	if l == nil {
		c.Close() // not one of the test's namespaces
		return
	}
	if cut, blackhole := l.down(); cut {
		if blackhole {
			r.holdSilent(l)
		}
		c.Close()
		return
	}
	s, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	rc := &relayConn{client: c, server: s, done: make(chan struct{})}
	l.mu.Lock()
	l.conns[rc] = struct{}{}
	l.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.pump(l, rc, c, s) }()
	go func() { defer wg.Done(); r.pump(l, rc, s, c) }()
	wg.Wait()
	l.mu.Lock()
	delete(l.conns, rc)
	l.mu.Unlock()
}

// holdSilent keeps a connection made during a blackhole open and silent
// until the cut ends, as a partition does to a handshake.
func (r *badRelay) holdSilent(l *badLink) {
	for {
		if cut, _ := l.down(); !cut {
			return
		}
		select {
		case <-r.quit:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type chunk struct {
	b  []byte
	at time.Time
}

// pump carries src to dst through a delay line: a reader stamps each chunk
// with when it may leave, a writer holds it until then and applies its
// fate. Any error or a killed chunk ends the whole connection.
func (r *badRelay) pump(l *badLink, rc *relayConn, src, dst net.Conn) {
	defer rc.kill()
	line := make(chan chunk, 64)
	go func() {
		defer close(line)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				delay := l.delay()
				select {
				case line <- chunk{buf[:n], time.Now().Add(delay)}:
				case <-rc.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	wait := func(d time.Duration) bool {
		if d <= 0 {
			return true
		}
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
			return true
		case <-rc.done:
			return false
		case <-r.quit:
			return false
		}
	}
	for ck := range line {
		if !wait(time.Until(ck.at)) {
			return
		}
		for {
			cut, _ := l.down() // a refused cut has killed the connection already
			if !cut {
				break
			}
			if !wait(100 * time.Millisecond) {
				return
			}
		}
		stall, kill := l.chunkFate()
		if kill {
			return
		}
		if !wait(stall) {
			return
		}
		if _, err := dst.Write(ck.b); err != nil {
			return
		}
	}
}

func (r *badRelay) close() {
	close(r.quit)
	r.mu.Lock()
	for _, ln := range r.lns {
		ln.Close()
	}
	r.mu.Unlock()
	for _, l := range r.links {
		l.flap()
	}
	r.wg.Wait()
}

// badNet is the test's network: n namespaces, each linked to the host by
// its own veth pair, and the relay's address on the host.
type badNet struct {
	ns      []string // namespace names
	nsIP    []string // the namespace's end of its veth
	hostIP  []string // the host's end
	relayIP string
}

// newBadNet creates the namespaces and veth pairs; it skips the test where
// that is not permitted. The relay's address is a /32 on the first host
// veth: every namespace reaches it through its default route to the host.
func newBadNet(t *testing.T, n int) *badNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("TestBadNetwork creates network namespaces: it needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("TestBadNetwork needs the ip command (iproute2) to create network namespaces")
	}
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	pid := os.Getpid()
	b := &badNet{relayIP: fmt.Sprintf("10.218.%d.1", pid%250)}
	for i := range n {
		ns := fmt.Sprintf("smsbn-%d-%d", pid, i)
		host, peer := fmt.Sprintf("bnh%dx%d", pid%1000000, i), fmt.Sprintf("bnn%dx%d", pid%1000000, i)
		subnet := fmt.Sprintf("10.217.%d", (pid%50)*5+i)
		if err := ip("netns", "add", ns); err != nil {
			t.Skipf("ip netns is not permitted here, TestBadNetwork needs it: %v", err)
		}
		t.Cleanup(func() {
			_ = ip("link", "del", host)
			_ = ip("netns", "del", ns)
		})
		steps := [][]string{
			{"link", "add", host, "type", "veth", "peer", "name", peer},
			{"link", "set", peer, "netns", ns},
			{"addr", "add", subnet + ".1/30", "dev", host},
			{"link", "set", host, "up"},
			{"-n", ns, "addr", "add", subnet + ".2/30", "dev", peer},
			{"-n", ns, "link", "set", peer, "up"},
			{"-n", ns, "link", "set", "lo", "up"},
			{"-n", ns, "route", "add", "default", "via", subnet + ".1"},
		}
		if i == 0 {
			steps = append(steps, []string{"addr", "add", b.relayIP + "/32", "dev", host})
		}
		for _, args := range steps {
			if err := ip(args...); err != nil {
				t.Skipf("cannot link a network namespace here, TestBadNetwork needs it: %v", err)
			}
		}
		b.ns, b.nsIP, b.hostIP = append(b.ns, ns), append(b.nsIP, subnet+".2"), append(b.hostIP, subnet+".1")
	}
	return b
}

// receiverPorts finds a range of n ports free on both the receivers' and
// the relay's addresses.
func receiverPorts(t *testing.T, hostIP, relayIP string, n int) int {
	t.Helper()
	free := func(ip string, p int) bool {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err != nil {
			return false
		}
		ln.Close()
		return true
	}
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
next:
	for range 50 {
		base := 20000 + r.IntN(2000)*8
		for p := base; p < base+n; p++ {
			if !free(hostIP, p) || !free(relayIP, p) {
				continue next
			}
		}
		return base
	}
	t.Fatal("no free port range for the receivers")
	return 0
}

// nsAgent starts a real sms-agent inside the namespace ns (ip netns exec),
// reaching the API at api, with a fresh 64 MiB image as /dev/vda.
func nsAgent(t *testing.T, s *server, ns, api, name string, seed uint64) (img string, a *realAgent, sourceID string) {
	t.Helper()
	img = filepath.Join(t.TempDir(), "vda.img")
	require.NoError(t, diskimage.Source(img, 64<<20, seed))
	ak, sk := s.agentKey(t)
	a = &realAgent{t: t, s: s, state: t.TempDir(), sk: sk}
	a.args = []string{"run", "--server", "http://" + api, "--ak", ak, "--project", s.creds.ProjectID,
		"--state-dir", a.state, "--poll-wait", "2s", "--progress-every", "500ms", "--log-format", "json",
		"--name", name, "--machine-id", name, "--disk-image", "/dev/vda=" + img, "--only-images"}
	a.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, agentBinary}, a.args...)...)
	a.cmd.Env = append(os.Environ(), "SMS_AGENT_SK="+a.sk)
	a.log = &testutil.Buffer{}
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	require.NoError(t, a.cmd.Start())
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("sms-agent %s log:\n%s", name, lastLines(a.log.String(), 60))
		}
	})
	return img, a, s.waitSource(t, name)
}

// logLine is one JSON log line: when, and its fields.
type logLine struct {
	at     time.Time
	fields map[string]any
}

// logLines are the JSON log lines with msg whose fields hold the given
// values.
func logLines(t *testing.T, logs, msg string, want map[string]string) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != msg {
			continue
		}
		match := true
		for k, v := range want {
			if fmt.Sprint(line[k]) != v {
				match = false
			}
		}
		if !match {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(line["time"]))
		require.NoError(t, err, sc.Text())
		out = append(out, logLine{ts, line})
	}
	return out
}

// connected reads the source's connected flag.
func (s *server) connected(id string) bool {
	var src struct {
		Connected bool `json:"connected"`
	}
	s.call("GET", "/v3/sources/"+id, nil, &src)
	return src.Connected
}

// partitionFor is the long cut of scenario (c): the three minutes of issue 9
// (the old dial gave up after two). -short scales it to 30 s.
func partitionFor() time.Duration {
	if testing.Short() {
		return 30 * time.Second
	}
	return 3 * time.Minute
}

// TestBadNetwork: `smsflow serve` and real `sms-agent`s, each agent in its
// own network namespace behind a veth pair, both its API link and its data
// link through a user-space relay that delays, loses (stalls and closes),
// flaps and cuts. Three tasks run at once, each on its own namespace:
//
//	(a) a lossy, delayed and flapping link during a full block copy and
//	    continuous sync, then `test`: (d) its final pass starts within
//	    10 s of the action;
//	(b) a cut of 3× --agent-timeout (5 s here) during the full copy;
//	(c) a partition (blackhole) of three minutes during continuous sync.
//
// Every task ends MIGRATE_SUCCESS with its target byte-identical, with no
// operator. The whole test takes about 3.5 minutes (-short: 2).
func TestBadNetwork(t *testing.T) {
	const agentTimeout = 5 * time.Second
	net3 := newBadNet(t, 3)
	base := receiverPorts(t, net3.hostIP[0], net3.relayIP, 8)
	relay := &badRelay{ip: net3.relayIP, links: map[string]*badLink{}, quit: make(chan struct{})}
	links := make([]*badLink, 3)
	for i := range links {
		links[i] = newBadLink(uint64(i + 1))
		relay.links[net3.nsIP[i]] = links[i]
	}
	s := newServer(t, "--agent-timeout", agentTimeout.String(), "--agent-step-timeout", "10m",
		"--receiver-listen", net3.hostIP[0], "--receiver-advertise", net3.relayIP,
		"--receiver-ports", fmt.Sprintf("%d-%d", base, base+7))
	// Registered after the server: closed before it stops.
	t.Cleanup(relay.close)
	_, apiPort, err := net.SplitHostPort(s.http)
	require.NoError(t, err)
	port, _ := strconv.Atoi(apiPort)
	require.NoError(t, relay.forward(port, s.http), "the API through the relay")
	for p := base; p < base+8; p++ {
		require.NoError(t, relay.forward(p, net.JoinHostPort(net3.hostIP[0], strconv.Itoa(p))), "the receivers through the relay")
	}
	api := net.JoinHostPort(net3.relayIP, apiPort)

	// One agent per namespace, each its own machine (one host's agents
	// would share /etc/machine-id, so one source).
	type agentRun struct {
		img string
		a   *realAgent
		src string
	}
	runs := make([]agentRun, 3)
	for i, name := range []string{"bn-lossy", "bn-cut", "bn-part"} {
		img, a, src := nsAgent(t, s, net3.ns[i], api, name, uint64(40+i))
		runs[i] = agentRun{img, a, src}
	}

	t.Run("group", func(t *testing.T) {
		// (a) and (d): lossy, delayed, flapping.
		t.Run("lossy", func(t *testing.T) {
			t.Parallel()
			sv := *s
			sv.t = t
			r, l := runs[0], links[0]
			l.set(impairment{delay: 20 * time.Millisecond, stallP: 0.03, stall: 200 * time.Millisecond, closeP: 0.001})
			stop := make(chan struct{})
			flapped := make(chan struct{})
			go func() {
				defer close(flapped)
				// The first flap comes early, so that even a copy that an idle
				// machine finishes in seconds loses its connections once; then
				// every 20 s.
				next := time.After(3 * time.Second)
				for {
					select {
					case <-stop:
						return
					case <-next:
						l.flap()
						next = time.After(20 * time.Second)
					}
				}
			}()
			defer func() { close(stop); <-flapped }()

			id := sv.localTask("bn-lossy", "MIGRATE_BLOCK", r.src, map[string]any{"syncing": true})
			tk := sv.waitState(id, "SYNCING", 4*time.Minute)
			target := filepath.Join(tk.TargetServer.Location, "disk-0.img")
			require.True(t, sameHead(t, r.img, target), "(a) after the full copy the target is the source")
			changeBlocks(t, r.img, 16, 7)
			require.Eventually(t, func() bool { return sameHead(t, r.img, target) }, 2*time.Minute, 500*time.Millisecond,
				"(a) a sync pass carries the change over the lossy link")

			// (d) The action; the final pass must start within seconds.
			changeBlocks(t, r.img, 16, 8)
			action := time.Now()
			sv.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "test"}, nil)
			sv.waitState(id, "MIGRATE_SUCCESS", 3*time.Minute)
			assert.True(t, sameHead(t, r.img, target), "(a) identical at cutover")
			// The final SYNC is the last one the workflow queued: the SYNC
			// command first handed out last. Its hand-out and the start of
			// its pass are measured from the action.
			first := map[string]time.Time{}
			var final string
			for _, h := range logLines(t, s.log.String(), "command handed out", map[string]string{"command": "SYNC", "task": id}) {
				cid := fmt.Sprint(h.fields["command_id"])
				if _, seen := first[cid]; !seen {
					first[cid] = h.at
					if final == "" || h.at.After(first[final]) {
						final = cid
					}
				}
			}
			require.NotEmpty(t, final, "the server logged the SYNCs it handed out")
			started := logLines(t, r.a.log.String(), "pass started", map[string]string{"command_id": final})
			require.NotEmpty(t, started, "the agent ran the final SYNC %s", final)
			handedIn, startedIn := first[final].Sub(action), started[0].at.Sub(action)
			t.Logf("(d) final SYNC %s handed out %s and started %s after the action", final, handedIn, startedIn)
			assert.Positive(t, handedIn, "the final SYNC is queued by the action")
			assert.Less(t, handedIn, 10*time.Second, "(d) the final SYNC is handed out within seconds")
			assert.Less(t, startedIn, 10*time.Second, "(d) the final pass starts within seconds, not after a redelivery")
			l.mu.Lock()
			t.Logf("(a) connections killed on the lossy link: %d", l.killed)
			assert.Positive(t, l.killed, "the link did lose connections")
			l.mu.Unlock()
		})

		// (b) cut longer than --agent-timeout during the copy.
		t.Run("cut", func(t *testing.T) {
			t.Parallel()
			sv := *s
			sv.t = t
			r, l := runs[1], links[1]
			// 40 Mbit/s: the copy lasts long enough to be cut midway.
			id := sv.localTask("bn-cut", "MIGRATE_BLOCK", r.src, map[string]any{"speed_limit": 40})
			sv.waitCopyProgress(t, id, 10)
			cutFor := 3 * agentTimeout
			l.cut(cutFor, false)
			require.Eventually(t, func() bool { return !sv.connected(r.src) }, cutFor, 250*time.Millisecond,
				"(b) the server sees the agent gone: the cut outlasts --agent-timeout")
			assert.NotEqual(t, "MIGRATE_SUCCESS", sv.task(id).State, "the copy could not end through the cut")
			tk := sv.waitState(id, "MIGRATE_SUCCESS", 4*time.Minute)
			target := filepath.Join(tk.TargetServer.Location, "disk-0.img")
			assert.True(t, sameHead(t, r.img, target), "(b) identical after the cut")
			// Connected is last seen within --agent-timeout (5 s here): a
			// poll that a loaded machine delays past it reads gone for a
			// moment, so the agent is back when it is seen again.
			assert.Eventually(t, func() bool { return sv.connected(r.src) }, 30*time.Second, 250*time.Millisecond,
				"(b) the agent is back")
			assert.Contains(t, r.a.log.String(), "unreachable", "the agent rode the cut out by dialing again")
		})

		// (c) a partition of three minutes during continuous sync.
		t.Run("partition", func(t *testing.T) {
			t.Parallel()
			sv := *s
			sv.t = t
			r, l := runs[2], links[2]
			id := sv.localTask("bn-part", "MIGRATE_BLOCK", r.src, map[string]any{"syncing": true})
			tk := sv.waitState(id, "SYNCING", 4*time.Minute)
			target := filepath.Join(tk.TargetServer.Location, "disk-0.img")
			require.True(t, sameHead(t, r.img, target), "(c) after the full copy the target is the source")

			cutFor := partitionFor()
			cutAt := time.Now()
			l.cut(cutFor, true)
			changeBlocks(t, r.img, 32, 9) // written while the source is cut off
			require.Eventually(t, func() bool { return !sv.connected(r.src) }, cutFor, 250*time.Millisecond,
				"(c) the server sees the agent gone")
			assert.False(t, sameHead(t, r.img, target), "nothing crossed the partition")
			time.Sleep(time.Until(cutAt.Add(cutFor))) // the partition itself, not a wait for a result
			require.Eventually(t, func() bool { return sameHead(t, r.img, target) }, 2*time.Minute, 500*time.Millisecond,
				"(c) after the partition a sync pass carries the change, no operator")
			assert.Equal(t, "SYNCING", sv.task(id).State, sv.task(id).ErrorJSON)
			changeBlocks(t, r.img, 16, 10)
			sv.call("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "test"}, nil)
			sv.waitState(id, "MIGRATE_SUCCESS", 3*time.Minute)
			assert.True(t, sameHead(t, r.img, target), "(c) identical at cutover")
		})
	})
}
