//go:build linux

package discover

import "syscall"

func realStatfs(mountPoint string) (fsStat, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(mountPoint, &st); err != nil {
		return fsStat{}, false
	}
	bs := int64(st.Frsize)
	if bs <= 0 {
		bs = int64(st.Bsize)
	}
	return fsStat{BlockSize: bs, Blocks: int64(st.Blocks), FreeBlocks: int64(st.Bfree),
		Files: int64(st.Files), FreeFiles: int64(st.Ffree)}, true
}

// unameMachine is uname -m.
func unameMachine() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return ""
	}
	b := make([]byte, 0, len(u.Machine))
	for _, c := range u.Machine {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
