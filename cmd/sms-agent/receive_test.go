package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/agent/blocksync"
	"github.com/smsflow/smsflow/agent/filesync"
	"github.com/smsflow/smsflow/agent/netcheck"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/netport"
)

// taskCreds writes a task's certificate, key and passphrase files, as an
// operator would from the certkey and passphrase endpoints.
func taskCreds(t *testing.T, dir string) (transport.Creds, []string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "task"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"task"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	c := transport.Creds{CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), Passphrase: "open sesame"}
	files := []string{filepath.Join(dir, "task.crt"), filepath.Join(dir, "task.key"), filepath.Join(dir, "task.pass")}
	for i, v := range []string{c.CertPEM, c.KeyPEM, c.Passphrase + "\n"} {
		require.NoError(t, os.WriteFile(files[i], []byte(v), 0o600))
	}
	return c, []string{"--cert", files[0], "--key", files[1], "--passphrase-file", files[2]}
}

func freeAddr(t *testing.T) string {
	addr, err := netport.Addr("127.0.0.1")
	require.NoError(t, err)
	return addr
}

// startReceive runs `sms-agent receive` until the test ends.
func startReceive(t *testing.T, args ...string) string {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runReceiver(ctx, append([]string{"--listen", addr, "--log-level", "warn"}, args...), io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	return addr
}

// `sms-agent receive --disk` takes a block copy from the task's agent
// only, answers its verification and a network check.
func TestReceiveBlock(t *testing.T) {
	dir := t.TempDir()
	creds, credArgs := taskCreds(t, dir)
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	data := bytes.Repeat([]byte("a disk of text "), 300000) // ~4.3 MiB
	copy(data[1<<20:], make([]byte, 1<<20))                 // and a zero run
	require.NoError(t, os.WriteFile(src, data, 0o600))
	require.NoError(t, os.WriteFile(dst, nil, 0o600))
	require.NoError(t, os.Truncate(dst, 8<<20))
	addr := startReceive(t, append(credArgs, "--disk", dst)...)

	disks := []blocksync.Disk{{Name: "/dev/vda", Path: src, Size: int64(len(data))}}
	c, err := transport.Dial(context.Background(), addr, creds, transport.KindBlock)
	require.NoError(t, err)
	_, err = blocksync.Send(context.Background(), c, blocksync.Options{Disks: disks, StateDir: filepath.Join(dir, "state")})
	c.Close()
	require.NoError(t, err)
	got, err := os.ReadFile(dst)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got[:len(data)]), "the target disk holds the source")

	vc, err := transport.Dial(context.Background(), addr, creds, transport.KindVerify)
	require.NoError(t, err)
	checks, err := blocksync.Verify(context.Background(), vc, disks, 0)
	vc.Close()
	require.NoError(t, err)
	require.Len(t, checks, 1)
	assert.Zero(t, checks[0].Different)

	pc, err := transport.Dial(context.Background(), addr, creds, transport.KindProbe)
	require.NoError(t, err)
	res, err := netcheck.Run(context.Background(), pc, netcheck.Options{Pings: 2, Duration: 50 * time.Millisecond})
	pc.Close()
	require.NoError(t, err)
	assert.Positive(t, res.Mbps)

	// A file-level pass to a block receiver is refused; so is a stranger.
	fc, err := transport.Dial(context.Background(), addr, creds, transport.KindFile)
	require.NoError(t, err)
	_, err = filesync.Send(context.Background(), fc, filesync.SendOptions{Root: dir})
	fc.Close()
	require.Error(t, err)
	wrong := creds
	wrong.Passphrase = "guess"
	_, err = transport.Dial(context.Background(), addr, wrong, transport.KindBlock)
	assert.ErrorIs(t, err, transport.ErrAuth)
}

// `sms-agent receive --root` takes a file-level pass.
func TestReceiveFiles(t *testing.T) {
	dir := t.TempDir()
	creds, credArgs := taskCreds(t, dir)
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("web-01\n"), 0o644))
	require.NoError(t, os.Symlink("etc/hostname", filepath.Join(src, "name")))
	require.NoError(t, os.Mkdir(dst, 0o755))
	addr := startReceive(t, append(credArgs, "--root", dst)...)

	c, err := transport.Dial(context.Background(), addr, creds, transport.KindFile)
	require.NoError(t, err)
	st, err := filesync.Send(context.Background(), c, filesync.SendOptions{Root: src})
	c.Close()
	require.NoError(t, err)
	assert.EqualValues(t, 1, st.FilesSent)
	b, err := os.ReadFile(filepath.Join(dst, "etc", "hostname"))
	require.NoError(t, err)
	assert.Equal(t, "web-01\n", string(b))
	link, err := os.Readlink(filepath.Join(dst, "name"))
	require.NoError(t, err)
	assert.Equal(t, "etc/hostname", link)
}

// --max-bytes caps a file-level tree: the agent hears "no space left on
// device" (SMS.0519).
func TestReceiveFilesSizeCap(t *testing.T) {
	dir := t.TempDir()
	creds, credArgs := taskCreds(t, dir)
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	require.NoError(t, os.MkdirAll(src, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "big"), make([]byte, 4096), 0o644))
	require.NoError(t, os.Mkdir(dst, 0o755))
	addr := startReceive(t, append(credArgs, "--root", dst, "--max-bytes", "4000")...)

	c, err := transport.Dial(context.Background(), addr, creds, transport.KindFile)
	require.NoError(t, err)
	_, err = filesync.Send(context.Background(), c, filesync.SendOptions{Root: src})
	c.Close()
	var re *transport.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Msg, "no space left on device")
	_, err = os.Stat(filepath.Join(dst, "big"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestReceiveFlags(t *testing.T) {
	dir := t.TempDir()
	_, credArgs := taskCreds(t, dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--disk", "x"}, "--cert, --key and --passphrase-file are required"},
		{credArgs, "give --disk (block level) or --root (file level)"},
		{append(credArgs, "--disk", "x", "--root", "y"), "give --disk (block level) or --root (file level)"},
		{append(credArgs, "--root", dir, "--max-conns", "0"), "must be positive"},
		{append(credArgs, "--root", dir, "--max-bytes", "-1"), "must be positive"},
		{[]string{"--cert", filepath.Join(dir, "nope"), "--key", "k", "--passphrase-file", "p", "--root", dir}, "nope"},
	} {
		err := runReceiver(context.Background(), tc.args, io.Discard)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want)
	}
}
