package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAgentStaysSmall: the agent links none of the server side — no
// database, no web framework, no Temporal, none of the server's packages.
// It runs on every migrated machine; what it carries, it carries there.
func TestAgentStaysSmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, string(out))
	allowed := []string{"github.com/smsflow/smsflow/agent/", "github.com/smsflow/smsflow/internal/identity/signer",
		"github.com/smsflow/smsflow/cmd/sms-agent"}
	// The vocabulary is pure and allowed by its exact path: its
	// subpackages (the error catalog, the state matrix...) are the server's.
	allowedExact := []string{"github.com/smsflow/smsflow/internal/sms"}
	forbidden := []string{"gorm.io/", "github.com/gin-gonic/", "go.temporal.io/", "github.com/go-sql-driver/",
		"modernc.org/sqlite", "google.golang.org/grpc"}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/smsflow/smsflow") {
			ok := slices.Contains(allowedExact, dep)
			for _, a := range allowed {
				ok = ok || strings.HasPrefix(dep, a)
			}
			require.True(t, ok, "sms-agent imports the server package %s", dep)
		}
		for _, f := range forbidden {
			require.False(t, strings.HasPrefix(dep, f), "sms-agent links %s", dep)
		}
	}
}
