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
// an unknown user from a wrong password.
func (s *Service) IssueToken(ctx context.Context, a PasswordAuth) (*IssuedToken, error) {
	dom := a.DomainID
	if dom == "" {
		dom = a.DomainName
	}
	if dom == "" || a.UserName == "" || a.Password == "" {
		return nil, ErrBadCredentials
	}
	d, err := s.store.Domain(ctx, dom)
	if errors.Is(err, store.ErrNotFound) {
		secret.CheckPassword(dummyHash, a.Password) // same cost as a real check
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("iam: find domain: %w", err)
	}
	u, err := s.store.UserByName(ctx, d.ID, a.UserName)
	if errors.Is(err, store.ErrNotFound) {
		secret.CheckPassword(dummyHash, a.Password)
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("iam: find user: %w", err)
	}
	if !secret.CheckPassword(u.PasswordHash, a.Password) || !u.Enabled || !d.Enabled {
		return nil, ErrBadCredentials
	}
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
			ProjectID: p.ID, ProjectName: p.Name, Method: "token",
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
	if s.opts.CacheTTL > 0 {
		s.mu.Lock()
		c, ok := s.tokens[h]
		s.mu.Unlock()
		if ok && now.Before(c.expires) {
			return c.p, nil
		}
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
		ProjectID: p.ID, ProjectName: p.Name, Method: "token",
	}
	if s.opts.CacheTTL > 0 {
		exp := now.Add(s.opts.CacheTTL)
		if t.ExpiresAt.Before(exp) {
			exp = t.ExpiresAt
		}
		s.mu.Lock()
		s.tokens[h] = cachedToken{p: pr, expires: exp}
		s.mu.Unlock()
	}
	return pr, nil
}
