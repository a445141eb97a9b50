//go:build linux

package filesync

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2 turned out to be missing (kernels before
// 5.6, or a seccomp filter): then paths are walked one component at a time.
var noOpenat2 atomic.Bool

// openBeneath opens rel (relative to the directory rootfd) without following
// any symlink on the way, final component included, and without leaving the
// tree. flags are open(2) flags; O_NOFOLLOW and O_CLOEXEC are added.
func openBeneath(rootfd int, rel string, flags int) (int, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if rel == "." || rel == "" {
		return unix.Openat(rootfd, ".", flags, 0)
	}
	if !noOpenat2.Load() {
		how := unix.OpenHow{Flags: uint64(flags),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		for try := 0; ; try++ {
			fd, err := unix.Openat2(rootfd, rel, &how)
			if err == unix.EAGAIN && try < 8 {
				continue // a concurrent rename: the kernel asks to retry
			}
			if err == unix.ENOSYS || err == unix.EPERM && try == 0 && !probeOpenat2(rootfd) {
				noOpenat2.Store(true)
				break
			}
			return fd, err
		}
	}
	// Component by component, each with O_NOFOLLOW.
	parts := strings.Split(rel, "/")
	cur := rootfd
	for i, p := range parts {
		if p == "" || p == "." || p == ".." {
			if cur != rootfd {
				unix.Close(cur)
			}
			return -1, unix.EINVAL
		}
		f := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			f = flags
		}
		fd, err := unix.Openat(cur, p, f, 0)
		if cur != rootfd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

// errNotRegular: the name is not (or no longer) a regular file.
var errNotRegular = errors.New("not a regular file")

// openRegular opens name in dirfd for reading only if it is a regular
// file (see reopenRegular).
func openRegular(dirfd int, name string) (int, unix.Stat_t, error) {
	pfd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, unix.Stat_t{}, err
	}
	defer unix.Close(pfd)
	return reopenRegular(pfd, func() (int, error) {
		return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	})
}

// reopenRegular opens for reading the file pfd (an O_PATH descriptor, which
// opened no device and waited on no FIFO) after fstat says it is a regular
// file: through /proc/self/fd, which reaches that very inode whatever
// happened to its name since. Without /proc, open (O_NOFOLLOW|O_NONBLOCK:
// never a symlink, never a wait) is called instead. Either way the result
// is fstat'ed again: errNotRegular unless it is the same regular file.
func reopenRegular(pfd int, open func() (int, error)) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, st, err
	}
	if ftype(&st) != unix.S_IFREG {
		return -1, st, errNotRegular
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		fd, err = open()
	}
	if err != nil {
		return -1, st, err
	}
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	if ftype(&fst) != unix.S_IFREG || fst.Dev != st.Dev || fst.Ino != st.Ino {
		unix.Close(fd)
		return -1, st, errNotRegular
	}
	return fd, fst, nil
}

// noFchmodat2 is set once fchmodat2 turned out to be missing (kernels
// before 6.6).
var noFchmodat2 atomic.Bool

// chmodFD changes the mode of the file pfd (an O_PATH descriptor: fchmod
// refuses those) without any path lookup that could meet a symlink:
// fchmodat2 with AT_EMPTY_PATH, or else chmod of /proc/self/fd/N, which
// reaches the descriptor's own inode.
func chmodFD(pfd int, mode uint32) error {
	if !noFchmodat2.Load() {
		err := unix.Fchmodat(pfd, "", mode, unix.AT_EMPTY_PATH)
		switch err {
		case nil:
			return nil
		case unix.EOPNOTSUPP, unix.ENOSYS, unix.EINVAL:
			noFchmodat2.Store(true)
		case unix.EPERM:
			// Not the owner, or a filter refusing the call: /proc says.
		default:
			return err
		}
	}
	err := unix.Chmod("/proc/self/fd/"+strconv.Itoa(pfd), mode)
	if err == unix.ENOENT {
		return errors.New("cannot change a mode safely: no fchmodat2 (Linux 6.6) and no /proc")
	}
	return err
}

// probeOpenat2 tells whether an EPERM came from a filter refusing openat2
// itself rather than from the file.
func probeOpenat2(rootfd int) bool {
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC | unix.O_DIRECTORY, Resolve: unix.RESOLVE_BENEATH}
	fd, err := unix.Openat2(rootfd, ".", &how)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// removeAt removes name in the directory dirfd, recursively if it is a
// directory, never following a symlink. It returns how many entries it
// removed.
func removeAt(dirfd int, name string) (int64, error) {
	n, _, err := removeAtSized(dirfd, name)
	return n, err
}

// removeAtSized is removeAt that also reports the bytes of the regular
// files it removed (their sizes), for the receiver's tree cap.
func removeAtSized(dirfd int, name string) (n, size int64, err error) {
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		size = st.Size
	}
	err = unix.Unlinkat(dirfd, name, 0)
	if err == nil {
		return 1, size, nil
	}
	if err == unix.ENOENT {
		return 0, 0, nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return 0, 0, err
	}
	size = 0
	fd, oerr := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if oerr != nil {
		return 0, 0, err
	}
	names, lerr := readNames(fd)
	for _, c := range names {
		if lerr != nil {
			break
		}
		k, b, rerr := removeAtSized(fd, c)
		n += k
		size += b
		if rerr != nil {
			lerr = rerr
		}
	}
	unix.Close(fd)
	if lerr != nil {
		return n, size, lerr
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return n, size, err
	}
	return n + 1, size, nil
}

// treeUsage is what the tree beneath the directory open at dirfd holds:
// the bytes of its regular files and its entries (the directory itself not
// counted). It walks by handle, never following a symlink.
func treeUsage(dirfd int) (size, entries int64, err error) {
	names, err := readNames(dirfd)
	if err != nil {
		return 0, 0, err
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return size, entries, err
		}
		entries++
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			size += st.Size
		case unix.S_IFDIR:
			fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return size, entries, err
			}
			b, n, err := treeUsage(fd)
			unix.Close(fd)
			size, entries = size+b, entries+n
			if err != nil {
				return size, entries, err
			}
		}
	}
	return size, entries, nil
}

// readNames lists the directory open at dirfd (its own open file
// description, so the caller's offset is untouched).
func readNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

func futimens(fd int, mtimeNs int64) error {
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtimeNs)}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func lutimesAt(dirfd int, name string, mtimeNs int64) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtimeNs)}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func mtimeOf(st *unix.Stat_t) int64 { return st.Mtim.Sec*1e9 + st.Mtim.Nsec }

// nextData is where the data at or after off starts (size when only a hole
// is left). Without SEEK_DATA support the whole file is data.
func nextData(fd int, off, size int64) int64 {
	d, err := unix.Seek(fd, off, unix.SEEK_DATA)
	if err == unix.ENXIO {
		return size
	}
	if err != nil || d < off {
		return off
	}
	return min(d, size)
}

// isHole tells whether [off, off+n) of a file of size bytes lies in a hole:
// it reads as zeros without being read.
func isHole(fd int, off, n, size int64) bool {
	return nextData(fd, off, size) >= off+n
}

// nextHole is where the hole at or after off starts (size at most).
func nextHole(fd int, off, size int64) int64 {
	h, err := unix.Seek(fd, off, unix.SEEK_HOLE)
	if err != nil || h < off {
		return size
	}
	return min(h, size)
}

var zeroBuf [1 << 20]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBuf))
		if !bytes.Equal(b[:n], zeroBuf[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// readSparse walks a file's content in order: each hole (found with
// SEEK_DATA/SEEK_HOLE, not read) goes to hole, the data between in chunks
// of len(buf) to data. It returns how far it got: less than size if the
// file shrank meanwhile.
func readSparse(f *os.File, size int64, buf []byte, hole func(n int64) error, data func(p []byte) error) (int64, error) {
	fd := int(f.Fd())
	var off int64
	for off < size {
		if d := nextData(fd, off, size); d > off {
			if err := hole(d - off); err != nil {
				return 0, err
			}
			off = d
			continue
		}
		end := nextHole(fd, off, size)
		if end <= off {
			end = size
		}
		for off < end {
			n := int(min(int64(len(buf)), end-off))
			got, err := f.ReadAt(buf[:n], off)
			if got > 0 {
				if derr := data(buf[:got]); derr != nil {
					return 0, derr
				}
				off += int64(got)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					return off, nil
				}
				return 0, err
			}
		}
	}
	return off, nil
}

// hashFile is the xxhash64 of the file's content (holes read as zeros
// without touching the disk).
func hashFile(f *os.File, size int64, buf []byte) (uint64, error) {
	h := xxhash.New()
	_, err := readSparse(f, size, buf, func(n int64) error {
		hashZeros(h, n)
		return nil
	}, func(p []byte) error {
		h.Write(p)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return h.Sum64(), nil
}

// hashZeros feeds n zero bytes (a hole's content) to h without a buffer of
// that size.
func hashZeros(h *xxhash.Digest, n int64) {
	for n > 0 {
		k := min(int64(len(zeroBuf)), n)
		h.Write(zeroBuf[:k])
		n -= k
	}
}

// zeroSum is the xxhash64 of n zero bytes: the hash of a block in a hole.
func zeroSum(n int64) uint64 {
	h := xxhash.New()
	hashZeros(h, n)
	return h.Sum64()
}

// vanished tells whether opening a source file failed because it is no
// longer there as a regular file (removed, or replaced by a link, a
// directory, a socket or a device since the walk): sending skips it as gone,
// verifying as not listed.
func vanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) ||
		errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV)
}
