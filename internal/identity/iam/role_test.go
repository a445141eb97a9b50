package iam_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/signer"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/testkit/testutil"
)

func TestParseRoleAndCovers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want iam.Role
		ok   bool
	}{
		{"admin", iam.RoleAdmin, true}, {" Operator ", iam.RoleOperator, true}, {"VIEWER", iam.RoleViewer, true},
		{"agent", iam.RoleAgent, true}, {"", "", false}, {"root", "", false},
	} {
		got, err := iam.ParseRole(tc.in)
		assert.Equal(t, tc.ok, err == nil, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	// holder → the key roles it may hand down.
	covers := map[iam.Role][]iam.Role{
		iam.RoleAdmin:    iam.Roles,
		iam.RoleOperator: {iam.RoleOperator, iam.RoleViewer, iam.RoleAgent},
		iam.RoleViewer:   {iam.RoleViewer},
		iam.RoleAgent:    {iam.RoleAgent},
		"":               nil,
	}
	for holder, ok := range covers {
		for _, r := range iam.Roles {
			assert.Equal(t, contains(ok, r), holder.Covers(r), "%q covers %q", holder, r)
		}
	}
}

func contains(rs []iam.Role, r iam.Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// TestPrincipalRoles: a token carries its user's role, a signature its
// key's capped by its user's; the bootstrap admin is admin; a key's role
// must be one its user covers; a user's new role reaches its credentials.
func TestPrincipalRoles(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		svc := newService(t, s, &testutil.Buffer{}, time.Now)
		const adminPW = "admin-password-1"
		_, err := svc.Bootstrap(ctx, t.TempDir(), func(k string) string {
			return map[string]string{"SMSFLOW_ADMIN_PASSWORD": adminPW}[k]
		})
		require.NoError(t, err)

		signed := func(ak, sk string) iam.Principal {
			req, err := http.NewRequest("GET", "http://smsflow/v3/sources", strings.NewReader(""))
			require.NoError(t, err)
			require.NoError(t, signer.Sign(req, nil, ak, sk, time.Now()))
			p, err := svc.AuthenticateSigned(ctx, req, nil)
			require.NoError(t, err)
			return p
		}
		it, err := svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "admin", Password: adminPW})
		require.NoError(t, err)
		assert.Equal(t, iam.RoleAdmin, it.Principal.Role)

		_, pw, err := svc.CreateUser(ctx, "smsflow", "ops", "")
		require.NoError(t, err)
		it, err = svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "ops", Password: pw})
		require.NoError(t, err)
		assert.Equal(t, iam.RoleOperator, it.Principal.Role, "CreateUser makes operators")
		p, err := svc.AuthenticateToken(ctx, it.Token)
		require.NoError(t, err)
		assert.Equal(t, iam.RoleOperator, p.Role)

		k, err := svc.CreateAccessKey(ctx, "smsflow", "ops", "")
		require.NoError(t, err)
		assert.Equal(t, iam.RoleOperator, k.Role, "a key defaults to its user's role")
		_, err = svc.CreateAccessKeyRole(ctx, "smsflow", "ops", "", iam.RoleAdmin)
		require.Error(t, err, "an operator cannot hold an admin key")
		vk, err := svc.CreateAccessKeyRole(ctx, "smsflow", "ops", "", iam.RoleViewer)
		require.NoError(t, err)
		assert.Equal(t, iam.RoleViewer, signed(vk.AK, vk.SK).Role)
		assert.Equal(t, iam.RoleOperator, signed(k.AK, k.SK).Role)

		// Demoted: the token reads the new role, the operator key acts as
		// a viewer (SetUserRole empties the caches).
		require.NoError(t, svc.SetUserRole(ctx, "smsflow", "ops", iam.RoleViewer))
		p, err = svc.AuthenticateToken(ctx, it.Token)
		require.NoError(t, err)
		assert.Equal(t, iam.RoleViewer, p.Role)
		assert.Equal(t, iam.RoleViewer, signed(k.AK, k.SK).Role)
		// An agent key of a user made viewer acts with no role at all.
		require.NoError(t, svc.SetUserRole(ctx, "smsflow", "ops", iam.RoleOperator))
		ak, err := svc.CreateAccessKeyRole(ctx, "smsflow", "ops", "", iam.RoleAgent)
		require.NoError(t, err)
		assert.Equal(t, iam.RoleAgent, signed(ak.AK, ak.SK).Role)
		require.NoError(t, svc.SetUserRole(ctx, "smsflow", "ops", iam.RoleViewer))
		assert.Equal(t, iam.Role(""), signed(ak.AK, ak.SK).Role)

		require.Error(t, svc.SetUserRole(ctx, "smsflow", "ops", "root"))
		_, _, err = svc.CreateUserRole(ctx, "smsflow", "x", "", "root")
		require.Error(t, err)

		// An agent user's right password: ErrAgentPassword, not a token.
		_, pw, err = svc.CreateUserRole(ctx, "smsflow", "agent-1", "", iam.RoleAgent)
		require.NoError(t, err)
		_, err = svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "agent-1", Password: pw})
		require.ErrorIs(t, err, iam.ErrAgentPassword)
		_, err = svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "agent-1", Password: "wrong-one"})
		require.ErrorIs(t, err, iam.ErrBadCredentials)
	})
}
