package procfs

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseMountinfo(t *testing.T) {
	data := `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
41 1 253:2 / / rw,relatime shared:1 master:3 propagate_from:2 - xfs /dev/vda2 rw,attr2
46 41 253:16 /a\040b /srv/with\040space\011tab rw - ext4 /dev/my\134disk rw
47 41 0:45 /@home /home rw - btrfs /dev/sdb rw,subvolid=257,subvol=/@home
garbage line
1 2 3:x / / rw - ext4 /dev/x rw
1 2 3:4 / / rw ext4 /dev/no-separator rw
9 8 7:6 / /short - tmpfs
10 9 0:50 / /nosuper rw - tmpfs tmpfs
49 41 0:51 / /mnt/nosource rw - tmpfs  rw
50 41 0:52 / /mnt/dashes rw - - tmpfs rw
` + "48 41 253:17 / /mnt/a\vb\v-\v- rw - ext4 /dev/vdc rw\n"
	assert.Equal(t, []Mount{
		{Dev: "98:0", Root: "/mnt1", MountPoint: "/mnt/parent", FSType: "ext3", Source: "/dev/root", SuperOpts: "rw,errors=continue"},
		{Dev: "253:2", Root: "/", MountPoint: "/", FSType: "xfs", Source: "/dev/vda2", SuperOpts: "rw,attr2"},
		{Dev: "253:16", Root: "/a b", MountPoint: "/srv/with space\ttab", FSType: "ext4", Source: `/dev/my\disk`, SuperOpts: "rw"},
		{Dev: "0:45", Root: "/@home", MountPoint: "/home", FSType: "btrfs", Source: "/dev/sdb", SuperOpts: "rw,subvolid=257,subvol=/@home"},
		{Dev: "0:50", Root: "/", MountPoint: "/nosuper", FSType: "tmpfs", Source: "tmpfs"},
		// An empty source is an empty field between two spaces.
		{Dev: "0:51", Root: "/", MountPoint: "/mnt/nosource", FSType: "tmpfs", Source: "", SuperOpts: "rw"},
		// The kernel leaves a vertical tab unescaped: it is part of the name.
		{Dev: "253:17", Root: "/", MountPoint: "/mnt/a\vb\v-\v-", FSType: "ext4", Source: "/dev/vdc", SuperOpts: "rw"},
	}, ParseMountinfo(data))
}

func TestParseMounts(t *testing.T) {
	assert.Equal(t, []Mount{{Root: "/", Source: "/dev/vda1", MountPoint: "/my disk", FSType: "ext4", SuperOpts: "rw"}},
		ParseMounts("/dev/vda1 /my\\040disk ext4 rw 0 0\nshort line\n"))
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`: "plain", `a\040b`: "a b", `\011tab\012nl`: "\ttab\nnl", `back\134slash`: `back\slash`,
		`\999not octal`: `\999not octal`, `short\04`: `short\04`, `end\`: `end\`,
	} {
		assert.Equal(t, want, Unescape(in), in)
	}
}

func TestValue(t *testing.T) {
	data := "MemTotal:        3880292 kB\nHugePages_Total:       4\nBad: x kB\nEmpty:\nVmRSS:\t  10240 kB\n"
	for _, tc := range []struct {
		key    string
		n      uint64
		kB, ok bool
	}{
		{"MemTotal", 3880292, true, true},
		{"HugePages_Total", 4, false, true},
		{"VmRSS", 10240, true, true},
		{"Bad", 0, false, false},
		{"Empty", 0, false, false},
		{"Mem", 0, false, false},
		{"Missing", 0, false, false},
	} {
		n, kB, ok := Value(data, tc.key)
		assert.Equal(t, tc.n, n, tc.key)
		assert.Equal(t, tc.kB, kB, tc.key)
		assert.Equal(t, tc.ok, ok, tc.key)
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add("41 1 253:2 / / rw,relatime shared:1 - xfs /dev/vda2 rw,attr2\n")
	f.Add("46 41 253:16 /a\\040b /srv/x\\011y rw master:1 propagate_from:2 - ext4 /dev/my\\134d rw\n")
	f.Add("32 28 0:45 /@data /srv/data rw - btrfs /dev/sdb rw,subvolid=256,subvol=/@data\n1 2 3:x / / rw - e /d r\n")
	f.Fuzz(func(t *testing.T, data string) {
		ms := ParseMountinfo(data)
		if len(ms) > strings.Count(data, "\n")+1 {
			t.Fatalf("%d mounts from %d lines", len(ms), strings.Count(data, "\n")+1)
		}
		for _, m := range ms {
			major, minor, ok := strings.Cut(m.Dev, ":")
			if !ok || !isUint(major) || !isUint(minor) || m.FSType == "" || m.FSType == "-" {
				t.Fatalf("bad mount %+v", m)
			}
		}
		for _, m := range ParseMounts(data) {
			if m.FSType == "" {
				t.Fatalf("bad mount %+v", m)
			}
		}
		Value(data, "MemTotal")
	})
}

// mangle escapes a name as the kernel's mangle() does for the mount tables:
// space, tab, newline and backslash as \ooo, nothing else.
func mangle(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// A valid mountinfo line, whatever its names hold once escaped as the kernel
// does, parses back to its fields. strings.Fields split a mount point at a
// vertical tab or a non-breaking space, which the kernel leaves as they are.
func FuzzMountinfoRoundTrip(f *testing.F) {
	f.Add("/", "/mnt/a\vb\v-\v-", "ext4", "/dev/vdb")
	f.Add("/a b", "/srv/x\u00a0-\u00a0y", "fuse.sshfs", "")
	f.Add("/@data", "/srv/data\r", "btrfs", "/dev/my\\disk")
	f.Fuzz(func(t *testing.T, root, mountPoint, fsType, source string) {
		if root == "" || mountPoint == "" || fsType == "" || fsType == "-" {
			t.Skip("the kernel writes no empty path or type, and no type is \"-\"")
		}
		want := Mount{Dev: "253:2", Root: root, MountPoint: mountPoint, FSType: mangle(fsType), Source: source, SuperOpts: "rw,attr2"}
		line := fmt.Sprintf("41 1 253:2 %s %s rw,relatime shared:1 - %s %s rw,attr2\n",
			mangle(root), mangle(mountPoint), mangle(fsType), mangle(source))
		got := ParseMountinfo(line)
		if len(got) != 1 || got[0] != want {
			t.Fatalf("%q parsed to %+v, want %+v", line, got, want)
		}
	})
}
