package config

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The compose file cannot be run here (no Docker engine), so this test checks
// what can be checked: it parses, it has the production services with
// healthchecks, and every SMSFLOW_* variable it sets is one the config (or
// the bootstrap) reads, so a renamed setting cannot silently stop working.
type composeFile struct {
	Services map[string]struct {
		Image       string         `yaml:"image"`
		Build       any            `yaml:"build"`
		Command     []string       `yaml:"command"`
		Environment map[string]any `yaml:"environment"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
}

func TestDockerCompose(t *testing.T) {
	b, err := os.ReadFile("../docker-compose.yml")
	require.NoError(t, err)
	var cf composeFile
	require.NoError(t, yaml.Unmarshal(b, &cf), "docker-compose.yml parses (anchors and merge keys resolved)")

	for _, name := range []string{"mysql", "temporal", "temporal-ui", "smsflow-web", "smsflow-worker"} {
		svc, ok := cf.Services[name]
		require.True(t, ok, "service %s", name)
		require.NotNil(t, svc.Healthcheck, "service %s has a healthcheck", name)
		assert.NotEmpty(t, svc.Healthcheck.Test, name)
	}
	assert.Equal(t, "mysql8", cf.Services["temporal"].Environment["DB"], "Temporal stores on MySQL 8")

	known := map[string]bool{EnvAdminPassword: true, EnvAdminAK: true, EnvAdminSK: true, EnvAdminProjectID: true, EnvConfigFile: true}
	for _, f := range Fields() {
		known[f.Env] = true
	}
	// The subcommands smsflow has (cmd/smsflow's tests check them against
	// --help).
	commands := map[string]bool{"serve": true, "web": true, "worker": true, "admin": true, "healthcheck": true}
	for _, name := range []string{"smsflow-web", "smsflow-worker"} {
		svc := cf.Services[name]
		var vars []string
		for k := range svc.Environment {
			vars = append(vars, k)
			assert.True(t, known[k], "%s sets %s, which no setting reads", name, k)
		}
		sort.Strings(vars)
		for _, must := range []string{"SMSFLOW_DB_DSN", "SMSFLOW_SECRET_KEY", "SMSFLOW_TEMPORAL_ADDRESS", "SMSFLOW_DATA_DIR"} {
			assert.Contains(t, vars, must, name)
		}
		require.NotEmpty(t, svc.Command, name)
		assert.True(t, commands[svc.Command[0]], "%s runs an smsflow subcommand", name)
		// The DSN selects MySQL in the form the config documents.
		dsn, _ := svc.Environment["SMSFLOW_DB_DSN"].(string)
		assert.Regexp(t, regexp.MustCompile(`^mysql://[^:]+:.+@tcp\(mysql:3306\)/\w+`), dsn)
		assert.NotEmpty(t, svc.DependsOn, "%s waits for what it needs", name)
	}
	web := cf.Services["smsflow-web"]
	addr, _ := web.Environment["SMSFLOW_HTTP_ADDR"].(string)
	assert.True(t, strings.HasPrefix(addr, "0.0.0.0:"), "the API listens on all interfaces inside its container")

	// One namespace everywhere: the one Temporal creates, the one the UI
	// opens, the one web and worker use.
	ns := cf.Services["temporal"].Environment["DEFAULT_NAMESPACE"]
	assert.NotEmpty(t, ns)
	assert.Equal(t, ns, cf.Services["temporal-ui"].Environment["TEMPORAL_DEFAULT_NAMESPACE"])
	for _, name := range []string{"smsflow-web", "smsflow-worker"} {
		assert.Equal(t, ns, cf.Services[name].Environment["SMSFLOW_TEMPORAL_NAMESPACE"], name)
		assert.Equal(t, "temporal:7233", cf.Services[name].Environment["SMSFLOW_TEMPORAL_ADDRESS"], name)
	}
	// Finished runs are kept for weeks, as serve's embedded server does.
	assert.Equal(t, "30d", cf.Services["temporal"].Environment["DEFAULT_NAMESPACE_RETENTION"])
	// The worker's healthcheck probes where the worker answers.
	found := false
	for _, f := range Fields() {
		if f.Flag == "worker-health-addr" {
			found = true
			assert.Contains(t, strings.Join(cf.Services["smsflow-worker"].Healthcheck.Test, " "), "http://"+f.Default+"/healthz")
		}
	}
	assert.True(t, found, "the worker has a health address setting")
}

func TestDockerfileBuildsStatic(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	s := string(b)
	assert.Contains(t, s, "CGO_ENABLED=0", "static binary")
	assert.Contains(t, s, "./cmd/smsflow")
	assert.Contains(t, s, "./cmd/sms-agent", "the image carries the agent for source servers")
	assert.Contains(t, s, "COPY --from=build /out/sms-agent")
	assert.Contains(t, s, "distroless/static")
}

// TestREADMEConfigTable: the README documents every setting.
func TestREADMEConfigTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	for _, f := range Fields() {
		assert.True(t, strings.Contains(string(b), "`--"+f.Flag+"`"), "README lacks --%s (go run ./internal/tools/configdoc)", f.Flag)
		assert.True(t, strings.Contains(string(b), "`"+f.Env+"`"), "README lacks %s", f.Env)
	}
}
