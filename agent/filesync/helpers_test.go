//go:build linux

package filesync

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/smsflow/smsflow/agent/internal/testcert"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/testkit/treecmp"
)

var (
	credsOnce sync.Once
	theCreds  transport.Creds
)

func testCreds() transport.Creds {
	credsOnce.Do(func() {
		cert, key := testcert.New("task-fs")
		theCreds = transport.Creds{CertPEM: cert, KeyPEM: key, Passphrase: "file-sync-pass"}
	})
	return theCreds
}

// server is a receiver listening on loopback; each connection's outcome is
// reported on errs.
type server struct {
	addr string
	errs chan error
}

// serve runs handle for every connection until the test ends.
func serve(tb testing.TB, handle func(ctx context.Context, c *transport.Conn) error) *server {
	tb.Helper()
	l, err := transport.Listen("127.0.0.1:0", testCreds())
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{addr: l.Addr().String(), errs: make(chan error, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Serve(ctx, func(c *transport.Conn) {
			defer c.Close()
			// As the receivers do: the pass ends when a newer data
			// connection of the task replaces this one.
			s.errs <- handle(c.Context(), c)
		}, nil)
	}()
	tb.Cleanup(func() { cancel(); <-done })
	return s
}

func receiverAt(tb testing.TB, dst string) *server {
	return serve(tb, func(ctx context.Context, c *transport.Conn) error {
		switch c.Kind() {
		case transport.KindFile:
			return Receive(ctx, c, dst)
		case transport.KindVerify:
			return ServeVerify(ctx, c, dst)
		}
		return fmt.Errorf("kind %d", c.Kind())
	})
}

func (s *server) dial(tb testing.TB, kind transport.Kind) *transport.Conn {
	tb.Helper()
	c, err := transport.Dial(context.Background(), s.addr, testCreds(), kind)
	require.NoError(tb, err)
	return c
}

func (s *server) result(tb testing.TB) error {
	tb.Helper()
	select {
	case err := <-s.errs:
		return err
	case <-time.After(20 * time.Second):
		tb.Fatal("receiver did not finish")
		return nil
	}
}

// pass runs one full pass from src into the server's tree.
func (s *server) pass(tb testing.TB, src string, o SendOptions) Stats {
	tb.Helper()
	o.Root = src
	c := s.dial(tb, transport.KindFile)
	defer c.Close()
	t0 := time.Now()
	st, err := Send(context.Background(), c, o)
	require.NoError(tb, err)
	require.NoError(tb, s.result(tb))
	tb.Logf("pass %s: %v %+v", src, time.Since(t0), st)
	return st
}

// snapshot describes every entry under root (relative paths, root is ".").
func snapshot(tb testing.TB, root string) map[string]treecmp.Node {
	tb.Helper()
	m, err := treecmp.Snapshot(root)
	require.NoError(tb, err)
	return m
}

// requireSameTree fails unless dst mirrors src: entries, types, content,
// modes, owners, mtimes, symlink targets, special files, and hard links
// sharing an inode exactly where the source's do.
func requireSameTree(tb testing.TB, src, dst string) {
	tb.Helper()
	problems := treecmp.Diff(snapshot(tb, src), snapshot(tb, dst))
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("… and %d more", len(problems)-20))
	}
	require.Empty(tb, problems, "trees differ")
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// textBytes is compressible content.
func textBytes(r *rand.Rand, n int) []byte {
	words := []string{"alpha ", "beta ", "gamma ", "delta\n", "server ", "migration ", "block ", "file\n"}
	var buf bytes.Buffer
	for buf.Len() < n {
		buf.WriteString(words[r.IntN(len(words))])
	}
	return buf.Bytes()[:n]
}

func writeFile(tb testing.TB, p string, data []byte, mode os.FileMode) {
	tb.Helper()
	require.NoError(tb, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(tb, os.WriteFile(p, data, mode))
	require.NoError(tb, os.Chmod(p, mode))
}

func setMtime(tb testing.TB, p string, ns int64) {
	tb.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(ns), unix.NsecToTimespec(ns)}
	require.NoError(tb, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
}

// touchTree gives every entry a distinct mtime (ns precision), directories
// last so their times stick.
func touchTree(tb testing.TB, root string, r *rand.Rand) {
	tb.Helper()
	var dirs []string
	base := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	require.NoError(tb, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		setMtime(tb, p, base+r.Int64N(1e17))
		return nil
	}))
	for i := len(dirs) - 1; i >= 0; i-- {
		setMtime(tb, dirs[i], base+r.Int64N(1e17))
	}
}

func isRoot() bool { return os.Geteuid() == 0 }

func allocated(tb testing.TB, p string) int64 {
	var st syscall.Stat_t
	require.NoError(tb, syscall.Stat(p, &st))
	return st.Blocks * 512
}

// tempNames lists leftovers of the receiver's temporary files.
func tempNames(tb testing.TB, root string) []string {
	var out []string
	require.NoError(tb, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			out = append(out, p)
		}
		return nil
	}))
	return out
}
