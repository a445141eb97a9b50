// Package provider creates and manages target servers in the cloud smsflow
// migrates into. Each cloud is an implementation of Provider; "local" keeps
// targets as folders of disk images on this machine (demos, tests, and
// migrations into a hypervisor that boots those images).
package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/smsflow/smsflow/agent/transport"
	"github.com/smsflow/smsflow/internal/sms"
)

// Disk is a target disk to create.
type Disk struct {
	Name      string // the source disk it receives (or its relation name)
	Size      int64  // bytes
	UsedSize  int64  // bytes the source uses on it: what the copy writes
	DeviceUse string // BOOT, OS or NORMAL
	// What the source disk holds, for the check at start: its partition
	// table (MBR or GPT) and each partition's file system.
	PartitionStyle string
	Partitions     []Partition
}

// Partition is a source partition the target must show after the copy.
type Partition struct {
	Index      int32  // 1-based, as in the table
	FileSystem string // ext4, xfs, btrfs, swap, vfat, ... ("" = not checked)
}

// Spec describes the target of a task.
type Spec struct {
	TaskID   string
	DomainID string // the tenant the target belongs to
	Name     string
	OSType   sms.OSType
	Type     sms.TaskType
	Disks    []Disk
	ExistVM  string // an existing target to bind instead of creating one (CheckServerID)
	Template string // template id (flavor, network) when the provider uses one
	// DiskIDs name the existing server's disks that receive Disks, in
	// order (target_disk_ids); SnapshotIDs the target's snapshots
	// (snapshot_ids); EnterpriseProject the enterprise project a created
	// server belongs to.
	DiskIDs           []string `json:",omitempty"`
	SnapshotIDs       []string `json:",omitempty"`
	EnterpriseProject string   `json:",omitempty"`
}

// Target is a created target server.
type Target struct {
	VMID     string
	Name     string
	IP       string
	Location string   // provider-specific (a folder for local)
	Disks    []string // where each Spec disk landed (device or file), in order
	// Created is true when the provider made this server for the task (and
	// so deletes it with the task); a bound existing server is kept.
	Created bool
}

// Provider is a target cloud.
type Provider interface {
	// Create makes (or finds again, by TaskID) the target server and its
	// disks. It is idempotent: a retried activity gets the same target.
	Create(ctx context.Context, s Spec) (Target, error)
	// Prepare readies the target to receive data (attach the agent image).
	Prepare(ctx context.Context, t Target) error
	// Format lays out the target disks for the data plane.
	Format(ctx context.Context, t Target, s Spec) error
	// Configure makes the received system bootable on the target (drivers,
	// fstab, boot loader).
	Configure(ctx context.Context, t Target) error
	// Detach removes what Prepare attached.
	Detach(ctx context.Context, t Target) error
	// Start boots the target and checks it.
	Start(ctx context.Context, t Target) error
	// Clone copies the target for a test while migration goes on.
	Clone(ctx context.Context, t Target, name string) (Target, error)
	// Delete removes the target and everything created for it.
	Delete(ctx context.Context, t Target) error
}

// ErrNoSpace: the target cannot hold the disks.
var ErrNoSpace = errors.New("provider: not enough space for the target disks")

// ErrNotFound: the existing target server to bind does not exist.
var ErrNotFound = errors.New("provider: target server not found")

// ErrInUse: the existing target server is bound to another task.
var ErrInUse = errors.New("provider: target server in use by another task")

// MaxServerIDLen bounds an existing server's id (a UUID on a cloud, a folder
// name for the local provider).
const MaxServerIDLen = 128

// CheckServerID tells whether id can name an existing target server: one
// plain name of ASCII letters, digits, '-', '_' and '.', not starting with a
// dot, at most MaxServerIDLen long. Providers use the id as a path element
// (the local provider's folder), so ".", "..", separators and NUL must never
// reach them.
func CheckServerID(id string) error {
	switch {
	case id == "":
		return errors.New("must not be empty")
	case len(id) > MaxServerIDLen:
		return fmt.Errorf("must have at most %d characters", MaxServerIDLen)
	case strings.HasPrefix(id, "."):
		return errors.New("must not start with a dot")
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return errors.New("must be a plain name of letters, digits, '-', '_' and '.'")
		}
	}
	return nil
}

// Binder is a provider that keeps who owns each existing target server, so
// a tenant binds only its own servers and never one another task holds.
type Binder interface {
	// CheckBind tells whether a task of domainID may bind the existing
	// server vmID: ErrNotFound when it does not exist or belongs to another
	// domain (the two are answered alike, so ids do not leak), ErrInUse
	// when another task (not taskID; "" for a task not yet created) holds it.
	CheckBind(ctx context.Context, domainID, vmID, taskID string) error
	// Release ends taskID's hold on a bound (not created) target, when the
	// task is deleted: its receiver stops and the server is free for
	// another task of its domain. The server itself is kept.
	Release(ctx context.Context, t Target, taskID string) error
}

// ReceiverTask is what a receiver needs to know of its task.
type ReceiverTask struct {
	TaskID   string
	DomainID string
	Type     sms.TaskType
	Creds    transport.Creds
	// PrivateIP and IPv6 are the task's route (use_public_ip false,
	// use_ipv6): the address returned is the target's private one, and an
	// IPv6 one, where the provider has both. The local provider's
	// receivers have one address, its receiver_advertise host.
	PrivateIP bool
	IPv6      bool
}

// ReceiverHost is a provider that runs the data plane's receiving end for
// its targets (the local provider, on loopback). Receiver starts it, or
// finds it running, and returns the address the agent dials.
type ReceiverHost interface {
	Receiver(ctx context.Context, t Target, task ReceiverTask) (addr string, err error)
}

// ErrNoSnapshot: the target has no snapshot of that id (never taken, or
// cleared).
var ErrNoSnapshot = errors.New("provider: the target has no such snapshot")

// Snapshotter is a provider that keeps snapshots of its targets, so a
// finished task's failed sync pass can be rolled back to the data the
// target held before it (sync_failed_rollback). Snapshot ids come from the
// workflow, never from a request.
type Snapshotter interface {
	// Snapshot records the target's disks (or file tree) as id, replacing
	// the target's other snapshots. Taking the same id again is a no-op,
	// so a retried activity does not copy twice.
	Snapshot(ctx context.Context, t Target, id string) error
	// Restore writes snapshot id back into the target: ErrNoSnapshot when
	// there is none.
	Restore(ctx context.Context, t Target, id string) error
	// DeleteSnapshots removes every snapshot of the target (clear).
	DeleteSnapshots(ctx context.Context, t Target) error
}
