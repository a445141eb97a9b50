package iam

import (
	"context"
	"fmt"
	"regexp"

	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/store"
)

// newID is a fresh domain, project or user id. Generated identifiers follow
// Huawei Cloud's shapes: 32 hex characters for domain, project and user ids;
// 20 upper-case characters for an AK; 40 for an SK.
func newID() string { return secret.RandomString(32, secret.Hex) }

// NewAK returns a fresh access key id.
func NewAK() string { return secret.RandomString(20, secret.UpperDigits) }

// NewSK returns a fresh secret key.
func NewSK() string { return secret.RandomString(40, secret.AlphaNumeric) }

// NewPassword returns a fresh random password.
func NewPassword() string { return secret.RandomString(24, secret.AlphaNumeric) }

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)
	akRE   = regexp.MustCompile(`^[A-Za-z0-9]{8,64}$`)
)

func checkName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s name %q: 1-64 letters, digits, _ . @ -, starting with a letter or digit", kind, name)
	}
	return nil
}

// CreateDomain adds an account.
func (s *Service) CreateDomain(ctx context.Context, name string) (*store.Domain, error) {
	if err := checkName("domain", name); err != nil {
		return nil, err
	}
	d := &store.Domain{ID: newID(), Name: name, Enabled: true, CreatedAt: s.opts.Now().UTC()}
	return d, s.store.CreateDomain(ctx, d)
}

// CreateProject adds an IAM project to a domain (id empty = generated).
func (s *Service) CreateProject(ctx context.Context, domain, name, id string) (*store.Project, error) {
	d, err := s.store.Domain(ctx, domain)
	if err != nil {
		return nil, fmt.Errorf("domain %q: %w", domain, err)
	}
	if err := checkName("project", name); err != nil {
		return nil, err
	}
	if id == "" {
		id = newID()
	} else if !akRE.MatchString(id) {
		return nil, fmt.Errorf("project id %q: 8-64 letters or digits", id)
	}
	p := &store.Project{ID: id, DomainID: d.ID, Name: name, CreatedAt: s.opts.Now().UTC()}
	return p, s.store.CreateProject(ctx, p)
}

// CreateUser adds an operator with a password (empty = generated;
// returned).
func (s *Service) CreateUser(ctx context.Context, domain, name, password string) (*store.User, string, error) {
	return s.CreateUserRole(ctx, domain, name, password, RoleOperator)
}

// CreateUserRole adds a user of the given role with a password (empty =
// generated; returned).
func (s *Service) CreateUserRole(ctx context.Context, domain, name, password string, role Role) (*store.User, string, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return nil, "", err
	}
	d, err := s.store.Domain(ctx, domain)
	if err != nil {
		return nil, "", fmt.Errorf("domain %q: %w", domain, err)
	}
	if err := checkName("user", name); err != nil {
		return nil, "", err
	}
	if password == "" {
		password = NewPassword()
	} else if len(password) < 8 || len(password) > 128 {
		return nil, "", fmt.Errorf("password: 8 to 128 characters")
	}
	h, err := secret.HashPassword(password)
	if err != nil {
		return nil, "", err
	}
	u := &store.User{ID: newID(), DomainID: d.ID, Name: name, PasswordHash: h, Enabled: true, Role: string(role), CreatedAt: s.opts.Now().UTC()}
	return u, password, s.store.CreateUser(ctx, u)
}

// CreatedKey is an access key as shown once, at creation.
type CreatedKey struct {
	AK, SK   string
	DomainID string
	UserID   string
	Role     Role
}

// CreateAccessKey issues an AK/SK with its user's role; the SK is returned
// only here.
func (s *Service) CreateAccessKey(ctx context.Context, domain, user, description string) (*CreatedKey, error) {
	return s.CreateAccessKeyRole(ctx, domain, user, description, "")
}

// CreateAccessKeyRole issues an AK/SK of the given role (empty: the
// user's), which the user's role must cover: an operator cannot mint an
// admin key. The SK is returned only here.
func (s *Service) CreateAccessKeyRole(ctx context.Context, domain, user, description string, role Role) (*CreatedKey, error) {
	d, err := s.store.Domain(ctx, domain)
	if err != nil {
		return nil, fmt.Errorf("domain %q: %w", domain, err)
	}
	u, err := s.store.UserByName(ctx, d.ID, user)
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", user, err)
	}
	if role == "" {
		role = Role(u.Role)
	}
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	if !Role(u.Role).Covers(role) {
		return nil, fmt.Errorf("user %q is %s: it cannot hold a key of role %s", user, u.Role, role)
	}
	ak, sk := NewAK(), NewSK()
	enc, err := s.box.Seal(sk)
	if err != nil {
		return nil, err
	}
	k := &store.AccessKey{AK: ak, DomainID: d.ID, UserID: u.ID, SKEnc: enc, Description: description,
		Role: string(role), CreatedAt: s.opts.Now().UTC()}
	if err := s.store.CreateAccessKey(ctx, k); err != nil {
		return nil, err
	}
	return &CreatedKey{AK: ak, SK: sk, DomainID: d.ID, UserID: u.ID, Role: role}, nil
}

// SetUserRole changes a user's role. Its tokens act with the new role and
// its keys are capped by it (see Principal.Role) once the caches expire.
func (s *Service) SetUserRole(ctx context.Context, domain, user string, role Role) error {
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	d, err := s.store.Domain(ctx, domain)
	if err != nil {
		return fmt.Errorf("domain %q: %w", domain, err)
	}
	u, err := s.store.UserByName(ctx, d.ID, user)
	if err != nil {
		return fmt.Errorf("user %q: %w", user, err)
	}
	if err := s.store.SetUserRole(ctx, d.ID, u.ID, string(role)); err != nil {
		return fmt.Errorf("user %q: %w", user, err)
	}
	s.Flush()
	return nil
}

// RevokeAccessKey revokes an AK of a domain.
func (s *Service) RevokeAccessKey(ctx context.Context, domain, ak string) error {
	d, err := s.store.Domain(ctx, domain)
	if err != nil {
		return fmt.Errorf("domain %q: %w", domain, err)
	}
	if err := s.store.RevokeAccessKey(ctx, d.ID, ak); err != nil {
		return fmt.Errorf("access key %s: %w", ak, err)
	}
	s.Flush()
	return nil
}

// SetUserEnabled disables (revoking its tokens) or re-enables a user.
func (s *Service) SetUserEnabled(ctx context.Context, domain, user string, enabled bool) error {
	d, err := s.store.Domain(ctx, domain)
	if err != nil {
		return fmt.Errorf("domain %q: %w", domain, err)
	}
	u, err := s.store.UserByName(ctx, d.ID, user)
	if err != nil {
		return fmt.Errorf("user %q: %w", user, err)
	}
	if err := s.store.SetUserEnabled(ctx, d.ID, u.ID, enabled); err != nil {
		return err
	}
	s.Flush()
	return nil
}

// RevokeTokens revokes every live token of a user.
func (s *Service) RevokeTokens(ctx context.Context, domain, user string) (int64, error) {
	d, err := s.store.Domain(ctx, domain)
	if err != nil {
		return 0, fmt.Errorf("domain %q: %w", domain, err)
	}
	u, err := s.store.UserByName(ctx, d.ID, user)
	if err != nil {
		return 0, fmt.Errorf("user %q: %w", user, err)
	}
	n, err := s.store.RevokeUserTokens(ctx, d.ID, u.ID)
	s.Flush()
	return n, err
}

// Store gives the admin CLI read access for listings.
func (s *Service) Store() Store { return s.store }
