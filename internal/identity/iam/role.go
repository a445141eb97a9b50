package iam

import (
	"fmt"
	"strings"
)

// Role is what a user or an access key may do. The API's route table
// (web) says which roles each route admits; iam only carries the role from
// the credential to the principal.
type Role string

// The roles. Admin and operator call every SMS operation; admin alone
// opens the Temporal UI (and is the role every user and key had before
// roles existed). Viewer reads, secrets excepted. Agent is a source
// server's: it registers its machine and makes the agent-facing calls of
// that one source.
const (
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleViewer   Role = "viewer"
	RoleAgent    Role = "agent"
)

// Roles lists every role, broadest first.
var Roles = []Role{RoleAdmin, RoleOperator, RoleViewer, RoleAgent}

// ParseRole reads a role name as the CLI takes it (any case).
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	for _, x := range Roles {
		if r == x {
			return r, nil
		}
	}
	return "", fmt.Errorf("role %q: one of admin, operator, viewer, agent", s)
}

// Covers tells whether a holder of r may hand its power down as other: a
// user's access keys have a role the user's covers. Admin covers every
// role, operator covers all but admin, viewer and agent only themselves.
func (r Role) Covers(other Role) bool {
	switch r {
	case RoleAdmin:
		return true
	case RoleOperator:
		return other != RoleAdmin
	}
	return r == other && r != ""
}

// effectiveRole is the role a key acts with: its own, when its user's role
// still covers it (a user demoted after the key was made drags the key
// down with it), else the user's when the key's covers that, else none.
func effectiveRole(user, key Role) Role {
	switch {
	case user.Covers(key):
		return key
	case key.Covers(user):
		return user
	}
	return ""
}
