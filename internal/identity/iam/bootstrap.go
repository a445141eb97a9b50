package iam

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/smsflow/smsflow/config"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/store"
)

// CredentialsFile is written in the data dir by the first-start bootstrap.
const CredentialsFile = "admin-credentials.json"

// Credentials is the content of admin-credentials.json.
type Credentials struct {
	DomainID   string `json:"domain_id"`
	DomainName string `json:"domain_name"`
	ProjectID  string `json:"project_id"`
	User       string `json:"user"`
	Password   string `json:"password"`
	AK         string `json:"ak"`
	SK         string `json:"sk"`
}

// Bootstrap names of the first tenant.
const (
	BootstrapDomain  = "smsflow"
	BootstrapProject = "default"
	BootstrapUser    = "admin"
)

// Bootstrap creates the first domain, project, admin user and AK/SK when the
// database holds no domain yet, taking values from SMSFLOW_ADMIN_* (getenv)
// where set and random ones otherwise, and writes them all to
// <dataDir>/admin-credentials.json (0600). It returns the file path when it
// created the tenant, "" when the database was already initialised.
func (s *Service) Bootstrap(ctx context.Context, dataDir string, getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	password := getenv(config.EnvAdminPassword)
	if password == "" {
		password = NewPassword()
	} else if len(password) < 8 {
		return "", fmt.Errorf("bootstrap: %s must have at least 8 characters", config.EnvAdminPassword)
	}
	ak, sk := getenv(config.EnvAdminAK), getenv(config.EnvAdminSK)
	if (ak == "") != (sk == "") {
		return "", fmt.Errorf("bootstrap: set both %s and %s, or neither", config.EnvAdminAK, config.EnvAdminSK)
	}
	if ak == "" {
		ak, sk = NewAK(), NewSK()
	} else if !akRE.MatchString(ak) || len(sk) < 16 {
		return "", fmt.Errorf("bootstrap: %s must be 8-64 letters or digits and %s at least 16 characters", config.EnvAdminAK, config.EnvAdminSK)
	}
	projectID := getenv(config.EnvAdminProjectID)
	if projectID == "" {
		projectID = newID()
	} else if !akRE.MatchString(projectID) {
		return "", fmt.Errorf("bootstrap: %s must be 8-64 letters or digits", config.EnvAdminProjectID)
	}
	hash, err := secret.HashPassword(password)
	if err != nil {
		return "", err
	}
	skEnc, err := s.box.Seal(sk)
	if err != nil {
		return "", err
	}
	now := s.opts.Now().UTC()
	d := &store.Domain{ID: newID(), Name: BootstrapDomain, Enabled: true, CreatedAt: now}
	p := &store.Project{ID: projectID, DomainID: d.ID, Name: BootstrapProject, CreatedAt: now}
	u := &store.User{ID: newID(), DomainID: d.ID, Name: BootstrapUser, PasswordHash: hash, Enabled: true, Role: string(RoleAdmin), CreatedAt: now}
	k := &store.AccessKey{AK: ak, DomainID: d.ID, UserID: u.ID, SKEnc: skEnc, Description: "bootstrap", Role: string(RoleAdmin), CreatedAt: now}
	created, err := s.store.Bootstrap(ctx, d, p, u, k)
	if err != nil || !created {
		return "", err
	}
	path := filepath.Join(dataDir, CredentialsFile)
	b, err := json.MarshalIndent(Credentials{
		DomainID: d.ID, DomainName: d.Name, ProjectID: p.ID, User: u.Name, Password: password, AK: ak, SK: sk,
	}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	if err := writeFile0600(path, append(b, '\n')); err != nil {
		return "", fmt.Errorf("bootstrap: write %s: %w", path, err)
	}
	s.log.InfoContext(ctx, "first start: created the admin tenant; credentials written", "file", path,
		"domain", d.Name, "user", u.Name, "project_id", p.ID)
	return path, nil
}

// writeFile0600 writes atomically with mode 0600 whatever the umask.
func writeFile0600(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".creds-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
