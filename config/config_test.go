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

// TestReceiverAddresses: the receivers' listen address, the address agents
// are told and the port range, from every source, and what is refused.
func TestReceiverAddresses(t *testing.T) {
	c, err := Load(nil, envOf(nil))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", c.ReceiverListen, "one machine works out of the box")
	assert.Equal(t, "127.0.0.1", c.ReceiverHost(), "agents dial the listen address by default")
	lo, hi, err := ParsePortRange(c.ReceiverPorts)
	require.NoError(t, err)
	assert.Equal(t, [2]int{0, 0}, [2]int{lo, hi}, "any free port by default")

	file := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte("receiver_listen: 0.0.0.0\nreceiver_ports: 8900-8999\n"), 0o600))
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--config", file, "--receiver-advertise", "smsflow.example"}))
	c, err = Load(fs, envOf(map[string]string{"SMSFLOW_RECEIVER_ADVERTISE": "10.0.0.9"}))
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0", c.ReceiverListen)
	assert.Equal(t, "smsflow.example", c.ReceiverHost(), "the flag beats the environment")
	lo, hi, err = ParsePortRange(c.ReceiverPorts)
	require.NoError(t, err)
	assert.Equal(t, [2]int{8900, 8999}, [2]int{lo, hi})

	c, err = Load(nil, envOf(map[string]string{"SMSFLOW_RECEIVER_LISTEN": "10.1.2.3", "SMSFLOW_RECEIVER_PORTS": "9000"}))
	require.NoError(t, err)
	assert.Equal(t, "10.1.2.3", c.ReceiverHost(), "one listen address is the advertised one")
	lo, hi, _ = ParsePortRange(c.ReceiverPorts)
	assert.Equal(t, [2]int{9000, 9000}, [2]int{lo, hi})

	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"every interface needs an advertised host", map[string]string{"SMSFLOW_RECEIVER_LISTEN": "0.0.0.0"}, "--receiver-advertise (SMSFLOW_RECEIVER_ADVERTISE): required"},
		{"every v6 interface too", map[string]string{"SMSFLOW_RECEIVER_LISTEN": "::"}, "required"},
		{"listen is an IP", map[string]string{"SMSFLOW_RECEIVER_LISTEN": "myhost"}, "--receiver-listen"},
		{"listen has no port", map[string]string{"SMSFLOW_RECEIVER_LISTEN": "127.0.0.1:8900"}, "--receiver-listen"},
		{"advertise has no port", map[string]string{"SMSFLOW_RECEIVER_ADVERTISE": "host:8900"}, "--receiver-advertise"},
		{"advertise is dialable", map[string]string{"SMSFLOW_RECEIVER_LISTEN": "0.0.0.0", "SMSFLOW_RECEIVER_ADVERTISE": "0.0.0.0"}, "--receiver-advertise"},
		{"range order", map[string]string{"SMSFLOW_RECEIVER_PORTS": "8999-8900"}, "--receiver-ports"},
		{"range bounds", map[string]string{"SMSFLOW_RECEIVER_PORTS": "0-10"}, "--receiver-ports"},
		{"range syntax", map[string]string{"SMSFLOW_RECEIVER_PORTS": "89xx"}, "--receiver-ports"},
		{"range top", map[string]string{"SMSFLOW_RECEIVER_PORTS": "65000-70000"}, "--receiver-ports"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(nil, envOf(tc.env))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// An IPv6 advertised address is fine (target_addr brackets it).
	_, err = Load(nil, envOf(map[string]string{"SMSFLOW_RECEIVER_LISTEN": "::", "SMSFLOW_RECEIVER_ADVERTISE": "fd00::5"}))
	assert.NoError(t, err)
}
