package smsflow_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestReadmeLayout keeps the README's Layout section true: every folder that
// holds Go code, and every folder at the root, has its line there, and every
// line names a folder that exists.
func TestReadmeLayout(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n## Layout\n")
	if start < 0 {
		t.Fatal("README.md has no ## Layout section")
	}
	section := readme[start+len("\n## Layout\n"):]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^- `([^`]+)/`").FindAllStringSubmatch(section, -1) {
		listed[m[1]] = true
	}

	want := map[string]bool{}
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			if path != "." && !strings.Contains(path, string(filepath.Separator)) {
				want[path] = true // every room at the root
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && filepath.Dir(path) != "." {
			want[filepath.ToSlash(filepath.Dir(path))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var missing, stale []string
	for dir := range want {
		if !listed[dir] {
			missing = append(missing, dir)
		}
	}
	for dir := range listed {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			stale = append(stale, dir)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("README Layout lacks a line for: %s", strings.Join(missing, ", "))
	}
	if len(stale) > 0 {
		t.Errorf("README Layout names folders that do not exist: %s", strings.Join(stale, ", "))
	}
}
