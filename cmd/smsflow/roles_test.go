package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdminRoles: --role on user and aksk create (what the install
// instructions run for an agent), set-role, the lists showing roles, and
// the refusals: an unknown role, a key broader than its user.
func TestAdminRoles(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	env := map[string]string{"SMSFLOW_DATA_DIR": dir}
	adm := func(args ...string) string {
		t.Helper()
		out, errOut, err := run(t, ctx, env, append([]string{"admin"}, args...)...)
		require.NoError(t, err, errOut)
		return out
	}
	adm("domain", "create", "acme")
	var u map[string]string
	require.NoError(t, json.Unmarshal([]byte(adm("user", "create", "--domain", "acme", "alice", "--json")), &u))
	assert.Equal(t, "operator", u["role"], "users are operators unless told")
	require.NoError(t, json.Unmarshal([]byte(adm("user", "create", "--domain", "acme", "--role", "agent", "agent-web01", "--json")), &u))
	assert.Equal(t, "agent", u["role"])

	var k map[string]string
	require.NoError(t, json.Unmarshal([]byte(adm("aksk", "create", "--domain", "acme", "--user", "agent-web01", "--role", "agent", "--json")), &k))
	assert.Equal(t, "agent", k["role"])
	require.NoError(t, json.Unmarshal([]byte(adm("aksk", "create", "--domain", "acme", "--user", "alice", "--json")), &k))
	assert.Equal(t, "operator", k["role"], "a key has its user's role unless told")

	var users []struct{ Name, Role string }
	require.NoError(t, json.Unmarshal([]byte(adm("user", "list", "--domain", "acme", "--json")), &users))
	roles := map[string]string{}
	for _, x := range users {
		roles[x.Name] = x.Role
	}
	assert.Equal(t, map[string]string{"alice": "operator", "agent-web01": "agent"}, roles)
	list := adm("aksk", "list", "--domain", "acme")
	assert.Contains(t, list, "ROLE")
	assert.Contains(t, list, "agent")

	_, _, err := run(t, ctx, env, "admin", "aksk", "create", "--domain", "acme", "--user", "alice", "--role", "admin")
	assert.ErrorContains(t, err, "cannot hold a key of role admin")
	_, _, err = run(t, ctx, env, "admin", "user", "create", "--domain", "acme", "--role", "root", "x")
	assert.ErrorContains(t, err, "role")
	assert.Contains(t, adm("user", "set-role", "--domain", "acme", "--role", "admin", "alice"), "role=admin")
	adm("aksk", "create", "--domain", "acme", "--user", "alice", "--role", "admin")
	_, _, err = run(t, ctx, env, "admin", "user", "set-role", "--domain", "acme", "alice")
	assert.ErrorContains(t, err, "role", "--role is required")
}
