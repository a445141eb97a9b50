package iam

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/smsflow/smsflow/internal/identity/signer"
	"github.com/smsflow/smsflow/internal/store"
)

// AuthenticateSigned verifies an SDK-HMAC-SHA256 signed request. body is the
// raw request body (already read by the caller). X-Project-Id picks the
// project; it must belong to the key owner's domain.
func (s *Service) AuthenticateSigned(ctx context.Context, r *http.Request, body []byte) (Principal, error) {
	auth, err := signer.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	key, sk, err := s.accessKey(ctx, auth.AccessKey)
	if err != nil {
		return Principal{}, err
	}
	switch err := signer.Verify(r, body, auth, sk, s.opts.Now(), s.opts.MaxSkew); {
	case err == nil:
	case errors.Is(err, signer.ErrClockSkew):
		return Principal{}, ErrClockSkew
	case errors.Is(err, signer.ErrBadSignature):
		return Principal{}, ErrBadSignature
	default:
		return Principal{}, fmt.Errorf("%w: %v", ErrMalformed, err)
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
	}, nil
}

// accessKey finds an active AK and decrypts its SK, through the cache.
func (s *Service) accessKey(ctx context.Context, ak string) (store.AccessKeyWithUser, string, error) {
	now := s.opts.Now()
	if s.opts.CacheTTL > 0 {
		s.mu.Lock()
		c, ok := s.keys[ak]
		s.mu.Unlock()
		if ok && now.Before(c.expires) {
			return c.key, c.sk, nil
		}
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
	if s.opts.CacheTTL > 0 {
		s.mu.Lock()
		s.keys[ak] = cachedKey{key: *k, sk: sk, expires: now.Add(s.opts.CacheTTL)}
		s.mu.Unlock()
	}
	return *k, sk, nil
}
