package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
)

// applyConfigFile sets, from a config file, the flags the command line left
// unset (the command line wins). The file has one "key: value" (or
// "key = value") per line, keys being the flag names (server, ak, sk,
// project, state-dir, exclude, disk-image, …); repeatable flags may repeat;
// "#" starts a comment. A file that holds the SK must not be readable by
// group or others, as ssh insists for its keys.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexAny(line, ":=")
		if i <= 0 {
			return fmt.Errorf("config %s:%d: want \"key: value\"", path, n)
		}
		key := strings.TrimSpace(line[:i])
		val := strings.Trim(strings.TrimSpace(line[i+1:]), `"'`)
		switch key {
		case "config":
			return fmt.Errorf("config %s:%d: a config file cannot name another", path, n)
		case "sk":
			if st.Mode().Perm()&0o077 != 0 {
				return fmt.Errorf("config %s holds the SK and is readable by others (mode %o): chmod 600 it", path, st.Mode().Perm())
			}
		}
		if fs.Lookup(key) == nil {
			return fmt.Errorf("config %s:%d: unknown key %q", path, n, key)
		}
		if set[key] {
			continue
		}
		if err := fs.Set(key, val); err != nil {
			return fmt.Errorf("config %s:%d: %s: %w", path, n, key, err)
		}
	}
	return sc.Err()
}
