// Package iam authenticates API callers the way Huawei Cloud's IAM does for
// SMS: password tokens (POST /v3/auth/tokens, then X-Auth-Token) and AK/SK
// request signatures (SDK-HMAC-SHA256). It also owns the tenants: domains,
// their projects, users and access keys, created by the first-start bootstrap
// and the `smsflow admin` commands.
package iam

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/store"
)

// Store is what iam needs from the database.
type Store interface {
	CreateDomain(ctx context.Context, d *store.Domain) error
	Domain(ctx context.Context, idOrName string) (*store.Domain, error)
	Domains(ctx context.Context) ([]store.Domain, error)
	CreateProject(ctx context.Context, p *store.Project) error
	Project(ctx context.Context, domainID, idOrName string) (*store.Project, error)
	Projects(ctx context.Context, domainID string) ([]store.Project, error)
	CreateUser(ctx context.Context, u *store.User) error
	SetUserRole(ctx context.Context, domainID, userID, role string) error
	AccessKeySource(ctx context.Context, ak string) (string, error)
	UserByName(ctx context.Context, domainID, name string) (*store.User, error)
	Users(ctx context.Context, domainID string) ([]store.User, error)
	SetUserEnabled(ctx context.Context, domainID, userID string, enabled bool) error
	CreateAccessKey(ctx context.Context, k *store.AccessKey) error
	ActiveAccessKey(ctx context.Context, ak string) (*store.AccessKeyWithUser, error)
	AccessKeys(ctx context.Context, domainID string) ([]store.AccessKey, error)
	RevokeAccessKey(ctx context.Context, domainID, ak string) error
	CreateToken(ctx context.Context, t *store.Token) error
	ActiveToken(ctx context.Context, hash string, now time.Time) (*store.TokenWithUser, error)
	RevokeUserTokens(ctx context.Context, domainID, userID string) (int64, error)
	Bootstrap(ctx context.Context, d *store.Domain, p *store.Project, u *store.User, k *store.AccessKey) (bool, error)
}

// Principal is an authenticated caller and the project it acts in.
type Principal struct {
	DomainID    string
	DomainName  string
	UserID      string
	UserName    string
	ProjectID   string
	ProjectName string
	// Method is "token" or "aksk".
	Method string
	// AccessKey is the AK used, for audit logs (never the SK).
	AccessKey string
	// Role is what the caller may do: the user's role for a token, the
	// key's (capped by its user's) for a signature. Empty: nothing.
	Role Role
	// SourceID is the source an agent key is bound to (the first it
	// registered); empty for other roles and before that registration.
	SourceID string
}

// Tenant is the store scope of a principal.
func (p Principal) Tenant() store.Tenant {
	return store.Tenant{DomainID: p.DomainID, ProjectID: p.ProjectID}
}

// Errors callers map to SMS codes.
var (
	ErrBadCredentials = errors.New("iam: bad credentials")
	ErrBadSignature   = errors.New("iam: signature does not match")
	ErrClockSkew      = errors.New("iam: request time outside the allowed skew")
	ErrBadToken       = errors.New("iam: token invalid or expired")
	ErrNoProject      = errors.New("iam: project not in the caller's domain")
	ErrMalformed      = errors.New("iam: malformed authentication data")
	// ErrAgentPassword: an agent user's password is right, but agents sign
	// their requests with an AK/SK bound to their source; a token would
	// act for no source.
	ErrAgentPassword = errors.New("iam: agent users sign requests with their AK/SK, not a password token")
)

// Options tune the service.
type Options struct {
	TokenTTL time.Duration
	MaxSkew  time.Duration
	CacheTTL time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
	// Login throttles password sign-ins (zero: the defaults).
	Login LoginThrottle
}

// Service authenticates callers and manages tenants.
type Service struct {
	store Store
	box   *secret.Box
	opts  Options
	log   *slog.Logger

	login *loginGuard
	// checkPassword is secret.CheckPassword (tests observe it).
	checkPassword func(hash, password string) bool

	mu       sync.Mutex
	keys     map[string]cached[cachedKey]     // by AK
	tokens   map[string]cached[Principal]     // by token hash
	projects map[string]cached[store.Project] // by domainID + "/" + project id
}

// cachedKey is an active access key with its decrypted SK.
type cachedKey struct {
	key store.AccessKeyWithUser
	sk  string
}

// New builds the service.
func New(s Store, box *secret.Box, opts Options) *Service {
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 24 * time.Hour
	}
	if opts.MaxSkew == 0 {
		opts.MaxSkew = 15 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		store: s, box: box, opts: opts, log: log,
		login: newLoginGuard(opts.Login), checkPassword: secret.CheckPassword,
		keys: map[string]cached[cachedKey]{}, tokens: map[string]cached[Principal]{}, projects: map[string]cached[store.Project]{},
	}
}

// Flush empties the caches (after a revocation in this process).
func (s *Service) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.keys)
	clear(s.tokens)
	clear(s.projects)
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// resolveProject finds the project a caller acts in: the one named (id or
// name) if it belongs to the domain, else the domain's first project.
func (s *Service) resolveProject(ctx context.Context, domainID, want string) (store.Project, error) {
	key := domainID + "/" + want
	now := s.opts.Now()
	if p, ok := cacheGet(s, s.projects, key, now); ok {
		return p, nil
	}
	var p store.Project
	if want != "" {
		got, err := s.store.Project(ctx, domainID, want)
		if errors.Is(err, store.ErrNotFound) {
			return store.Project{}, ErrNoProject
		}
		if err != nil {
			return store.Project{}, fmt.Errorf("iam: find project: %w", err)
		}
		p = *got
	} else {
		ps, err := s.store.Projects(ctx, domainID)
		if err != nil {
			return store.Project{}, fmt.Errorf("iam: list projects: %w", err)
		}
		if len(ps) == 0 {
			return store.Project{}, ErrNoProject
		}
		p = ps[0]
	}
	cachePut(s, s.projects, key, p, now.Add(s.opts.CacheTTL))
	return p, nil
}
