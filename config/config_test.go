package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(nil, envOf(nil))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	assert.Equal(t, "./data", c.DataDir)
	assert.Equal(t, "", c.DBDSN)
	assert.Equal(t, 24*time.Hour, c.TokenTTL)
	assert.Equal(t, 15*time.Minute, c.SignatureMaxSkew)
}

// TestPrecedence: defaults < file < env < flags, field by field.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "smsflow.yaml")
	require.NoError(t, os.WriteFile(file, []byte("http_addr: 0.0.0.0:9000\ndata_dir: /from/file\nlog_level: debug\ntoken_ttl: 2h\n"), 0o600))

	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--config", file, "--data-dir", "/from/flag"}))
	c, err := Load(fs, envOf(map[string]string{
		"SMSFLOW_DATA_DIR":  "/from/env",
		"SMSFLOW_LOG_LEVEL": "warn",
	}))
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:9000", c.HTTPAddr, "file beats default")
	assert.Equal(t, "warn", c.LogLevel, "env beats file")
	assert.Equal(t, "/from/flag", c.DataDir, "flag beats env")
	assert.Equal(t, 2*time.Hour, c.TokenTTL)
	assert.Equal(t, "text", c.LogFormat, "default kept")
}

func TestConfigFileFromEnv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte("http_addr: 127.0.0.1:9999\n"), 0o600))
	c, err := Load(nil, envOf(map[string]string{EnvConfigFile: file}))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9999", c.HTTPAddr)
}

func TestInvalid(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		file string
		want []string
	}{
		{name: "addr", env: map[string]string{"SMSFLOW_HTTP_ADDR": "nonsense"}, want: []string{"--http-addr", "SMSFLOW_HTTP_ADDR"}},
		{name: "duration", env: map[string]string{"SMSFLOW_TOKEN_TTL": "forever"}, want: []string{"SMSFLOW_TOKEN_TTL", "not a duration"}},
		{name: "ttl range", env: map[string]string{"SMSFLOW_TOKEN_TTL": "1s"}, want: []string{"--token-ttl"}},
		{name: "level", env: map[string]string{"SMSFLOW_LOG_LEVEL": "loud"}, want: []string{"log-level"}},
		{name: "key", env: map[string]string{"SMSFLOW_SECRET_KEY": "tooshort"}, want: []string{"secret-key"}},
		{name: "two at once", env: map[string]string{"SMSFLOW_LOG_LEVEL": "x", "SMSFLOW_LOG_FORMAT": "y"}, want: []string{"log-level", "log-format"}},
		{name: "unknown yaml key", file: "htp_addr: x\n", want: []string{"unknown key \"htp_addr\""}},
		{name: "yaml syntax", file: "a: [\n", want: []string{"parse"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.file != "" {
				p := filepath.Join(t.TempDir(), "c.yaml")
				require.NoError(t, os.WriteFile(p, []byte(tc.file), 0o600))
				env[EnvConfigFile] = p
			}
			_, err := Load(nil, envOf(env))
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestSecretNotEchoed(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	RegisterFlags(fs)
	_, err := Load(fs, envOf(map[string]string{"SMSFLOW_SECRET_KEY": "hunter2-not-a-key"}))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
}

func TestFieldsComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Fields() {
		assert.NotEmpty(t, f.YAML, f.Name)
		assert.True(t, strings.HasPrefix(f.Env, "SMSFLOW_"), f.Name)
		assert.NotEmpty(t, f.Flag, f.Name)
		assert.NotEmpty(t, f.Help, f.Name)
		assert.False(t, seen[f.Env], "duplicate env %s", f.Env)
		seen[f.Env] = true
	}
}
