//go:build linux

package filesync

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/agent/transport"
)

func (s *server) verify(tb testing.TB, src string, o SendOptions) Consistency {
	tb.Helper()
	o.Root = src
	c := s.dial(tb, transport.KindVerify)
	defer c.Close()
	res, err := Verify(context.Background(), c, o)
	require.NoError(tb, err)
	require.NoError(tb, s.result(tb))
	return res
}

func TestVerify(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	src, dst := t.TempDir(), t.TempDir()
	for i := range 300 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("v%d/f%03d", i%6, i)), randBytes(r, r.IntN(40000)), 0o644)
	}
	// A sparse file on the source, written densely on the target below.
	f, err := os.Create(filepath.Join(src, "sparse"))
	require.NoError(t, err)
	require.NoError(t, f.Truncate(5<<20))
	_, err = f.WriteAt([]byte("island"), 2<<20)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Link(filepath.Join(src, "v0/f000"), filepath.Join(src, "hardlink")))
	require.NoError(t, os.Symlink("v1", filepath.Join(src, "symlink")))
	writeFile(t, filepath.Join(src, "excluded/x"), []byte("x"), 0o644)
	srv := receiverAt(t, dst)
	opts := SendOptions{Excludes: []string{"/excluded"}}
	srv.pass(t, src, opts)

	res := srv.verify(t, src, opts)
	assert.Equal(t, Consistency{Dir: src, Total: 302}, res)

	// Same content but not sparse on the target: still identical.
	dense := make([]byte, 5<<20)
	copy(dense[2<<20:], "island")
	writeFile(t, filepath.Join(dst, "sparse"), dense, 0o644)
	// A target-only excluded path is not "extra".
	writeFile(t, filepath.Join(dst, "excluded/target-only"), []byte("t"), 0o644)
	assert.Equal(t, Consistency{Dir: src, Total: 302}, srv.verify(t, src, opts))

	// One byte changed, one file deleted, one added on the target.
	p := filepath.Join(dst, "v2/f002")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NotEmpty(t, b)
	b[len(b)/2] ^= 0x40
	require.NoError(t, os.WriteFile(p, b, 0o644))
	require.NoError(t, os.Remove(filepath.Join(dst, "v3/f003")))
	writeFile(t, filepath.Join(dst, "v4/added"), []byte("new"), 0o644)

	res = srv.verify(t, src, opts)
	assert.EqualValues(t, 302, res.Total)
	assert.EqualValues(t, 1, res.Different)
	assert.EqualValues(t, 1, res.TargetMissing)
	assert.EqualValues(t, 1, res.TargetExtra)
	assert.Equal(t, []string{"/v2/f002", "/v3/f003", "/v4/added"}, res.DifferentFiles)

	// A file replaced by a directory, and a symlink where a file was: both
	// differ, and nothing is read through the symlink.
	require.NoError(t, os.Remove(filepath.Join(dst, "v5/f005")))
	require.NoError(t, os.Mkdir(filepath.Join(dst, "v5/f005"), 0o755))
	require.NoError(t, os.Remove(filepath.Join(dst, "v0/f006")))
	require.NoError(t, os.Symlink(filepath.Join(src, "v0/f006"), filepath.Join(dst, "v0/f006")))
	res = srv.verify(t, src, opts)
	assert.EqualValues(t, 2, res.Different)
	assert.EqualValues(t, 2, res.TargetMissing, "a symlink is not followed: the file is missing")
	assert.Contains(t, res.DifferentFiles, "/v5/f005")
	assert.Contains(t, res.DifferentFiles, "/v0/f006")

	// The list is capped, in lexical order.
	for i := range 150 {
		writeFile(t, filepath.Join(dst, fmt.Sprintf("zz/extra%03d", i)), nil, 0o644)
	}
	res = srv.verify(t, src, opts)
	assert.EqualValues(t, 151, res.TargetExtra)
	assert.Len(t, res.DifferentFiles, maxListed)
	assert.IsIncreasing(t, res.DifferentFiles)
}

func TestVerifyHostileList(t *testing.T) {
	dst := t.TempDir()
	srv := receiverAt(t, dst)
	c := srv.dial(t, transport.KindVerify)
	defer c.Close()
	require.NoError(t, c.Send(tVBegin, appendProtected([]byte{protoVersion}, nil)))
	p := appendStr([]byte{1}, "../../etc/passwd")
	p = append(p, 0)
	p = be64(p, 0)
	require.NoError(t, c.Send(tVFiles, p))
	require.NoError(t, c.Flush())
	_, _, err := c.Recv()
	var re *transport.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Msg, "bad entry")
	c.Close()
	assert.Error(t, srv.result(t))
}
