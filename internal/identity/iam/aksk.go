package iam

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"

	"github.com/smsflow/smsflow/internal/identity/signer"
	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/store"
)

// AuthenticateSigned verifies an SDK-HMAC-SHA256 signed request. body is the
// raw request body (already read by the caller). X-Project-Id picks the
// project; it must belong to the key owner's domain.
func (s *Service) AuthenticateSigned(ctx context.Context, r *http.Request, body []byte) (Principal, error) {
	sc, err := s.PrecheckSigned(ctx, r)
	if err != nil {
		return Principal{}, err
	}
	return s.FinishSigned(ctx, r, sc, sha256.Sum256(body))
}

// SignedCaller is a signed request whose headers passed PrecheckSigned: its
// AK is active and its X-Sdk-Date within the skew. Its signature, which
// covers the body, is not checked yet.
type SignedCaller struct {
	auth signer.Authorization
	key  store.AccessKeyWithUser
	sk   string
}

// PrecheckSigned is the first half of AuthenticateSigned: everything that
// can be checked from the headers (the Authorization header parses, the AK
// exists and is active, X-Sdk-Date is within the skew), with the errors
// AuthenticateSigned returns. The API calls it before reading a body, so an
// anonymous caller cannot make the server hold one.
func (s *Service) PrecheckSigned(ctx context.Context, r *http.Request) (*SignedCaller, error) {
	auth, err := signer.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	key, sk, err := s.accessKey(ctx, auth.AccessKey)
	if err != nil {
		return nil, err
	}
	if err := signer.CheckDate(r, auth, s.opts.Now(), s.opts.MaxSkew); err != nil {
		return nil, signedError(err)
	}
	return &SignedCaller{auth: auth, key: key, sk: sk}, nil
}

// FinishSigned is the second half of AuthenticateSigned: bodySum is the
// SHA-256 of the raw body, hashed as it was read.
func (s *Service) FinishSigned(ctx context.Context, r *http.Request, sc *SignedCaller, bodySum [sha256.Size]byte) (Principal, error) {
	auth, key := sc.auth, sc.key
	if err := signer.VerifySum(r, bodySum, auth, sc.sk, s.opts.Now(), s.opts.MaxSkew); err != nil {
		return Principal{}, signedError(err)
	}
	// The project decides the tenant scope: a project header outside the
	// signature could be swapped by anyone on the path.
	if r.Header.Get("X-Project-Id") != "" && !auth.Signs("x-project-id") {
		return Principal{}, fmt.Errorf("%w: X-Project-Id is not signed", ErrMalformed)
	}
	p, err := s.resolveProject(ctx, key.DomainID, r.Header.Get("X-Project-Id"))
	if err != nil {
		return Principal{}, err
	}
	return Principal{
		DomainID: key.DomainID, DomainName: key.DomainName, UserID: key.UserID, UserName: key.UserName,
		ProjectID: p.ID, ProjectName: p.Name, Method: "aksk", AccessKey: key.AK,
		Role: effectiveRole(Role(key.UserRole), Role(key.Role)), SourceID: ptr.Deref(key.SourceID),
	}, nil
}

// AgentSource is the source an agent's access key is bound to now, read
// from the store: the binding is made by the key's first registration,
// possibly in another process, after the key was cached unbound.
func (s *Service) AgentSource(ctx context.Context, ak string) (string, error) {
	id, err := s.store.AccessKeySource(ctx, ak)
	if err != nil {
		return "", fmt.Errorf("iam: access key source: %w", err)
	}
	return id, nil
}

// signedError maps the signer's errors to iam's.
func signedError(err error) error {
	switch {
	case errors.Is(err, signer.ErrClockSkew):
		return ErrClockSkew
	case errors.Is(err, signer.ErrBadSignature):
		return ErrBadSignature
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// accessKey finds an active AK and decrypts its SK, through the cache.
func (s *Service) accessKey(ctx context.Context, ak string) (store.AccessKeyWithUser, string, error) {
	now := s.opts.Now()
	if c, ok := cacheGet(s, s.keys, ak, now); ok {
		return c.key, c.sk, nil
	}
	k, err := s.store.ActiveAccessKey(ctx, ak)
	if errors.Is(err, store.ErrNotFound) {
		return store.AccessKeyWithUser{}, "", ErrBadSignature
	}
	if err != nil {
		return store.AccessKeyWithUser{}, "", fmt.Errorf("iam: find access key: %w", err)
	}
	sk, err := s.box.Open(k.SKEnc)
	if err != nil {
		return store.AccessKeyWithUser{}, "", fmt.Errorf("iam: access key %s: %w", ak, err)
	}
	cachePut(s, s.keys, ak, cachedKey{key: *k, sk: sk}, now.Add(s.opts.CacheTTL))
	return *k, sk, nil
}
