package iam

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/store"
)

// PasswordAuth is the password method of an IAM token request (§3.2): a user
// named within a domain, and the scope asked for (a domain or a project; an
// empty scope means the user's domain and its first project).
type PasswordAuth struct {
	DomainName string
	DomainID   string
	UserName   string
	Password   string

	ScopeDomainName  string
	ScopeDomainID    string
	ScopeProjectID   string
	ScopeProjectName string

	// ClientAddr is the caller's address, for the per-address throttle and
	// the log of failures (empty: not throttled by address).
	ClientAddr string
}

// IssuedToken is a fresh token: the secret goes to X-Subject-Token, the rest
// to the JSON body.
type IssuedToken struct {
	Token     string
	IssuedAt  time.Time
	ExpiresAt time.Time
	Principal Principal
}

// IssueToken checks a password and issues a token scoped to a project of the
// user's domain. Every failure is ErrBadCredentials, so a caller cannot tell
// an unknown user from a wrong password. Sign-ins are throttled (see
// LoginThrottle): a user or address with too many recent failures gets a
// *ThrottledError before any password is checked, and a sign-in that waits
// too long for a password check gets ErrBusy. Each failure is logged with the
// domain, user and address as sent (never the password).
func (s *Service) IssueToken(ctx context.Context, a PasswordAuth) (*IssuedToken, error) {
	dom := a.DomainID
	if dom == "" {
		dom = a.DomainName
	}
	if dom == "" || a.UserName == "" || a.Password == "" {
		return nil, ErrBadCredentials
	}
	// The lookups come first so that the user's counter is keyed by its
	// domain's id whether the caller named the domain by id or by name.
	d, err := s.store.Domain(ctx, dom)
	switch {
	case errors.Is(err, store.ErrNotFound):
		d = nil
	case err != nil:
		return nil, fmt.Errorf("iam: find domain: %w", err)
	}
	// hash is the password check, the costly part, under the guard's cap.
	// Unknown domains and users pay for the dummy hash: the same cost as a
	// real check, so timing does not tell them apart.
	hash := dummyHash
	var u *store.User
	domKey := dom
	if d != nil {
		domKey = d.ID
		u, err = s.store.UserByName(ctx, d.ID, a.UserName)
		switch {
		case errors.Is(err, store.ErrNotFound):
			u = nil
		case err != nil:
			return nil, fmt.Errorf("iam: find user: %w", err)
		default:
			hash = u.PasswordHash
		}
	}
	g := s.login
	uk := userKey(domKey, a.UserName)
	keys := []limitKey{{uk, g.o.UserFailures}}
	if a.ClientAddr != "" {
		keys = append(keys, limitKey{addrKey(a.ClientAddr), g.o.AddrFailures})
	}
	// The attempt counts as a failure from here (reserve), and is taken back
	// if it turns out not to be one: at most the limit of guesses reach a
	// password check, however many arrive at once.
	wait, res := g.reserve(s.opts.Now(), keys...)
	if wait > 0 {
		s.log.WarnContext(ctx, "sign-in throttled", "domain", dom, "user", a.UserName, "client", a.ClientAddr,
			"retry_after", wait.Round(time.Second))
		return nil, &ThrottledError{RetryAfter: wait}
	}
	failed := func(reason string) (*IssuedToken, error) {
		s.log.WarnContext(ctx, "sign-in failed", "domain", dom, "user", a.UserName, "client", a.ClientAddr, "reason", reason)
		return nil, ErrBadCredentials
	}
	good, err := g.check(ctx, func() bool { return s.checkPassword(hash, a.Password) })
	if err != nil {
		g.undo(res) // no password was checked
		return nil, err
	}
	switch {
	case d == nil:
		return failed("unknown domain")
	case u == nil:
		return failed("unknown user")
	case !good:
		return failed("wrong password")
	case !u.Enabled || !d.Enabled:
		return failed("disabled")
	case Role(u.Role) == RoleAgent:
		g.undo(res)
		s.log.WarnContext(ctx, "sign-in refused: agent user", "domain", d.Name, "user", u.Name, "client", a.ClientAddr)
		return nil, ErrAgentPassword
	}
	// A success clears its user's count; its address keeps the failures it
	// had, without this attempt.
	g.undo(res)
	g.reset(uk)
	// A domain scope must be the user's own domain.
	if (a.ScopeDomainID != "" && a.ScopeDomainID != d.ID) || (a.ScopeDomainName != "" && a.ScopeDomainName != d.Name) {
		return nil, ErrNoProject
	}
	want := a.ScopeProjectID
	if want == "" {
		want = a.ScopeProjectName
	}
	p, err := s.resolveProject(ctx, d.ID, want)
	if err != nil {
		return nil, err
	}
	tok := secret.RandomString(64, secret.AlphaNumeric)
	now := s.opts.Now().UTC().Truncate(time.Millisecond)
	exp := now.Add(s.opts.TokenTTL)
	if err := s.store.CreateToken(ctx, &store.Token{
		Hash: hashToken(tok), DomainID: d.ID, UserID: u.ID, ProjectID: p.ID, ExpiresAt: exp, CreatedAt: now,
	}); err != nil {
		return nil, fmt.Errorf("iam: %w", err)
	}
	s.log.InfoContext(ctx, "token issued", "domain", d.Name, "user", u.Name, "project", p.ID, "expires_at", exp)
	return &IssuedToken{
		Token: tok, IssuedAt: now, ExpiresAt: exp,
		Principal: Principal{
			DomainID: d.ID, DomainName: d.Name, UserID: u.ID, UserName: u.Name,
			ProjectID: p.ID, ProjectName: p.Name, Method: "token", Role: Role(u.Role),
		},
	}, nil
}

// dummyHash keeps the cost of a failed lookup equal to a failed password check.
var dummyHash, _ = secret.HashPassword("smsflow-dummy")

// AuthenticateToken resolves an X-Auth-Token. Verified tokens are cached for
// at most CacheTTL (and never past their expiry).
func (s *Service) AuthenticateToken(ctx context.Context, tok string) (Principal, error) {
	if tok == "" || len(tok) > 16384 {
		return Principal{}, ErrBadToken
	}
	h := hashToken(tok)
	now := s.opts.Now()
	if pr, ok := cacheGet(s, s.tokens, h, now); ok {
		return pr, nil
	}
	t, err := s.store.ActiveToken(ctx, h, now)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrBadToken
	}
	if err != nil {
		return Principal{}, fmt.Errorf("iam: find token: %w", err)
	}
	p, err := s.resolveProject(ctx, t.DomainID, t.ProjectID)
	if err != nil {
		return Principal{}, ErrBadToken
	}
	pr := Principal{
		DomainID: t.DomainID, DomainName: t.DomainName, UserID: t.UserID, UserName: t.UserName,
		ProjectID: p.ID, ProjectName: p.Name, Method: "token", Role: Role(t.UserRole),
	}
	exp := now.Add(s.opts.CacheTTL)
	if t.ExpiresAt.Before(exp) {
		exp = t.ExpiresAt
	}
	cachePut(s, s.tokens, h, pr, exp)
	return pr, nil
}
