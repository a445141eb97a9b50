// Package procfs parses the /proc files more than one part of the agent
// reads: the mount table (discovery lists mounts; file-level copies skip
// virtual file systems) and "Key: value kB" files (meminfo, status).
package procfs

import (
	"strconv"
	"strings"
)

// Mount is one line of /proc/self/mountinfo (or /proc/mounts).
type Mount struct {
	Dev        string // "major:minor" ("" from /proc/mounts)
	Root       string // the path inside the file system that is mounted
	MountPoint string
	FSType     string
	Source     string
	SuperOpts  string
}

// ParseMountinfo reads proc(5)'s mountinfo format:
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Lines that do not have that shape are skipped. Fields are split at single
// spaces, as the kernel writes them: it escapes only space, tab, newline and
// backslash in a name, so a mount point may hold a vertical tab, a carriage
// return or a non-breaking space, which strings.Fields would split at.
func ParseMountinfo(data string) []Mount {
	var out []Mount
	for _, ln := range strings.Split(data, "\n") {
		f := fields(ln)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		// No file system type is "" or "-": such a line is broken.
		if sep < 0 || len(f) < sep+3 || f[sep+1] == "" || f[sep+1] == "-" {
			continue
		}
		major, minor, ok := strings.Cut(f[2], ":")
		if !ok || !isUint(major) || !isUint(minor) {
			continue
		}
		m := Mount{Dev: f[2], Root: Unescape(f[3]), MountPoint: Unescape(f[4]), FSType: f[sep+1],
			Source: Unescape(f[sep+2])}
		if len(f) > sep+3 {
			m.SuperOpts = f[sep+3]
		}
		out = append(out, m)
	}
	return out
}

// ParseMounts reads /proc/mounts (fstab format), the fallback when
// mountinfo is missing: no device numbers. Fields are split as in
// ParseMountinfo.
func ParseMounts(data string) []Mount {
	var out []Mount
	for _, ln := range strings.Split(data, "\n") {
		f := fields(ln)
		if len(f) < 4 || f[2] == "" {
			continue
		}
		out = append(out, Mount{Root: "/", Source: Unescape(f[0]), MountPoint: Unescape(f[1]),
			FSType: f[2], SuperOpts: f[3]})
	}
	return out
}

// fields splits a mount table line at its single spaces, trailing spaces
// dropped first.
func fields(ln string) []string {
	return strings.Split(strings.TrimRight(ln, " "), " ")
}

func isUint(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// Unescape undoes the kernel's \ooo escapes of space, tab, newline and
// backslash in mount and swap fields.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Value reads the number of a "Key:   123 kB" line (/proc/meminfo,
// /proc/<pid>/status) and whether it is in kB; ok is false when the key is
// missing or its value is not a number.
func Value(data, key string) (n uint64, kB bool, ok bool) {
	for _, ln := range strings.Split(data, "\n") {
		k, v, found := strings.Cut(ln, ":")
		if !found || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false, false
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, false, false
		}
		return n, len(f) > 1 && f[1] == "kB", true
	}
	return 0, false, false
}
