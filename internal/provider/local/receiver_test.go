package local

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/agent/filesync"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/netport"
	"github.com/smsflow/smsflow/internal/provider"
)

// taskCreds makes a task certificate, key and passphrase as SSL_CONFIG does.
func taskCreds(t *testing.T) transport.Creds {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "task"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	return transport.Creds{CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})), Passphrase: "rx-passphrase"}
}

// blockTarget creates a target folder for a block-level task.
func blockTarget(t *testing.T, p *Provider, id string) (provider.Target, provider.ReceiverTask) {
	t.Helper()
	tg, err := p.Create(context.Background(), provider.Spec{DomainID: "d1", TaskID: id, Name: id, Type: "MIGRATE_BLOCK",
		Disks: []provider.Disk{{Name: "/dev/vda", Size: 1 << 20}}})
	require.NoError(t, err)
	return tg, provider.ReceiverTask{TaskID: id, DomainID: "d1", Type: "MIGRATE_BLOCK", Creds: taskCreds(t)}
}

// freeRange finds n consecutive free loopback ports.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base, err := netport.Free("127.0.0.1")
		require.NoError(t, err)
		if base+n > 65535 {
			continue
		}
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

// TestReceiverPortRange: receivers take ports of the configured range, a
// restarted worker rebinds the recorded port, and when that port is taken
// (or the range changed) the receiver stays in the range.
func TestReceiverPortRange(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	base := freeRange(t, 3)
	// One domain may take the whole range here (PerDomain), to see it full.
	p.Net = ReceiverNet{Listen: "127.0.0.1", Advertise: "localhost", PortMin: base, PortMax: base + 2, PerDomain: 3}
	t.Cleanup(p.StopReceivers)

	a, ta := blockTarget(t, p, "task-a")
	b, tb := blockTarget(t, p, "task-b")
	addrA, err := p.Receiver(ctx, a, ta)
	require.NoError(t, err)
	addrB, err := p.Receiver(ctx, b, tb)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(addrA, "localhost:"), "the agent is told the advertised host: %s", addrA)
	pa, pb := portOf(t, addrA), portOf(t, addrB)
	assert.NotEqual(t, pa, pb)
	for _, port := range []int{pa, pb} {
		assert.True(t, port >= base && port <= base+2, "port %d in %d-%d", port, base, base+2)
	}
	c, err := transport.Dial(ctx, addrA, ta.Creds, transport.KindProbe)
	require.NoError(t, err, "the advertised address reaches the receiver")
	c.Close()

	// A restarted worker listens where the agent already dials.
	p.StopReceivers()
	again, err := p.Receiver(ctx, a, ta)
	require.NoError(t, err)
	assert.Equal(t, addrA, again)
	againB, err := p.Receiver(ctx, b, tb)
	require.NoError(t, err)
	assert.Equal(t, addrB, againB)

	// The recorded port taken by someone else: another port, still in range.
	p.StopReceiver(a)
	squat, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(pa)))
	require.NoError(t, err)
	defer squat.Close()
	moved, err := p.Receiver(ctx, a, ta)
	require.NoError(t, err)
	pm := portOf(t, moved)
	assert.Equal(t, base+2, pm, "the one free port of the range (A's is taken, B holds its own)")

	// The range is full: a clear error, not a port outside it.
	c2, tc := blockTarget(t, p, "task-c")
	_, err = p.Receiver(ctx, c2, tc)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("no free port in %d-%d", base, base+2))

	// The operator moved the range: a recorded port outside it is left.
	p.StopReceivers()
	base2 := freeRange(t, 2)
	p.Net.PortMin, p.Net.PortMax = base2, base2+1
	addrB2, err := p.Receiver(ctx, b, tb)
	require.NoError(t, err)
	pb2 := portOf(t, addrB2)
	assert.True(t, pb2 >= base2 && pb2 <= base2+1, "port %d in the new range %d-%d", pb2, base2, base2+1)
}

// TestReceiversPerDomain: with a port range, one domain runs at most half
// of it (by default) at once; another domain still gets a port, and a
// stopped receiver frees its domain's turn. One tenant could take every
// port of the range.
func TestReceiversPerDomain(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	base := freeRange(t, 4)
	p.Net = ReceiverNet{Listen: "127.0.0.1", PortMin: base, PortMax: base + 3}
	t.Cleanup(p.StopReceivers)
	target := func(domain, id string) (provider.Target, provider.ReceiverTask) {
		tg, err := p.Create(ctx, provider.Spec{DomainID: domain, TaskID: id, Name: id, Type: "MIGRATE_BLOCK",
			Disks: []provider.Disk{{Name: "/dev/vda", Size: 1 << 20}}})
		require.NoError(t, err)
		return tg, provider.ReceiverTask{TaskID: id, DomainID: domain, Type: "MIGRATE_BLOCK", Creds: taskCreds(t)}
	}
	a, ta := target("d1", "task-a")
	b, tb := target("d1", "task-b")
	c, tc := target("d1", "task-c")
	o, to := target("d2", "task-o")
	_, err := p.Receiver(ctx, a, ta)
	require.NoError(t, err)
	_, err = p.Receiver(ctx, b, tb)
	require.NoError(t, err)
	_, err = p.Receiver(ctx, c, tc)
	require.Error(t, err, "a third receiver for d1 in a range of 4")
	assert.Contains(t, err.Error(), "already runs 2 receivers")
	_, err = p.Receiver(ctx, o, to)
	require.NoError(t, err, "another domain still gets a port")
	p.StopReceiver(a)
	_, err = p.Receiver(ctx, c, tc)
	assert.NoError(t, err, "a stopped receiver frees its domain's turn")
}

// TestReceiverFromAnotherNamespace: an agent on another host (here: in its
// own network namespace, linked by a veth pair) reaches a receiver that
// listens on every interface and is advertised by the host's address. The
// default, loopback, is not reachable from there (what issue 9 found).
func TestReceiverFromAnotherNamespace(t *testing.T) {
	hostIP, ns := vethNamespace(t)
	ctx := context.Background()

	p := newProvider(t)
	t.Cleanup(p.StopReceivers)
	p.Net = ReceiverNet{Listen: "0.0.0.0", Advertise: hostIP}
	tg, task := blockTarget(t, p, "remote")
	addr, err := p.Receiver(ctx, tg, task)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(addr, hostIP+":"), "target_addr names the advertised host: %s", addr)
	err = inNamespace(ns, func() error {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := transport.Dial(dctx, addr, task.Creds, transport.KindProbe)
		if err != nil {
			return err
		}
		return c.Close()
	})
	require.NoError(t, err, "the agent's namespace reaches the receiver")

	// The default: loopback only. Dialing its port on the host's address
	// from the agent's namespace is refused.
	lp := newProvider(t)
	t.Cleanup(lp.StopReceivers)
	lt, ltask := blockTarget(t, lp, "loopback")
	laddr, err := lp.Receiver(ctx, lt, ltask)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(laddr, "127.0.0.1:"), laddr)
	lport := strconv.Itoa(portOf(t, laddr))
	err = inNamespace(ns, func() error {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := transport.Dial(dctx, net.JoinHostPort(hostIP, lport), ltask.Creds, transport.KindProbe)
		if err == nil {
			c.Close()
		}
		return err
	})
	require.Error(t, err, "a loopback receiver is out of the agent's reach")
	assert.True(t, errors.Is(err, unix.ECONNREFUSED), "refused, not timed out: %v", err)
}

// vethNamespace creates a network namespace linked to this one by a veth
// pair (10.213.N.1 here, .2 there) and returns this side's address and
// the namespace's name. It skips the test where that is not permitted.
func vethNamespace(t *testing.T) (hostIP, ns string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (iproute2) to create a network namespace")
	}
	pid := os.Getpid()
	ns = fmt.Sprintf("smsrx-%d", pid)
	host, peer := fmt.Sprintf("rxh%d", pid%1000000), fmt.Sprintf("rxn%d", pid%1000000)
	subnet := fmt.Sprintf("10.213.%d", pid%250)
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := ip("netns", "add", ns); err != nil {
		t.Skipf("network namespaces not permitted here: %v", err)
	}
	t.Cleanup(func() {
		_ = ip("link", "del", host)
		_ = ip("netns", "del", ns)
	})
	for _, args := range [][]string{
		{"link", "add", host, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", ns},
		{"addr", "add", subnet + ".1/30", "dev", host},
		{"link", "set", host, "up"},
		{"-n", ns, "addr", "add", subnet + ".2/30", "dev", peer},
		{"-n", ns, "link", "set", peer, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	} {
		if err := ip(args...); err != nil {
			t.Skipf("cannot link a network namespace here: %v", err)
		}
	}
	return subnet + ".1", ns
}

// inNamespace runs fn on a thread that entered the named network namespace:
// the sockets fn opens live there. The thread is never handed back to the
// runtime (it ends with the goroutine), so nothing else runs in it.
func inNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// A file-level target holds no more than the task's target disks: a tree
// over their total size fails with "no space left on device" (SMS.0519 at
// the agent) before it is written.
func TestFileReceiverCapsTheTree(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	spec := provider.Spec{DomainID: "d", TaskID: "task-f", Name: "files", Type: "MIGRATE_FILE",
		Disks: []provider.Disk{{Name: "vda", Size: 3000}, {Name: "vdb", Size: 1000}}}
	tg, err := p.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, p.Format(ctx, tg, spec))
	creds := taskCreds(t)
	addr, err := p.Receiver(ctx, tg, provider.ReceiverTask{TaskID: "task-f", DomainID: "d", Type: "MIGRATE_FILE", Creds: creds})
	require.NoError(t, err)
	t.Cleanup(p.StopReceivers)

	src := t.TempDir()
	send := func() error {
		c, err := transport.Dial(ctx, addr, creds, transport.KindFile)
		require.NoError(t, err)
		defer c.Close()
		_, err = filesync.Send(ctx, c, filesync.SendOptions{Root: src})
		return err
	}
	require.NoError(t, os.WriteFile(filepath.Join(src, "a"), make([]byte, 3900), 0o644))
	require.NoError(t, send(), "4000 bytes of disks hold 3900")
	require.NoError(t, os.WriteFile(filepath.Join(src, "b"), make([]byte, 200), 0o644))
	err = send()
	var re *transport.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Msg, "no space left on device")
	_, err = os.Stat(filepath.Join(RootDir(tg.Location), "b"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
