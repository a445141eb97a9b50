package discover

import (
	"strconv"
	"strings"
)

// mount is one line of /proc/self/mountinfo.
type mount struct {
	Dev        string // "major:minor" ("" from /proc/mounts)
	Root       string // the path inside the file system that is mounted
	MountPoint string
	FSType     string
	Source     string
	SuperOpts  string
}

// parseMountinfo reads proc(5)'s mountinfo format:
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Lines that do not have that shape are skipped.
func parseMountinfo(data string) []mount {
	var out []mount
	for _, ln := range strings.Split(data, "\n") {
		f := strings.Fields(ln)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+3 {
			continue
		}
		maj, min, ok := strings.Cut(f[2], ":")
		if !ok || !isUint(maj) || !isUint(min) {
			continue
		}
		m := mount{Dev: f[2], Root: unescapeOctal(f[3]), MountPoint: unescapeOctal(f[4]), FSType: f[sep+1],
			Source: unescapeOctal(f[sep+2])}
		if len(f) > sep+3 {
			m.SuperOpts = f[sep+3]
		}
		out = append(out, m)
	}
	return out
}

// parseProcMounts reads /proc/mounts (fstab format), the fallback when
// mountinfo is missing: no device numbers.
func parseProcMounts(data string) []mount {
	var out []mount
	for _, ln := range strings.Split(data, "\n") {
		f := strings.Fields(ln)
		if len(f) < 4 {
			continue
		}
		out = append(out, mount{Root: "/", Source: unescapeOctal(f[0]), MountPoint: unescapeOctal(f[1]),
			FSType: f[2], SuperOpts: f[3]})
	}
	return out
}

func isUint(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// unescapeOctal undoes the kernel's \ooo escapes of space, tab, newline and
// backslash in mount fields.
func unescapeOctal(s string) string {
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

// opt finds key=value in a comma-separated option list.
func opt(opts, key string) (string, bool) {
	for _, o := range strings.Split(opts, ",") {
		if k, v, ok := strings.Cut(o, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// parseSwaps lists the device paths of /proc/swaps.
func parseSwaps(data string) []string {
	var out []string
	for i, ln := range strings.Split(data, "\n") {
		f := strings.Fields(ln)
		if i == 0 || len(f) < 2 || f[1] != "partition" {
			continue
		}
		out = append(out, unescapeOctal(f[0]))
	}
	return out
}

// parseUdev reads a udev database entry (/run/udev/data/b<maj>:<min>): the
// E:KEY=value lines.
func parseUdev(data string) map[string]string {
	out := map[string]string{}
	for _, ln := range strings.Split(data, "\n") {
		if !strings.HasPrefix(ln, "E:") {
			continue
		}
		if k, v, ok := strings.Cut(ln[2:], "="); ok {
			out[k] = v
		}
	}
	return out
}
