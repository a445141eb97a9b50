package discover

import (
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/smsflow/smsflow/agent/procfs"
)

// dmi is what /sys/class/dmi/id tells about the machine.
type dmi struct {
	SysVendor, ProductName, ProductVersion, BIOSVendor, ChassisAssetTag string
}

func readDMI(e *env) dmi {
	const d = "/sys/class/dmi/id/"
	return dmi{SysVendor: e.line(d + "sys_vendor"), ProductName: e.line(d + "product_name"),
		ProductVersion: e.line(d + "product_version"), BIOSVendor: e.line(d + "bios_vendor"),
		ChassisAssetTag: e.line(d + "chassis_asset_tag")}
}

// azureAssetTag is the chassis asset tag of every Azure VM.
const azureAssetTag = "7783-7084-3265-9085-8269-3286-77"

// platform maps DMI to the spec's platform enum.
func (m dmi) platform() string {
	has := func(s, sub string) bool { return strings.Contains(strings.ToLower(s), sub) }
	switch {
	case has(m.ChassisAssetTag, "huaweicloud") || has(m.SysVendor, "huawei"):
		return "hw"
	case has(m.SysVendor, "alibaba") || has(m.ProductName, "alibaba"):
		return "ali"
	case has(m.SysVendor, "amazon") || has(m.BIOSVendor, "amazon") || has(m.ProductVersion, "amazon"):
		return "aws"
	case m.ChassisAssetTag == azureAssetTag:
		return "azure"
	case has(m.SysVendor, "microsoft"):
		return "hyperv"
	case has(m.SysVendor, "google") || has(m.ProductName, "google compute engine"):
		return "gcp"
	case has(m.SysVendor, "tencent"):
		return "tencent"
	case has(m.SysVendor, "vmware") || has(m.ProductName, "vmware"):
		return "vmware"
	}
	return "other"
}

// virtualMachine tells a VM by its DMI names.
func (m dmi) virtualMachine() bool {
	s := strings.ToLower(m.SysVendor + " " + m.ProductName + " " + m.BIOSVendor)
	for _, k := range []string{"qemu", "kvm", "vmware", "virtualbox", "innotek", "xen", "bochs", "openstack",
		"amazon ec2", "google", "alibaba", "tencent", "microsoft corporation", "parallels", "cloud"} {
		if strings.Contains(s, k) {
			return true
		}
	}
	return false
}

// cpuFlags is the flags line of the first CPU in /proc/cpuinfo.
func cpuFlags(cpuinfo string) map[string]bool {
	out := map[string]bool{}
	for _, ln := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(ln, ":")
		if ok && (strings.TrimSpace(k) == "flags" || strings.TrimSpace(k) == "Features") {
			for _, f := range strings.Fields(v) {
				out[f] = true
			}
			break
		}
	}
	return out
}

// virtualization is HVM for a hardware-virtualized guest (the CPU's
// hypervisor flag, DMI, /sys/hypervisor), PV for a Xen paravirtualized one,
// "" for bare metal.
func virtualization(e *env, m dmi, flags map[string]bool) string {
	if strings.EqualFold(e.line("/sys/hypervisor/guest_type"), "PV") {
		return "PV"
	}
	if flags["hypervisor"] || m.virtualMachine() || e.line("/sys/hypervisor/type") != "" {
		return "HVM"
	}
	if e.exists("/proc/xen") {
		return "PV"
	}
	return ""
}

// paravirtualized tells whether the guest uses paravirtual (virtio, Xen)
// devices.
func paravirtualized(e *env, virt string) bool {
	return virt == "PV" || len(e.names("/sys/bus/virtio/devices")) > 0 || len(e.names("/sys/bus/xen/devices")) > 0
}

// bootLoader is GRUB (legacy or GRUB 2: the spec's enum has one value for
// both), LILO, or "" when neither is found.
func bootLoader(e *env) string {
	for _, p := range []string{"/boot/grub2/grub.cfg", "/boot/grub/grub.cfg", "/boot/grub/menu.lst", "/boot/grub/grub.conf",
		"/boot/grub2", "/etc/default/grub"} {
		if e.exists(p) {
			return "GRUB"
		}
	}
	if m, _ := filepath.Glob(e.path("/boot/efi/EFI") + "/*/grub*"); len(m) > 0 {
		return "GRUB"
	}
	if e.exists("/etc/lilo.conf") {
		return "LILO"
	}
	return ""
}

// rawDevices lists the raw(8) bindings (/dev/raw/rawN), ";"-separated.
func rawDevices(e *env) string {
	var out []string
	for _, n := range e.names("/dev/raw") {
		if n != "rawctl" {
			out = append(out, "/dev/raw/"+n)
		}
	}
	return strings.Join(out, ";")
}

// parseCPUList counts the CPUs of a sysfs list ("0-3,5,7-8").
func parseCPUList(s string) int {
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return 0
		}
		if !isRange {
			n++
			continue
		}
		b, err := strconv.Atoi(hi)
		if err != nil || b < a || b-a > 1<<20 {
			return 0
		}
		n += b - a + 1
	}
	return n
}

// cpuCount is the number of online CPUs, else the processors of cpuinfo.
func cpuCount(e *env) int {
	if n := parseCPUList(e.read("/sys/devices/system/cpu/online")); n > 0 {
		return n
	}
	n := 0
	for _, ln := range strings.Split(e.read("/proc/cpuinfo"), "\n") {
		if k, _, ok := strings.Cut(ln, ":"); ok && strings.TrimSpace(k) == "processor" {
			n++
		}
	}
	return n
}

// meminfo reads a /proc/meminfo value in bytes.
func meminfo(data, key string) (int64, bool) {
	n, kB, ok := procfs.Value(data, key)
	if !ok || n > math.MaxInt64/1024 {
		return 0, false
	}
	if kB {
		n *= 1024
	}
	return int64(n), true
}
