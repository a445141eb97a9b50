package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Domain is an account: the tenant boundary. Everything an API caller can see
// belongs to exactly one domain.
type Domain struct {
	ID        string    `gorm:"primaryKey;size:64"`
	Name      string    `gorm:"size:64;uniqueIndex"`
	Enabled   bool      `gorm:"not null"`
	CreatedAt time.Time `gorm:"not null"`
}

// Project is an IAM project of a domain (what X-Project-Id names).
type Project struct {
	ID        string    `gorm:"primaryKey;size:64"`
	DomainID  string    `gorm:"size:64;not null;uniqueIndex:uq_projects_domain_name,priority:1"`
	Name      string    `gorm:"size:64;not null;uniqueIndex:uq_projects_domain_name,priority:2"`
	CreatedAt time.Time `gorm:"not null"`
}

// User is an IAM user of a domain. Passwords are stored as PBKDF2 hashes.
type User struct {
	ID           string `gorm:"primaryKey;size:64"`
	DomainID     string `gorm:"size:64;not null;uniqueIndex:uq_users_domain_name,priority:1"`
	Name         string `gorm:"size:64;not null;uniqueIndex:uq_users_domain_name,priority:2"`
	PasswordHash string `gorm:"size:255;not null"`
	Enabled      bool   `gorm:"not null"`
	// Role is what the user may do (iam.Role: admin, operator, viewer,
	// agent); it caps the roles of the user's access keys.
	Role      string    `gorm:"size:16;not null"`
	CreatedAt time.Time `gorm:"not null"`
}

// AccessKey is an AK/SK pair of a user. The SK must be recoverable to verify
// HMAC signatures, so it is stored encrypted (AES-GCM, see package secret),
// never in clear and never hashed.
type AccessKey struct {
	AK          string `gorm:"column:ak;primaryKey;size:64"`
	DomainID    string `gorm:"size:64;not null;index"`
	UserID      string `gorm:"size:64;not null;index"`
	SKEnc       string `gorm:"column:sk_enc;size:512;not null"`
	Description string `gorm:"size:255;not null"`
	// Role is what a request signed with the key may do (iam.Role).
	Role string `gorm:"size:16;not null"`
	// SourceID is the source an agent key registered first: such a key
	// acts for that source only. Nil until then, and for other roles.
	SourceID  *string    `gorm:"size:64"`
	CreatedAt time.Time  `gorm:"not null"`
	RevokedAt *time.Time `gorm:""`
}

// Token is an issued X-Auth-Token; only its SHA-256 is stored.
type Token struct {
	Hash      string     `gorm:"primaryKey;size:64"`
	DomainID  string     `gorm:"size:64;not null;index"`
	UserID    string     `gorm:"size:64;not null;index"`
	ProjectID string     `gorm:"size:64;not null"`
	ExpiresAt time.Time  `gorm:"not null;index"`
	CreatedAt time.Time  `gorm:"not null"`
	RevokedAt *time.Time `gorm:""`
}

// ---- domains ----

// CreateDomain inserts a domain; ErrDuplicate when the name is taken.
func (s *Store) CreateDomain(ctx context.Context, d *Domain) error {
	return insertNamed(s.db.WithContext(ctx), d, "domain", d.Name)
}

// Domain finds a domain by id or name.
func (s *Store) Domain(ctx context.Context, idOrName string) (*Domain, error) {
	return first[Domain](s.db.WithContext(ctx).Where("id = ? OR name = ?", idOrName, idOrName).Order("id"))
}

// Domains lists every domain (admin CLI).
func (s *Store) Domains(ctx context.Context) ([]Domain, error) {
	var out []Domain
	err := s.db.WithContext(ctx).Order("created_at, id").Find(&out).Error
	return out, err
}

// CountDomains tells whether the database is empty (bootstrap).
func (s *Store) CountDomains(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Domain{}).Count(&n).Error
	return n, err
}

// ---- projects ----

// CreateProject inserts an IAM project into its domain.
func (s *Store) CreateProject(ctx context.Context, p *Project) error {
	return insertNamed(s.db.WithContext(ctx), p, "project", p.Name)
}

// Project finds a project of the domain by id or name.
func (s *Store) Project(ctx context.Context, domainID, idOrName string) (*Project, error) {
	return first[Project](s.db.WithContext(ctx).Where("domain_id = ? AND (id = ? OR name = ?)", domainID, idOrName, idOrName).
		Order("id"))
}

// Projects lists the projects of a domain, oldest first (the first is the
// domain's default project for callers that name none).
func (s *Store) Projects(ctx context.Context, domainID string) ([]Project, error) {
	var out []Project
	err := s.db.WithContext(ctx).Where("domain_id = ?", domainID).Order("created_at, id").Find(&out).Error
	return out, err
}

// ---- users ----

// CreateUser inserts a user; the caller hashes the password.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	return insertNamed(s.db.WithContext(ctx), u, "user", u.Name)
}

// UserByName finds a user of a domain by name.
func (s *Store) UserByName(ctx context.Context, domainID, name string) (*User, error) {
	return first[User](s.db.WithContext(ctx).Where("domain_id = ? AND name = ?", domainID, name))
}

// UserByID finds a user by id within a domain.
func (s *Store) UserByID(ctx context.Context, domainID, id string) (*User, error) {
	return first[User](s.db.WithContext(ctx).Where("domain_id = ? AND id = ?", domainID, id))
}

// Users lists the users of a domain.
func (s *Store) Users(ctx context.Context, domainID string) ([]User, error) {
	var out []User
	err := s.db.WithContext(ctx).Where("domain_id = ?", domainID).Order("created_at, id").Find(&out).Error
	return out, err
}

// SetUserEnabled enables or disables a user; disabling also revokes the
// user's tokens so it takes effect at once.
func (s *Store) SetUserEnabled(ctx context.Context, domainID, userID string, enabled bool) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&User{}).Where("domain_id = ? AND id = ?", domainID, userID).Update("enabled", enabled)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if !enabled {
			now := time.Now().UTC()
			return tx.Model(&Token{}).Where("domain_id = ? AND user_id = ? AND revoked_at IS NULL", domainID, userID).
				Update("revoked_at", now).Error
		}
		return nil
	})
}

// ---- access keys ----

// CreateAccessKey inserts an AK with its encrypted SK.
func (s *Store) CreateAccessKey(ctx context.Context, k *AccessKey) error {
	if err := s.db.WithContext(ctx).Create(k).Error; err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("access key: %w", ErrDuplicate)
		}
		return fmt.Errorf("create access key: %w", err)
	}
	return nil
}

// CredentialHolder is what authentication needs of the user and domain
// that hold a credential (an access key, a token).
type CredentialHolder struct {
	UserName    string
	UserEnabled bool
	// UserRole is the holder's role (it caps a key's own).
	UserRole   string
	DomainName string
	DomainOK   bool
}

// live tells whether the holder may act: a disabled user or domain may not.
func (h CredentialHolder) live() bool { return h.UserEnabled && h.DomainOK }

// activeCredential reads, in one query, the row of table (aliased c in
// where) that where finds, joined to its holder: ErrNotFound when there is
// none or its user or domain is disabled.
func activeCredential[T interface{ live() bool }](db *gorm.DB, table, where string, args ...any) (*T, error) {
	var out T
	err := db.Table(table+" AS c").
		Select("c.*, u.name AS user_name, u.enabled AS user_enabled, u.role AS user_role, d.name AS domain_name, d.enabled AS domain_ok").
		Joins("JOIN users u ON u.id = c.user_id AND u.domain_id = c.domain_id").
		Joins("JOIN domains d ON d.id = c.domain_id").
		Where(where, args...).
		Take(&out).Error
	if err != nil {
		return nil, notFound(err)
	}
	if !out.live() {
		return nil, ErrNotFound
	}
	return &out, nil
}

// AccessKeyWithUser is what signature verification needs in one query.
type AccessKeyWithUser struct {
	AccessKey
	CredentialHolder
}

// ActiveAccessKey finds a non-revoked AK of an enabled user in an enabled
// domain, in one query (it runs on every signed request that misses the cache).
func (s *Store) ActiveAccessKey(ctx context.Context, ak string) (*AccessKeyWithUser, error) {
	return activeCredential[AccessKeyWithUser](s.db.WithContext(ctx), "access_keys", "c.ak = ? AND c.revoked_at IS NULL", ak)
}

// AccessKeys lists a domain's keys (revoked ones too, marked), SK excluded.
func (s *Store) AccessKeys(ctx context.Context, domainID string) ([]AccessKey, error) {
	var out []AccessKey
	err := s.db.WithContext(ctx).Omit("sk_enc").Where("domain_id = ?", domainID).Order("created_at, ak").Find(&out).Error
	return out, err
}

// RevokeAccessKey marks an AK revoked; ErrNotFound when absent or already revoked.
func (s *Store) RevokeAccessKey(ctx context.Context, domainID, ak string) error {
	res := s.db.WithContext(ctx).Model(&AccessKey{}).
		Where("domain_id = ? AND ak = ? AND revoked_at IS NULL", domainID, ak).
		Update("revoked_at", time.Now().UTC())
	if res.Error != nil {
		return fmt.Errorf("revoke access key: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// SetUserRole changes a user's role; ErrNotFound when the domain has no
// such user.
func (s *Store) SetUserRole(ctx context.Context, domainID, userID, role string) error {
	res := s.db.WithContext(ctx).Model(&User{}).Where("domain_id = ? AND id = ?", domainID, userID).Update("role", role)
	if res.Error != nil {
		return fmt.Errorf("set user role: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// AccessKeySource is the source an access key is bound to ("" when none).
func (s *Store) AccessKeySource(ctx context.Context, ak string) (string, error) {
	var k AccessKey
	if err := s.db.WithContext(ctx).Select("ak", "source_id").Where("ak = ?", ak).Take(&k).Error; err != nil {
		return "", notFound(err)
	}
	if k.SourceID == nil {
		return "", nil
	}
	return *k.SourceID, nil
}

// ErrBoundElsewhere: an agent's access key is bound to another source than
// the one its request names or registers.
var ErrBoundElsewhere = errors.New("store: access key bound to another source")

// bindAccessKey binds ak (of domainID) to sourceID if it is bound to
// nothing yet; ErrBoundElsewhere when it is bound to another source, or
// when another live key holds the source (a fresh key cannot take over a
// source an agent runs on by sending its id or its machine's identity; once
// that key is revoked, a new one may). The conditional update referees two
// registrations racing for one key. created says the registration made the
// source just now: the only source a key whose own source was deleted may
// move to.
func bindAccessKey(tx *gorm.DB, domainID, ak, sourceID string, created bool) error {
	var held int64
	if err := tx.Model(&AccessKey{}).Where("domain_id = ? AND source_id = ? AND ak <> ? AND revoked_at IS NULL",
		domainID, sourceID, ak).Count(&held).Error; err != nil {
		return fmt.Errorf("bind access key: %w", err)
	}
	if held > 0 {
		return ErrBoundElsewhere
	}
	res := tx.Model(&AccessKey{}).Where("domain_id = ? AND ak = ? AND source_id IS NULL", domainID, ak).
		Update("source_id", sourceID)
	if res.Error != nil {
		return fmt.Errorf("bind access key: %w", res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var k AccessKey
	if err := tx.Select("ak", "source_id").Where("domain_id = ? AND ak = ?", domainID, ak).Take(&k).Error; err != nil {
		return fmt.Errorf("bind access key: %w", notFound(err))
	}
	if k.SourceID == nil {
		return ErrBoundElsewhere // unreachable: the conditional update above would have bound it
	}
	if *k.SourceID == sourceID {
		return nil
	}
	// A key whose source was deleted may register its machine anew: it
	// acts for one source at a time, never for a live other one, and never
	// takes over an existing source no key holds (one registered before
	// roles, say) by naming its id.
	if !created {
		return ErrBoundElsewhere
	}
	var n int64
	if err := tx.Model(&Source{}).Where("domain_id = ? AND id = ?", domainID, *k.SourceID).Count(&n).Error; err != nil {
		return fmt.Errorf("bind access key: %w", err)
	}
	if n > 0 {
		return ErrBoundElsewhere
	}
	return tx.Model(&AccessKey{}).Where("domain_id = ? AND ak = ?", domainID, ak).Update("source_id", sourceID).Error
}

// ---- tokens ----

// CreateToken stores an issued token's hash.
func (s *Store) CreateToken(ctx context.Context, t *Token) error {
	if err := s.db.WithContext(ctx).Create(t).Error; err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

// TokenWithUser is a live token and who holds it.
type TokenWithUser struct {
	Token
	CredentialHolder
}

// ActiveToken finds an unexpired, unrevoked token by hash.
func (s *Store) ActiveToken(ctx context.Context, hash string, now time.Time) (*TokenWithUser, error) {
	return activeCredential[TokenWithUser](s.db.WithContext(ctx), "tokens",
		"c.hash = ? AND c.revoked_at IS NULL AND c.expires_at > ?", hash, now.UTC())
}

// RevokeUserTokens revokes every live token of a user; returns how many.
func (s *Store) RevokeUserTokens(ctx context.Context, domainID, userID string) (int64, error) {
	res := s.db.WithContext(ctx).Model(&Token{}).
		Where("domain_id = ? AND user_id = ? AND revoked_at IS NULL", domainID, userID).
		Update("revoked_at", time.Now().UTC())
	return res.RowsAffected, res.Error
}

// PurgeExpiredTokens deletes tokens that expired before the given time.
func (s *Store) PurgeExpiredTokens(ctx context.Context, before time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at < ?", before.UTC()).Delete(&Token{})
	return res.RowsAffected, res.Error
}

// Bootstrap creates the first domain, project, user and access key in one
// transaction, only if the database has no domain yet. It reports whether it
// created anything, so two processes starting at once bootstrap once.
func (s *Store) Bootstrap(ctx context.Context, d *Domain, p *Project, u *User, k *AccessKey) (bool, error) {
	created := false
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Domain{}).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		for _, row := range []any{d, p, u, k} {
			if err := tx.Create(row).Error; err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	if err != nil {
		if isUniqueViolation(err) {
			return false, nil
		}
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	return created, nil
}
