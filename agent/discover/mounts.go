package discover

import (
	"strings"

	"github.com/smsflow/smsflow/agent/procfs"
)

// mount is one line of the mount table (agent/procfs).
type mount = procfs.Mount

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
		out = append(out, procfs.Unescape(f[0]))
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
