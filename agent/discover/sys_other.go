//go:build !linux

package discover

// Discovery reads Linux's /proc and /sys; elsewhere (a developer's laptop
// running the tests of a fixture tree) there is nothing live to ask.

func realStatfs(string) (fsStat, bool) { return fsStat{}, false }

func unameMachine() string { return "" }
