package local

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/agent/filesync"
	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/provider"
)

func testCreds(t *testing.T) transport.Creds {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "task"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return transport.Creds{CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), Passphrase: "pass"}
}

// A file-level target holds no more than the task's target disks: a tree
// over their total size fails with "no space left on device" (SMS.0519 at
// the agent) before it is written.
func TestFileReceiverCapsTheTree(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	spec := provider.Spec{TaskID: "task-f", Name: "files", Type: "MIGRATE_FILE",
		Disks: []provider.Disk{{Name: "vda", Size: 3000}, {Name: "vdb", Size: 1000}}}
	tg, err := p.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, p.Format(ctx, tg, spec))
	creds := testCreds(t)
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
