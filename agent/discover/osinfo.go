package discover

import (
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/smsflow/smsflow/internal/sms"
)

// parseOSRelease reads os-release(5): KEY=value lines, the value optionally
// in double quotes (with \ escapes) or single quotes; comments and lines that
// are not assignments are skipped.
func parseOSRelease(data string) map[string]string {
	out := map[string]string{}
	for _, ln := range strings.Split(data, "\n") {
		ln = strings.TrimSpace(ln)
		if ln == "" || ln[0] == '#' {
			continue
		}
		eq := strings.IndexByte(ln, '=')
		if eq <= 0 {
			continue
		}
		key := ln[:eq]
		if !validKey(key) {
			continue
		}
		out[key] = unquote(strings.TrimSpace(ln[eq+1:]))
	}
	return out
}

func validKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// unquote undoes shell-style quoting of one os-release value.
func unquote(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '"':
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			c := v[i]
			if c == '"' {
				return b.String()
			}
			if c == '\\' && i+1 < len(v) {
				i++
				c = v[i]
			}
			b.WriteByte(c)
		}
		return b.String()
	case '\'':
		if j := strings.IndexByte(v[1:], '\''); j >= 0 {
			return v[1 : 1+j]
		}
		return v[1:]
	}
	if i := strings.IndexAny(v, " \t#"); i >= 0 {
		v = v[:i]
	}
	return v
}

// osInfo is the release of a Linux machine.
type osInfo struct {
	ID      string // os-release ID: centos, ubuntu, sles, ...
	Version string // the most precise version known: 7.9.2009, 22.04, 12.2
}

var versionRE = regexp.MustCompile(`\d+(\.\d+)+|\d+`)

// refinable are the distributions whose os-release VERSION_ID lacks the
// minor release that another file in /etc has.
var refinable = map[string][]string{
	"centos":    {"/etc/centos-release", "/etc/redhat-release", "/etc/system-release"},
	"rhel":      {"/etc/redhat-release", "/etc/system-release"},
	"rocky":     {"/etc/rocky-release", "/etc/redhat-release"},
	"almalinux": {"/etc/almalinux-release", "/etc/redhat-release"},
	"ol":        {"/etc/oracle-release", "/etc/redhat-release"},
	"debian":    {"/etc/debian_version"},
}

// readOS finds the release from /etc/os-release (or /usr/lib/os-release),
// made more precise from the distribution's own release file, or from the
// older release files alone (CentOS 6, SLES 11) when there is no os-release.
func readOS(e *env) osInfo {
	data := e.read("/etc/os-release")
	if data == "" {
		data = e.read("/usr/lib/os-release")
	}
	if data != "" {
		kv := parseOSRelease(data)
		info := osInfo{ID: strings.ToLower(kv["ID"]), Version: kv["VERSION_ID"]}
		for _, f := range refinable[info.ID] {
			if v := versionRE.FindString(e.read(f)); v != "" {
				if sameMajor(v, info.Version) && len(v) > len(info.Version) {
					info.Version = v
				}
				break
			}
		}
		return info
	}
	for _, f := range []string{"/etc/centos-release", "/etc/redhat-release", "/etc/system-release"} {
		if s := e.line(f); s != "" {
			return osInfo{ID: idFromName(s), Version: versionRE.FindString(s)}
		}
	}
	if s := e.read("/etc/SuSE-release"); s != "" {
		return parseSuSERelease(s)
	}
	if s := e.read("/etc/lsb-release"); s != "" {
		kv := parseOSRelease(s)
		return osInfo{ID: strings.ToLower(kv["DISTRIB_ID"]), Version: kv["DISTRIB_RELEASE"]}
	}
	if v := versionRE.FindString(e.read("/etc/debian_version")); v != "" {
		return osInfo{ID: "debian", Version: v}
	}
	return osInfo{}
}

func sameMajor(a, b string) bool {
	ma, _, _ := strings.Cut(a, ".")
	mb, _, _ := strings.Cut(b, ".")
	return ma != "" && ma == mb
}

// idFromName maps a release line ("CentOS release 6.10 (Final)") to an
// os-release ID.
func idFromName(s string) string {
	l := strings.ToLower(s)
	switch {
	case strings.Contains(l, "centos"):
		return "centos"
	case strings.Contains(l, "red hat"):
		return "rhel"
	case strings.Contains(l, "oracle"):
		return "ol"
	case strings.Contains(l, "rocky"):
		return "rocky"
	case strings.Contains(l, "alma"):
		return "almalinux"
	case strings.Contains(l, "euleros"):
		return "euleros"
	case strings.Contains(l, "fedora"):
		return "fedora"
	case strings.Contains(l, "amazon"):
		return "amzn"
	}
	f := strings.Fields(l)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// parseSuSERelease reads SLES 11's /etc/SuSE-release (VERSION and
// PATCHLEVEL lines).
func parseSuSERelease(s string) osInfo {
	info := osInfo{ID: "sles"}
	if strings.Contains(strings.ToLower(s), "opensuse") {
		info.ID = "opensuse"
	}
	var ver, patch string
	for _, ln := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(ln, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "VERSION":
			ver = strings.TrimSpace(v)
		case "PATCHLEVEL":
			patch = strings.TrimSpace(v)
		}
	}
	info.Version = ver
	if patch != "" && patch != "0" {
		info.Version = ver + "." + patch
	}
	return info
}

// releaseTypes names distributions the way the spec's os_version values
// do (CENTOS_7_4_64BIT, REDHAT_7_3_64BIT, SUSE12_64BIT_SP2).
var releaseTypes = map[string]string{
	"centos": "CENTOS", "rhel": "REDHAT", "ubuntu": "UBUNTU", "debian": "DEBIAN",
	"sles": "SUSE", "sled": "SUSE", "sles_sap": "SUSE", "suse": "SUSE",
	"opensuse": "OPENSUSE", "opensuse-leap": "OPENSUSE", "opensuse-tumbleweed": "OPENSUSE",
	"fedora": "FEDORA", "ol": "ORACLE", "rocky": "ROCKY", "almalinux": "ALMALINUX",
	"openeuler": "OPENEULER", "euleros": "EULEROS", "hce": "HCE", "kylin": "KYLIN",
	"uos": "UOS", "amzn": "AMAZON", "alinux": "ALIBABA", "anolis": "ANOLIS",
	"tencentos": "TENCENTOS", "opencloudos": "OPENCLOUDOS", "arch": "ARCH", "gentoo": "GENTOO",
}

func releaseType(id string) string {
	if id == "" {
		return string(sms.Linux) // the OS family stands for an unknown distribution
	}
	if t, ok := releaseTypes[strings.ToLower(id)]; ok {
		return t
	}
	var b strings.Builder
	for _, c := range strings.ToUpper(id) {
		if c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return string(sms.Linux) // the OS family stands for an unknown distribution
	}
	return b.String()
}

// versionParts is up to two numeric components of a version, without
// leading zeros ("22.04" -> 22, 4; "7.9.2009" -> 7, 9).
func versionParts(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || len(out) == 2 {
			break
		}
		out = append(out, strconv.Itoa(n))
	}
	return out
}

// osVersion builds the os_version of the spec's examples: TYPE_MAJOR_MINOR_
// <bits>BIT (CENTOS_7_4_64BIT, UBUNTU_18_4_64BIT), and SUSE's own shape
// SUSE12_64BIT_SP2.
func osVersion(typ, version, arch string) string {
	bits := archBits(arch)
	parts := versionParts(version)
	if typ == "SUSE" && len(parts) > 0 {
		s := "SUSE" + parts[0] + "_" + bits + "BIT"
		if len(parts) > 1 && parts[1] != "0" {
			s += "_SP" + parts[1]
		}
		return s
	}
	s := typ
	for _, p := range parts {
		s += "_" + p
	}
	return s + "_" + bits + "BIT"
}

func archBits(arch string) string {
	switch arch {
	case "i386", "i486", "i586", "i686", "x86", "armv6l", "armv7l", "arm", "mips", "mipsel", "ppc", "s390":
		return "32"
	}
	return "64"
}

// goArchs maps GOARCH to uname's machine names.
var goArchs = map[string]string{
	"amd64": "x86_64", "386": "i686", "arm64": "aarch64", "arm": "armv7l", "ppc64le": "ppc64le",
	"ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64", "loong64": "loongarch64",
	"mips64le": "mips64", "mips64": "mips64", "mipsle": "mips", "mips": "mips",
}

// kernelArchSuffix finds the architecture in kernel release names that end
// with it (3.10.0-1160.el7.x86_64).
var kernelArchSuffix = regexp.MustCompile(`\.(x86_64|aarch64|i686|ppc64le|s390x)$`)

// readArch is the machine architecture: /proc/sys/kernel/arch, uname(2) on
// the live machine, the kernel release's suffix, else the agent's own build.
func readArch(e *env, kernel string) string {
	if a := e.line("/proc/sys/kernel/arch"); a != "" {
		return a
	}
	if e.live {
		if a := unameMachine(); a != "" {
			return a
		}
	}
	if m := kernelArchSuffix.FindStringSubmatch(kernel); m != nil {
		return m[1]
	}
	if a, ok := goArchs[runtime.GOARCH]; ok {
		return a
	}
	return runtime.GOARCH
}

var kernelSimpleRE = regexp.MustCompile(`^\d+(\.\d+)*`)

// kernelSimplification is the numeric head of a kernel release
// ("3.10.0-1160.el7.x86_64" -> "3.10.0").
func kernelSimplification(release string) string {
	return kernelSimpleRE.FindString(release)
}

// releaseVersion is the version linux_block_check reports: major.minor when
// a more precise version is known (7.9.2009 -> 7.9), else as found.
func releaseVersion(v string) string {
	p := strings.Split(v, ".")
	if len(p) > 2 {
		return p[0] + "." + p[1]
	}
	return v
}
