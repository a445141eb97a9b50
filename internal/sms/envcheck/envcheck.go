// Package envcheck runs the environment checks of a source server on the
// facts its agent reported (the "checks" of §4.1.3): whether smsflow can
// migrate it, and what will be degraded. It is pure: registration shows the
// results at once, and the migration workflow's check step runs it again.
package envcheck

import (
	"encoding/json"
	"strings"

	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/store"
)

// Results of a check (table 4-26).
const (
	OK    = "OK"
	Warn  = "WARN"
	Error = "ERROR"
)

// Facts are what the checks read.
type Facts struct {
	OSType          sms.OSType
	LinuxBlockCheck string
	Firmware        string
	HasRsync        *bool
	HasTc           *bool
	Disks           []store.SourceDisk
}

// Run returns one result per check, in a fixed order with fixed ids.
func Run(f Facts) []store.EnvironmentCheck {
	var out []store.EnvironmentCheck
	add := func(id int64, name, result, code, msg string, params ...string) {
		if params == nil {
			params = []string{}
		}
		c := store.EnvironmentCheck{ID: id, Name: name, Result: result, Params: params}
		if result != OK {
			c.ErrorCode, c.ErrorOrWarn = code, msg
			if len(params) > 0 {
				b, _ := json.Marshal(params)
				c.ErrorParams = string(b)
			}
		}
		out = append(out, c)
	}

	switch {
	case f.OSType.Valid():
		add(1, "os_type", OK, "", "")
	default:
		add(1, "os_type", Error, "SMS.6601", "Invalid OS type.", string(f.OSType))
	}

	arch := architecture(f.LinuxBlockCheck)
	switch {
	case arch == "" && f.OSType == sms.Linux:
		add(2, "architecture", Warn, "SMS.0206", "architecture not reported; only x86 servers can be migrated")
	case arch == "" || arch == "x86_64" || arch == "amd64" || arch == "i686" || arch == "i386":
		add(2, "architecture", OK, "", "")
	default:
		add(2, "architecture", Error, "SMS.0206", "Only x86 servers can be migrated.", arch)
	}

	boot := false
	for _, d := range f.Disks {
		u := ptr.Deref(d.DeviceUse)
		if u == "BOOT" || u == "OS" || ptr.Deref(d.OSDisk) {
			boot = true
		}
	}
	if boot {
		add(3, "boot_disk", OK, "", "")
	} else {
		add(3, "boot_disk", Error, "SMS.6531", "The boot partition does not exist.")
	}

	bad := ""
	for _, d := range f.Disks {
		if ps := ptr.Deref(d.PartitionStyle); ps != "" && ps != "MBR" && ps != "GPT" {
			bad = ptr.Deref(d.Name)
		}
	}
	if bad == "" {
		add(4, "partition_style", OK, "", "")
	} else {
		add(4, "partition_style", Error, "SMS.6508", "Incompatible disk format on the source server. Only GPT and MBR are compatible.", bad)
	}

	if f.OSType == sms.Linux {
		if f.HasRsync != nil && *f.HasRsync {
			add(5, "rsync", OK, "", "")
		} else {
			add(5, "rsync", Warn, "SMS.6517", "rsync not installed on the source server.")
		}
		if f.HasTc != nil && *f.HasTc {
			add(6, "tc", OK, "", "")
		} else {
			add(6, "tc", Warn, "", "tc is not installed: speed limits are enforced by the agent itself")
		}
	}
	return out
}

// Failed tells whether any check failed (the source is then unavailable).
func Failed(cs []store.EnvironmentCheck) bool {
	for _, c := range cs {
		if c.Result == Error {
			return true
		}
	}
	return false
}

func architecture(linuxBlockCheck string) string {
	if linuxBlockCheck == "" {
		return ""
	}
	var v struct {
		Architecture string `json:"architecture"`
	}
	if json.Unmarshal([]byte(linuxBlockCheck), &v) != nil {
		return ""
	}
	return strings.ToLower(v.Architecture)
}
