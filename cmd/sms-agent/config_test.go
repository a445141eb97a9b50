package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestApplyConfigFile(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		mode       os.FileMode
		args       []string
		wantErr    string
		server, sk string
		excludes   []string
	}{
		{name: "values", mode: 0o600,
			file:   "# agent\nserver: http://sms:8080\nsk = \"s3cret\"\n\nexclude: /data\nexclude: /srv/cache\n",
			server: "http://sms:8080", sk: "s3cret", excludes: []string{"/data", "/srv/cache"}},
		{name: "the command line wins", mode: 0o600, args: []string{"--server", "http://cli:1"},
			file: "server: http://file:2\n", server: "http://cli:1"},
		{name: "unknown key", mode: 0o600, file: "sever: x\n", wantErr: `unknown key "sever"`},
		{name: "no separator", mode: 0o600, file: "server\n", wantErr: `:1: want "key: value"`},
		{name: "SK in a readable file", mode: 0o644, file: "sk: s3cret\n", wantErr: "chmod 600"},
		{name: "readable file without SK", mode: 0o644, file: "server: http://sms\n", server: "http://sms"},
		{name: "bad value", mode: 0o600, file: "poll-wait: soon\n", wantErr: "poll-wait"},
		{name: "nested config", mode: 0o600, file: "config: /etc/other\n", wantErr: "cannot name another"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "agent.conf")
			require.NoError(t, os.WriteFile(p, []byte(tc.file), tc.mode))
			require.NoError(t, os.Chmod(p, tc.mode))
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			server := fs.String("server", "", "")
			sk := fs.String("sk", "", "")
			fs.String("config", "", "")
			fs.Duration("poll-wait", 0, "")
			var excludes multi
			fs.Var(&excludes, "exclude", "")
			require.NoError(t, fs.Parse(tc.args))
			err := applyConfigFile(fs, p)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.server, *server)
			assert.Equal(t, tc.sk, *sk)
			assert.Equal(t, tc.excludes, []string(excludes))
		})
	}
}

// run takes its settings from the config file and names what is missing.
func TestRunReadsConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.conf")
	require.NoError(t, os.WriteFile(p, []byte("ak: AK1\nsk: s3cret\nproject: p1\n"), 0o600))
	t.Setenv("SMS_AGENT_SK", "")
	t.Setenv("SMS_AGENT_SERVER", "")
	err := runAgent(context.Background(), []string{"--config", p}, io.Discard)
	require.Error(t, err)
	assert.Equal(t, "missing --server", err.Error(), "the file supplied the AK, SK and project")

	err = runAgent(context.Background(), []string{"--config", p, "--server", "http://x", "stray"}, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unexpected argument "stray"`)
}

// FuzzApplyConfigFile: any file content either applies or is refused with
// an error; never a panic, and never a flag the file did not name.
func FuzzApplyConfigFile(f *testing.F) {
	for _, seed := range []string{
		"server: http://sms:8080\nak: A\n",
		"# comment\n\nexclude = /data\nexclude: /srv\n",
		"poll-wait: 10s\nsk: 's'\n",
		"=\n", ":::\n", "server\n", "config: x\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "agent.conf")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Skip()
		}
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("server", "", "")
		fs.String("sk", "", "")
		fs.String("config", "", "")
		fs.Duration("poll-wait", 0, "")
		var excludes multi
		fs.Var(&excludes, "exclude", "")
		if err := applyConfigFile(fs, p); err != nil {
			return
		}
		fs.Visit(func(fl *flag.Flag) {
			if !bytes.Contains(data, []byte(fl.Name)) {
				t.Errorf("flag %s set by a file that does not name it", fl.Name)
			}
		})
	})
}
