//go:build linux

package discover

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/sms"
)

// These tests run Discover on the machine that runs them and compare with
// what its own files (read here independently) say.

func liveSource(t *testing.T) *Source {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("discovery reads Linux's /proc and /sys")
	}
	s, err := Discover(context.Background(), Options{Root: "/", AgentVersion: "test"})
	require.NoError(t, err)
	return s
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("%s: %v", p, err)
	}
	return strings.TrimSpace(string(b))
}

func TestLiveBodyShape(t *testing.T) {
	s := liveSource(t)
	body, err := json.Marshal(s)
	require.NoError(t, err)
	checkRegisterBody(t, body)
	assert.Equal(t, sms.Linux, s.OSType)
	assert.Equal(t, "test", s.AgentVersion)
	assert.NotEmpty(t, s.Name)
}

func TestLiveOS(t *testing.T) {
	s := liveSource(t)
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(readTrim(t, "/etc/os-release")))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = strings.Trim(v, `"'`)
		}
	}
	id, ver := kv["ID"], kv["VERSION_ID"]
	if ver == "" {
		t.Skip("os-release has no VERSION_ID (a rolling release)")
	}
	assert.True(t, strings.HasPrefix(s.BlockCheck.ReleaseVersion, ver) || strings.HasPrefix(ver, s.BlockCheck.ReleaseVersion),
		"release_version %q vs VERSION_ID %q", s.BlockCheck.ReleaseVersion, ver)
	major, _, _ := strings.Cut(ver, ".")
	assert.True(t, strings.HasPrefix(s.OSVersion, releaseType(id)+"_"+strings.TrimLeft(major, "0")) ||
		strings.HasPrefix(s.OSVersion, "SUSE"+major), "os_version %q for ID=%s VERSION_ID=%s", s.OSVersion, id, ver)
	assert.True(t, strings.HasSuffix(s.OSVersion, "BIT"), s.OSVersion)

	assert.Equal(t, readTrim(t, "/proc/sys/kernel/osrelease"), s.KernelVersion)
	var lbc BlockCheck
	require.NoError(t, json.Unmarshal([]byte(s.LinuxBlockCheck), &lbc))
	assert.Equal(t, s.BlockCheck, lbc)
	assert.Equal(t, s.KernelVersion, lbc.KernelVersion)
	assert.True(t, strings.HasPrefix(s.KernelVersion, lbc.KernelSimplification) && lbc.KernelSimplification != "")
	if u, err := exec.Command("uname", "-m").Output(); err == nil {
		assert.Equal(t, strings.TrimSpace(string(u)), lbc.Architecture)
	}
	if h, err := os.Hostname(); err == nil {
		assert.Equal(t, h, s.Hostname)
	}
	if id, err := os.ReadFile("/etc/machine-id"); err == nil {
		assert.Equal(t, strings.TrimSpace(string(id)), s.MachineID)
	}
	_, err := os.Stat("/sys/firmware/efi")
	assert.Equal(t, map[bool]string{true: "UEFI", false: "BIOS"}[err == nil], s.Firmware)
}

func TestLiveCPUAndMemory(t *testing.T) {
	s := liveSource(t)
	var memKB int64
	for _, ln := range strings.Split(readTrim(t, "/proc/meminfo"), "\n") {
		if v, ok := strings.CutPrefix(ln, "MemTotal:"); ok {
			memKB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	require.NotZero(t, memKB)
	assert.Equal(t, memKB*1024, s.Memory)

	procs := 0
	for _, ln := range strings.Split(readTrim(t, "/proc/cpuinfo"), "\n") {
		if strings.HasPrefix(ln, "processor") {
			procs++
		}
	}
	if procs > 0 {
		assert.Equal(t, int32(procs), s.CPUQuantity)
	}
	assert.GreaterOrEqual(t, s.CPUQuantity, int32(runtime.NumCPU()))
}

func virtualDisk(n string) bool {
	for _, p := range []string{"loop", "ram", "zram", "sr", "dm-", "md", "fd", "nbd", "nullb"} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

func TestLiveDisks(t *testing.T) {
	s := liveSource(t)
	byName := map[string]Disk{}
	for _, d := range s.Disks {
		byName[d.Name] = d
	}
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		t.Skip(err)
	}
	want := 0
	for _, e := range ents {
		n := e.Name()
		sectors, err := strconv.ParseInt(readTrim(t, "/sys/block/"+n+"/size"), 10, 64)
		if err != nil || sectors == 0 || virtualDisk(n) {
			continue
		}
		want++
		name := "/dev/" + strings.ReplaceAll(n, "!", "/")
		d, ok := byName[name]
		if !assert.True(t, ok, "disk %s not reported", name) {
			continue
		}
		assert.Equal(t, sectors*512, d.Size, name)
		parts, _ := filepath.Glob("/sys/block/" + n + "/" + n + "*/partition")
		for _, pf := range parts {
			dir := filepath.Dir(pf)
			psec, _ := strconv.ParseInt(readTrim(t, dir+"/size"), 10, 64)
			if psec <= 2 { // an MBR extended partition
				continue
			}
			pname := "/dev/" + strings.ReplaceAll(filepath.Base(dir), "!", "/")
			found := false
			for _, pv := range d.PhysicalVolumes {
				if pv.Name == pname {
					found = true
					assert.Equal(t, psec*512, pv.Size, pname)
				}
			}
			assert.True(t, found, "partition %s not reported", pname)
		}
	}
	assert.Len(t, s.Disks, want)

	// The disk that holds / (when / is a block device) boots or holds the
	// OS, and reports the file system's usage as statfs counts it.
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs("/", &st))
	used := (int64(st.Blocks) - int64(st.Bfree)) * int64(st.Frsize)
	for _, d := range s.Disks {
		for _, pv := range d.PhysicalVolumes {
			if pv.MountPoint != "/" {
				continue
			}
			assert.Contains(t, []string{"BOOT", "OS"}, d.DeviceUse)
			assert.True(t, d.OSDisk)
			assert.InDelta(t, used, pv.UsedSize, 256<<20, "used size of / (%s)", pv.Name)
			assert.Equal(t, int64(st.Files), pv.InodeNums)
		}
	}
}

func TestLiveNetworks(t *testing.T) {
	s := liveSource(t)
	byName := map[string]Network{}
	for _, n := range s.Networks {
		byName[n.Name] = n
	}
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Skip(err)
	}
	want := 0
	for _, e := range ents {
		n := e.Name()
		if fi, err := os.Stat("/sys/class/net/" + n); n == "lo" || err != nil || !fi.IsDir() {
			continue
		}
		want++
		got, ok := byName[n]
		if !assert.True(t, ok, "interface %s not reported", n) {
			continue
		}
		assert.Equal(t, strings.ToLower(readTrim(t, "/sys/class/net/"+n+"/address")), got.MAC, n)
		mtu, _ := strconv.Atoi(readTrim(t, "/sys/class/net/"+n+"/mtu"))
		assert.Equal(t, int32(mtu), got.MTU, n)
		if ifc, err := net.InterfaceByName(n); err == nil {
			addrs, _ := ifc.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					assert.Equal(t, ipn.IP.String(), got.IP, n)
					assert.Equal(t, net.IP(ipn.Mask[len(ipn.Mask)-4:]).String(), got.Netmask, n)
					break
				}
			}
		}
	}
	assert.Len(t, s.Networks, want)
	if s.IP != "" {
		found := false
		for _, n := range s.Networks {
			found = found || n.IP == s.IP
		}
		assert.True(t, found, "source ip %s is no interface's", s.IP)
	}
}

func TestLiveTools(t *testing.T) {
	s := liveSource(t)
	for tool, got := range map[string]bool{"rsync": s.HasRsync, "tc": s.HasTc} {
		want := false
		for _, dir := range []string{"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/local/sbin"} {
			if fi, err := os.Stat(filepath.Join(dir, tool)); err == nil && fi.Mode()&0o111 != 0 {
				want = true
			}
		}
		assert.Equal(t, want, got, tool)
	}
}
