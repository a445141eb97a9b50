package discover

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// fsStat is what discovery needs of statfs(2).
type fsStat struct {
	BlockSize  int64 // fragment size (f_frsize, else f_bsize)
	Blocks     int64
	FreeBlocks int64 // f_bfree: used = Blocks - FreeBlocks, as df counts it
	Files      int64
	FreeFiles  int64
}

func (s fsStat) used() int64 { return (s.Blocks - s.FreeBlocks) * s.BlockSize }

// env reads a machine's files under root.
type env struct {
	root string
	// live is true when root is "/": then mount points are statfs'ed and
	// the network addresses come from the kernel (net.Interfaces).
	live bool
	// statfs answers for a mount point; nil means none is known.
	statfs func(mountPoint string) (fsStat, bool)
}

func newEnv(root string, hook func(string) (fsStat, bool)) *env {
	if root == "" {
		root = "/"
	}
	root = filepath.Clean(root)
	e := &env{root: root, live: root == "/", statfs: hook}
	if e.statfs == nil && e.live {
		e.statfs = realStatfs
	}
	return e
}

// path maps an absolute machine path into root.
func (e *env) path(p string) string {
	if e.root == "/" {
		return filepath.Clean("/" + p)
	}
	return filepath.Join(e.root, filepath.Clean("/"+p))
}

// read returns a file's content, "" when it cannot be read.
func (e *env) read(p string) string {
	b, err := os.ReadFile(e.path(p))
	if err != nil {
		return ""
	}
	return string(b)
}

// line is read's first line, trimmed.
func (e *env) line(p string) string {
	s := e.read(p)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func (e *env) int64(p string) (int64, bool) {
	n, err := strconv.ParseInt(e.line(p), 10, 64)
	return n, err == nil
}

func (e *env) exists(p string) bool {
	_, err := os.Stat(e.path(p))
	return err == nil
}

func (e *env) isDir(p string) bool {
	fi, err := os.Stat(e.path(p))
	return err == nil && fi.IsDir()
}

// names lists a directory's entries, sorted; nil when it cannot be read.
func (e *env) names(p string) []string {
	des, err := os.ReadDir(e.path(p))
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(des))
	for _, d := range des {
		out = append(out, d.Name())
	}
	sort.Strings(out)
	return out
}

// executable tells whether an executable regular file of that name is in
// one of the usual bin directories.
func (e *env) executable(name string) bool {
	for _, dir := range []string{"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/local/sbin"} {
		fi, err := os.Stat(e.path(dir + "/" + name))
		if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return true
		}
	}
	return false
}
