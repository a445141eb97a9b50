// Package provider creates and manages target servers in the cloud smsflow
// migrates into. Each cloud is an implementation of Provider; "local" keeps
// targets as folders of disk images on this machine (demos, tests, and
// migrations into a hypervisor that boots those images).
package provider

import (
	"context"
	"errors"

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
	Name     string
	OSType   sms.OSType
	Type     sms.TaskType
	Disks    []Disk
	ExistVM  string // an existing target to bind instead of creating one
	Template string // template id (flavor, network) when the provider uses one
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

// ReceiverTask is what a receiver needs to know of its task.
type ReceiverTask struct {
	TaskID   string
	DomainID string
	Type     sms.TaskType
	Creds    transport.Creds
}

// ReceiverHost is a provider that runs the data plane's receiving end for
// its targets (the local provider, on loopback). Receiver starts it, or
// finds it running, and returns the address the agent dials.
type ReceiverHost interface {
	Receiver(ctx context.Context, t Target, task ReceiverTask) (addr string, err error)
}
