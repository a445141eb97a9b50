package taskcert

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIssue(t *testing.T) {
	ca, caKey, err := New("smsflow-task-1")
	require.NoError(t, err)
	other, otherKey, err := New("smsflow-task-2")
	require.NoError(t, err)

	seen := map[string]Role{caKey: "task"}
	for _, role := range []Role{Management, Data} {
		cert, key, err := Issue(ca, caKey, role)
		require.NoError(t, err, role)
		_, err = tls.X509KeyPair([]byte(cert), []byte(key))
		require.NoError(t, err, "%s: a pair", role)
		require.NoError(t, Verify(ca, cert, time.Now()), "%s: issued by the task certificate", role)
		assert.Error(t, Verify(other, cert, time.Now()), "%s: not by another task's", role)
		_, prev := seen[key]
		assert.False(t, prev, "%s: a key of its own", role)
		seen[key] = role
		again, key2, err := Issue(ca, caKey, role)
		require.NoError(t, err)
		assert.Equal(t, key, key2, "%s: the same key at every read", role)
		assert.NotEqual(t, cert, again, "a new certificate (serial) each time")
		_, otherRoleKey, err := Issue(other, otherKey, role)
		require.NoError(t, err)
		assert.NotEqual(t, key, otherRoleKey, "%s: another task's key differs", role)
	}

	leaf, leafKey, err := Issue(ca, caKey, Data)
	require.NoError(t, err)
	_, _, err = Issue(leaf, leafKey, Management)
	assert.ErrorContains(t, err, "cannot sign", "an issued pair is no CA")
	_, _, err = Issue("not pem", caKey, Data)
	assert.Error(t, err)
	_, _, err = Issue(ca, "not pem", Data)
	assert.Error(t, err)
	assert.Error(t, Verify(ca, "not pem", time.Now()))
}
