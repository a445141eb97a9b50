package discover

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"unicode/utf8"
)

// checkRegisterBody checks a register body the way the server's
// web/source_body.go validates POST /v3/sources for a Linux source (this
// package may not import web): required keys present and of the right JSON
// type, enums, string lengths, integer ranges.
func checkRegisterBody(t errorer, body []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("body is not a JSON object: %v", err)
		return
	}
	c := &shape{t: t}
	c.str(m, "name", true, 1, 255)
	c.str(m, "ip", true, 0, 255)
	c.str(m, "hostname", false, 0, 255)
	c.enum(m, "os_type", true, false, "LINUX")
	c.str(m, "os_version", true, 0, 255)
	c.str(m, "virtualization_type", false, 0, 255)
	c.str(m, "linux_block_check", false, 0, 1024)
	c.enum(m, "firmware", false, false, "BIOS", "UEFI")
	c.num(m, "cpu_quantity", false, 0, 65535)
	c.num(m, "memory", false, 0, 1<<63-1)
	c.str(m, "raw_devices", false, 0, 255)
	c.enum(m, "boot_loader", true, true, "GRUB", "LILO")
	c.str(m, "agent_version", false, 0, 255)
	c.str(m, "kernel_version", false, 0, 255)
	c.enum(m, "platform", false, false, "hw", "ali", "aws", "azure", "gcp", "tencent", "vmware", "hyperv", "other")
	c.str(m, "machine_id", false, 1, 128)
	if v, ok := m["io_read_wait"]; ok {
		if f, isNum := v.(float64); !isNum || f < 0 || f > 10000 {
			t.Errorf("io_read_wait: %v", v)
		}
	}
	for _, k := range []string{"has_rsync", "paravirtualization", "has_tc"} {
		c.boolean(m, k, true)
	}
	if lbc, ok := m["linux_block_check"].(string); ok {
		var v struct {
			Architecture string `json:"architecture"`
		}
		if err := json.Unmarshal([]byte(lbc), &v); err != nil || v.Architecture == "" {
			t.Errorf("linux_block_check %q: no architecture (envcheck reads it)", lbc)
		}
	}
	for i, d := range c.arr(m, "disks", false) {
		d := c.obj(d, fmt.Sprintf("disks[%d]", i))
		c.str(d, "name", true, 0, 255)
		c.enum(d, "partition_style", true, false, "MBR", "GPT")
		c.enum(d, "device_use", true, false, "BOOT", "OS", "NORMAL", "VOLUME_GROUP", "BTRFS")
		c.num(d, "size", true, 0, 1<<63-1)
		c.num(d, "used_size", true, 0, 1<<63-1)
		c.boolean(d, "os_disk", false)
		for j, p := range c.arr(d, "physical_volumes", true) {
			p := c.obj(p, fmt.Sprintf("disks[%d].physical_volumes[%d]", i, j))
			for _, k := range []string{"device_use", "file_system", "mount_point", "name", "uuid"} {
				c.str(p, k, false, 0, 255)
			}
			c.num(p, "index", false, 0, 1<<31-1)
			c.num(p, "size", false, 0, 1<<63-1)
			c.num(p, "used_size", false, 0, 1<<63-1)
			c.num(p, "inode_size", false, 0, 1<<31-1)
			c.num(p, "inode_nums", false, 0, 1<<63-1)
		}
	}
	for i, b := range c.arr(m, "btrfs_list", true) {
		b := c.obj(b, fmt.Sprintf("btrfs_list[%d]", i))
		for _, k := range []string{"name", "label", "uuid", "device", "data_profile", "system_profile", "metadata_profile",
			"global_reserve1", "default_subvolid", "default_subvol_name", "default_subvol_mountpath"} {
			c.str(b, k, true, 0, 255)
		}
		c.num(b, "size", true, 0, 1<<63-1)
		c.num(b, "nodesize", true, 0, 1<<63-1)
		c.num(b, "sectorsize", true, 0, 1<<31-1)
		c.num(b, "g_vol_used_size", true, 0, 1<<63-1)
		for j, s := range c.arr(b, "subvolumn", true) {
			s := c.obj(s, fmt.Sprintf("btrfs_list[%d].subvolumn[%d]", i, j))
			for _, k := range []string{"uuid", "is_snapshot", "subvol_id", "parent_id", "subvol_name", "subvol_mount_path"} {
				c.str(s, k, true, 0, 255)
			}
		}
	}
	for i, g := range c.arr(m, "volume_groups", true) {
		g := c.obj(g, fmt.Sprintf("volume_groups[%d]", i))
		c.str(g, "components", false, 0, 255)
		c.str(g, "name", false, 0, 255)
		c.num(g, "size", false, 0, 1<<63-1)
		c.num(g, "free_size", false, 0, 1<<63-1)
		lvs := c.arr(g, "logical_volumes", false)
		if len(lvs) > 255 {
			t.Errorf("volume_groups[%d]: %d logical volumes", i, len(lvs))
		}
		for j, l := range lvs {
			l := c.obj(l, fmt.Sprintf("volume_groups[%d].logical_volumes[%d]", i, j))
			c.num(l, "block_count", false, 0, 1<<31-1)
			c.num(l, "block_size", false, 0, 1048576)
			c.str(l, "file_system", true, 0, 255)
			c.num(l, "inode_size", true, 0, 1<<31-1)
			c.num(l, "inode_nums", false, 0, 1<<63-1)
			c.str(l, "device_use", false, 0, 255)
			c.str(l, "mount_point", true, 0, 256)
			c.str(l, "name", true, 0, 1024)
			c.num(l, "size", true, 0, 1<<63-1)
			c.num(l, "used_size", true, 0, 1<<63-1)
			c.num(l, "free_size", true, 0, 1<<63-1)
		}
	}
	for i, n := range c.arr(m, "networks", false) {
		n := c.obj(n, fmt.Sprintf("networks[%d]", i))
		for _, k := range []string{"name", "ip", "netmask", "gateway", "mac"} {
			c.str(n, k, true, 0, 255)
		}
		c.str(n, "ipv6", false, 0, 255)
		c.num(n, "mtu", false, 0, 1<<31-1)
	}
}

// errorer is the part of testing.TB the checker uses.
type errorer interface {
	Helper()
	Errorf(format string, args ...any)
}

// recorder is an errorer that only remembers that it failed.
type recorder struct{ failed bool }

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }

type shape struct{ t errorer }

func (c *shape) get(m map[string]any, k string, required bool) (any, bool) {
	v, ok := m[k]
	if !ok || v == nil {
		if required {
			c.t.Errorf("%s: required, absent or null", k)
		}
		return nil, false
	}
	return v, true
}

func (c *shape) str(m map[string]any, k string, required bool, minLen, maxLen int) {
	v, ok := c.get(m, k, required)
	if !ok {
		return
	}
	s, isStr := v.(string)
	if !isStr {
		c.t.Errorf("%s: not a string: %v", k, v)
		return
	}
	if n := utf8.RuneCountInString(s); n < minLen || n > maxLen {
		c.t.Errorf("%s: %d characters, want %d..%d", k, n, minLen, maxLen)
	}
}

func (c *shape) enum(m map[string]any, k string, required, allowEmpty bool, allowed ...string) {
	v, ok := c.get(m, k, required)
	if !ok {
		return
	}
	s, _ := v.(string)
	if (s == "" && allowEmpty) || slices.Contains(allowed, s) {
		return
	}
	c.t.Errorf("%s: %v not one of %v", k, v, allowed)
}

func (c *shape) num(m map[string]any, k string, required bool, lo, hi float64) {
	v, ok := c.get(m, k, required)
	if !ok {
		return
	}
	f, isNum := v.(float64)
	if !isNum || f != float64(int64(f)) || f < lo || f > hi {
		c.t.Errorf("%s: %v is not an integer in %g..%g", k, v, lo, hi)
	}
}

func (c *shape) boolean(m map[string]any, k string, required bool) {
	if v, ok := c.get(m, k, required); ok {
		if _, isBool := v.(bool); !isBool {
			c.t.Errorf("%s: not a boolean: %v", k, v)
		}
	}
}

func (c *shape) arr(m map[string]any, k string, required bool) []any {
	v, ok := c.get(m, k, required)
	if !ok {
		return nil
	}
	a, isArr := v.([]any)
	if !isArr {
		c.t.Errorf("%s: not an array: %v", k, v)
	}
	return a
}

func (c *shape) obj(v any, path string) map[string]any {
	o, ok := v.(map[string]any)
	if !ok {
		c.t.Errorf("%s: not an object: %v", path, v)
	}
	return o
}

// The checker must catch what the server refuses.
func TestCheckRegisterBodyFails(t *testing.T) {
	for name, body := range map[string]string{
		"null btrfs_list":       `{"name":"a","ip":"","os_type":"LINUX","os_version":"X","boot_loader":"","has_rsync":true,"paravirtualization":true,"has_tc":true,"btrfs_list":null,"volume_groups":[]}`,
		"bad boot_loader":       `{"name":"a","ip":"","os_type":"LINUX","os_version":"X","boot_loader":"GRUB2","has_rsync":true,"paravirtualization":true,"has_tc":true,"btrfs_list":[],"volume_groups":[]}`,
		"empty name":            `{"name":"","ip":"","os_type":"LINUX","os_version":"X","boot_loader":"","has_rsync":true,"paravirtualization":true,"has_tc":true,"btrfs_list":[],"volume_groups":[]}`,
		"no partition_style":    `{"name":"a","ip":"","os_type":"LINUX","os_version":"X","boot_loader":"","has_rsync":true,"paravirtualization":true,"has_tc":true,"btrfs_list":[],"volume_groups":[],"disks":[{"name":"/dev/vda","device_use":"BOOT","size":1,"used_size":1,"physical_volumes":[]}]}`,
		"physical_volumes null": `{"name":"a","ip":"","os_type":"LINUX","os_version":"X","boot_loader":"","has_rsync":true,"paravirtualization":true,"has_tc":true,"btrfs_list":[],"volume_groups":[],"disks":[{"name":"/dev/vda","partition_style":"MBR","device_use":"BOOT","size":1,"used_size":1}]}`,
	} {
		r := &recorder{}
		checkRegisterBody(r, []byte(body))
		if !r.failed {
			t.Errorf("%s: accepted", name)
		}
	}
}
