package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/smsflow/smsflow/internal/provider"
)

// ownerFile records, in each target folder, the domain the target belongs
// to and the task that holds it. The targets root is shared by every
// tenant: without it a task of one domain could bind ("existing server")
// another domain's target and write into its disks.
const ownerFile = "owner.json"

// owner is the content of ownerFile.
type owner struct {
	DomainID string `json:"domain_id"`
	// TaskID is the task that created the target or has it bound; "" when
	// the target is free (prepared by the operator, or released by a
	// deleted task).
	TaskID string `json:"task_id,omitempty"`
	// Created: TaskID made this folder, and it goes with the task.
	Created bool `json:"created,omitempty"`
}

// readOwner reads a folder's owner record; ok is false when there is none
// (a folder the operator made by hand, or a target from before owners were
// recorded): such a folder belongs to nobody and cannot be bound.
func readOwner(dir string) (o owner, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return owner{}, false, nil
	}
	if err != nil {
		return owner{}, false, fmt.Errorf("local provider: %w", err)
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return owner{}, false, fmt.Errorf("local provider: %s: %w", filepath.Join(dir, ownerFile), err)
	}
	return o, o.DomainID != "", nil
}

// writeOwner replaces the record atomically (a crash leaves the old one or
// the new one, never half of it).
func writeOwner(dir string, o owner) error {
	b, _ := json.Marshal(o)
	tmp := filepath.Join(dir, ownerFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("local provider: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ownerFile)); err != nil {
		return fmt.Errorf("local provider: %w", err)
	}
	return nil
}

// existingDir is the folder of the existing server vmID, checked as a plain
// name before it is joined to the root (the API checks it too).
func (p *Provider) existingDir(vmID string) (string, error) {
	if err := provider.CheckServerID(vmID); err != nil {
		return "", fmt.Errorf("local provider: existing target %q: %w: %v", vmID, provider.ErrNotFound, err)
	}
	return p.dir(vmID)
}

// bindable is the rule of CheckBind, on the folder dir, with p.own held.
func bindable(dir, vmID, domainID, taskID string) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("local provider: existing target %q: %w", vmID, provider.ErrNotFound)
	}
	o, ok, err := readOwner(dir)
	if err != nil {
		return err
	}
	// Another domain's target reads exactly like a missing one.
	if !ok || domainID == "" || o.DomainID != domainID {
		return fmt.Errorf("local provider: existing target %q: %w", vmID, provider.ErrNotFound)
	}
	if o.TaskID != "" && o.TaskID != taskID {
		return fmt.Errorf("local provider: existing target %q: %w", vmID, provider.ErrInUse)
	}
	return nil
}

// CheckBind implements provider.Binder.
func (p *Provider) CheckBind(ctx context.Context, domainID, vmID, taskID string) error {
	dir, err := p.existingDir(vmID)
	if err != nil {
		return err
	}
	p.own.Lock()
	defer p.own.Unlock()
	return bindable(dir, vmID, domainID, taskID)
}

// Release implements provider.Binder: the task's receiver stops and the
// folder is free again for its domain. A created target is left to Delete.
func (p *Provider) Release(ctx context.Context, t provider.Target, taskID string) error {
	p.stopReceiver(taskID)
	if t.Location == "" {
		return nil
	}
	if err := p.inRoot(t.Location); err != nil {
		return err
	}
	p.own.Lock()
	defer p.own.Unlock()
	o, ok, err := readOwner(t.Location)
	if err != nil || !ok || o.TaskID != taskID || o.Created {
		return err
	}
	o.TaskID = ""
	if err := writeOwner(t.Location, o); err != nil {
		return err
	}
	// The next task's receiver picks its own port; a restart must not
	// bring this task's receiver back.
	if err := os.Remove(filepath.Join(t.Location, "receiver.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local provider: %w", err)
	}
	// The task's snapshots go with it: the next task binding the server
	// must not find (or restore) this one's.
	if err := os.RemoveAll(SnapshotsDir(t.Location)); err != nil {
		return fmt.Errorf("local provider: %w", err)
	}
	return nil
}

// Assign records domainID as the owner of the existing server name,
// creating its folder if needed: what an operator does to hand a prepared
// server to a tenant (README, "Security"). A folder owned by another domain
// is refused.
func (p *Provider) Assign(name, domainID string) error {
	if domainID == "" {
		return errors.New("local provider: assign: no domain")
	}
	dir, err := p.existingDir(name)
	if err != nil {
		return err
	}
	p.own.Lock()
	defer p.own.Unlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("local provider: %w", err)
	}
	o, ok, err := readOwner(dir)
	if err != nil {
		return err
	}
	if ok && o.DomainID != domainID {
		return fmt.Errorf("local provider: %s belongs to another domain", name)
	}
	if ok {
		return nil
	}
	return writeOwner(dir, owner{DomainID: domainID})
}

// inRoot refuses a location that is not a folder directly under the root.
func (p *Provider) inRoot(loc string) error {
	if filepath.Dir(filepath.Clean(loc)) != p.Root {
		return fmt.Errorf("local provider: %s is not a target folder of %s", loc, p.Root)
	}
	return nil
}

var _ provider.Binder = (*Provider)(nil)
