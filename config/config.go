// Package config holds smsflow's one typed configuration. Values come from, in
// increasing precedence: defaults < an optional YAML file (--config or
// SMSFLOW_CONFIG) < environment variables SMSFLOW_* < command-line flags.
//
// Each field declares its YAML key, environment variable, flag and help text
// in struct tags, so the four sources, the --help output, the README table and
// docker-compose.yml cannot drift apart (a test checks the last two).
package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Config is every setting of smsflow. Field tags:
//
//	yaml:"key"  env:"SMSFLOW_KEY"  flag:"key"  help:"..."  default:"..."
//	scope:"..." limits the flag to some subcommands (comma list); empty = all.
type Config struct {
	HTTPAddr string `yaml:"http_addr" env:"SMSFLOW_HTTP_ADDR" flag:"http-addr" default:"127.0.0.1:8080" help:"address the REST API listens on"`
	DataDir  string `yaml:"data_dir" env:"SMSFLOW_DATA_DIR" flag:"data-dir" default:"./data" help:"directory for the SQLite database, the secret key and admin-credentials.json"`
	DBDSN    string `yaml:"db_dsn" env:"SMSFLOW_DB_DSN" flag:"db-dsn" default:"" help:"database: empty = SQLite file in the data dir; mysql://user:pass@tcp(host:3306)/db or a go-sql-driver DSN = MySQL" secret:"true"`

	LogLevel  string `yaml:"log_level" env:"SMSFLOW_LOG_LEVEL" flag:"log-level" default:"info" help:"log level: debug, info, warn, error"`
	LogFormat string `yaml:"log_format" env:"SMSFLOW_LOG_FORMAT" flag:"log-format" default:"text" help:"log format: text or json"`

	SecretKey string `yaml:"secret_key" env:"SMSFLOW_SECRET_KEY" flag:"secret-key" default:"" help:"32-byte key (base64 or hex) encrypting SKs and target passwords; empty = <data-dir>/secret.key, created on first start" secret:"true"`

	TokenTTL         time.Duration `yaml:"token_ttl" env:"SMSFLOW_TOKEN_TTL" flag:"token-ttl" default:"24h" help:"lifetime of X-Auth-Token tokens"`
	SignatureMaxSkew time.Duration `yaml:"signature_max_skew" env:"SMSFLOW_SIGNATURE_MAX_SKEW" flag:"signature-max-skew" default:"15m" help:"largest accepted difference between X-Sdk-Date and the server clock"`
	AuthCacheTTL     time.Duration `yaml:"auth_cache_ttl" env:"SMSFLOW_AUTH_CACHE_TTL" flag:"auth-cache-ttl" default:"10s" help:"how long a verified AK or token is cached in memory (a revocation made by another process takes effect within this time)"`

	AgentTimeout     time.Duration `yaml:"agent_timeout" env:"SMSFLOW_AGENT_TIMEOUT" flag:"agent-timeout" default:"90s" help:"a source whose agent has not polled for this long shows connected=false"`
	CommandRedeliver time.Duration `yaml:"command_redeliver" env:"SMSFLOW_COMMAND_REDELIVER" flag:"command-redeliver" default:"60s" help:"an agent command handed out but not answered within this time is handed out again"`

	TemporalAddress   string        `yaml:"temporal_address" env:"SMSFLOW_TEMPORAL_ADDRESS" flag:"temporal-address" default:"" help:"host:port of an external Temporal frontend; empty = serve embeds its own (web and worker need it)"`
	TemporalNamespace string        `yaml:"temporal_namespace" env:"SMSFLOW_TEMPORAL_NAMESPACE" flag:"temporal-namespace" default:"default" help:"Temporal namespace of the migration workflows"`
	TemporalTLSCert   string        `yaml:"temporal_tls_cert" env:"SMSFLOW_TEMPORAL_TLS_CERT" flag:"temporal-tls-cert" default:"" help:"client certificate (PEM file) for an external Temporal with mTLS"`
	TemporalTLSKey    string        `yaml:"temporal_tls_key" env:"SMSFLOW_TEMPORAL_TLS_KEY" flag:"temporal-tls-key" default:"" help:"client key (PEM file) for --temporal-tls-cert"`
	TemporalTLSCA     string        `yaml:"temporal_tls_ca" env:"SMSFLOW_TEMPORAL_TLS_CA" flag:"temporal-tls-ca" default:"" help:"CA bundle (PEM file) to verify an external Temporal; setting any TLS option turns TLS on"`
	TemporalTLSServer string        `yaml:"temporal_tls_server_name" env:"SMSFLOW_TEMPORAL_TLS_SERVER_NAME" flag:"temporal-tls-server-name" default:"" help:"server name expected in the external Temporal's certificate"`
	TemporalUIAddr    string        `yaml:"temporal_ui_addr" env:"SMSFLOW_TEMPORAL_UI_ADDR" flag:"temporal-ui-addr" default:"127.0.0.1:8233" help:"where serve's embedded Temporal Web UI listens (empty = no UI); with an external cluster, its UI address for links. The UI has no sign-in and shows (and can cancel) every domain's runs: whoever reaches this address can; keep it on loopback"`
	TemporalUIProxy   bool          `yaml:"temporal_ui_proxy" env:"SMSFLOW_TEMPORAL_UI_PROXY" flag:"temporal-ui-proxy" default:"false" help:"also serve the embedded Temporal Web UI at /temporal/ on --http-addr, to smsflow's administrators only (role admin in domain smsflow, such as user admin: browser sign-in as admin or smsflow/admin)"`
	TemporalEmbedAddr string        `yaml:"temporal_embedded_addr" env:"SMSFLOW_TEMPORAL_EMBEDDED_ADDR" flag:"temporal-embedded-addr" default:"127.0.0.1:7233" help:"gRPC address of serve's embedded Temporal frontend"`
	TemporalRetention time.Duration `yaml:"temporal_retention" env:"SMSFLOW_TEMPORAL_RETENTION" flag:"temporal-retention" default:"720h" help:"how long finished migration runs stay in Temporal (audits need weeks)"`

	TimeZone          string        `yaml:"timezone" env:"SMSFLOW_TIMEZONE" flag:"timezone" default:"Local" help:"time zone of speed-limit windows (an IANA name such as Asia/Shanghai, or Local: the machine's zone, named at task creation)"`
	SyncInterval      time.Duration `yaml:"sync_interval" env:"SMSFLOW_SYNC_INTERVAL" flag:"sync-interval" default:"10m" help:"pause between passes of a continuous-sync task"`
	AgentStepTimeout  time.Duration `yaml:"agent_step_timeout" env:"SMSFLOW_AGENT_STEP_TIMEOUT" flag:"agent-step-timeout" default:"30m" help:"a copy step whose agent reports no progress this long fails"`
	TargetsDir        string        `yaml:"targets_dir" env:"SMSFLOW_TARGETS_DIR" flag:"targets-dir" default:"" help:"where the local provider keeps target servers (empty = <data-dir>/targets)"`
	ReceiverListen    string        `yaml:"receiver_listen" env:"SMSFLOW_RECEIVER_LISTEN" flag:"receiver-listen" default:"127.0.0.1" help:"IP the local provider's receivers listen on (0.0.0.0 or :: = every interface, then set --receiver-advertise)"`
	ReceiverAdvertise string        `yaml:"receiver_advertise" env:"SMSFLOW_RECEIVER_ADVERTISE" flag:"receiver-advertise" default:"" help:"host or IP source agents are told to dial for a receiver (target_addr); empty = --receiver-listen, required when that is 0.0.0.0 or ::"`
	ReceiverPorts     string        `yaml:"receiver_ports" env:"SMSFLOW_RECEIVER_PORTS" flag:"receiver-ports" default:"" help:"port range of the receivers, like 8900-8999, for firewalls (empty = any free port)"`
	WorkerHealthAddr  string        `yaml:"worker_health_addr" env:"SMSFLOW_WORKER_HEALTH_ADDR" flag:"worker-health-addr" default:"127.0.0.1:8081" help:"where smsflow worker answers /healthz (empty = nowhere)"`

	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"SMSFLOW_SHUTDOWN_TIMEOUT" flag:"shutdown-timeout" default:"15s" help:"how long in-flight requests may finish on SIGTERM"`
}

// Bootstrap values come only from the environment (they are read once, on the
// first start with an empty database), so they are not Config fields.
const (
	EnvAdminPassword  = "SMSFLOW_ADMIN_PASSWORD"
	EnvAdminAK        = "SMSFLOW_ADMIN_AK"
	EnvAdminSK        = "SMSFLOW_ADMIN_SK"
	EnvAdminProjectID = "SMSFLOW_ADMIN_PROJECT_ID"
	EnvConfigFile     = "SMSFLOW_CONFIG"
)

// Field describes one setting (for flags, docs and tests).
type Field struct {
	Name    string // Go field name
	YAML    string
	Env     string
	Flag    string
	Default string
	Help    string
	Secret  bool
	index   int
}

// Fields lists every setting in declaration order.
func Fields() []Field {
	t := reflect.TypeOf(Config{})
	out := make([]Field, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		out = append(out, Field{
			Name: f.Name, YAML: f.Tag.Get("yaml"), Env: f.Tag.Get("env"), Flag: f.Tag.Get("flag"),
			Default: f.Tag.Get("default"), Help: f.Tag.Get("help"), Secret: f.Tag.Get("secret") == "true", index: i,
		})
	}
	return out
}

// Defaults returns the configuration with only defaults applied.
func Defaults() Config {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	for _, f := range Fields() {
		if err := setField(v.Field(f.index), f.Default); err != nil {
			panic(fmt.Sprintf("config: bad default for %s: %v", f.Name, err)) // programming error
		}
	}
	return c
}

// RegisterFlags adds every setting's flag, and --config, to fs.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML configuration file (env "+EnvConfigFile+")")
	for _, f := range Fields() {
		help := f.Help + " (env " + f.Env + ")"
		fs.String(f.Flag, f.Default, help)
	}
}

// Load builds the configuration for a command: defaults, then the YAML file,
// then SMSFLOW_* variables from getenv, then the flags the user set on fs.
// fs may be nil. The result is validated.
func Load(fs *pflag.FlagSet, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Defaults()
	v := reflect.ValueOf(&c).Elem()

	path := getenv(EnvConfigFile)
	if fs != nil {
		if fl := fs.Lookup("config"); fl != nil && fl.Changed {
			path = fl.Value.String()
		}
	}
	if path != "" {
		if err := loadYAML(path, v); err != nil {
			return Config{}, err
		}
	}
	for _, f := range Fields() {
		if val, ok := lookupEnv(getenv, f.Env); ok {
			if err := setField(v.Field(f.index), val); err != nil {
				return Config{}, fmt.Errorf("config: %s=%q: %w", f.Env, redact(f, val), err)
			}
		}
	}
	if fs != nil {
		for _, f := range Fields() {
			fl := fs.Lookup(f.Flag)
			if fl == nil || !fl.Changed {
				continue
			}
			if err := setField(v.Field(f.index), fl.Value.String()); err != nil {
				return Config{}, fmt.Errorf("config: --%s=%q: %w", f.Flag, redact(f, fl.Value.String()), err)
			}
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	val := getenv(name)
	return val, val != ""
}

func redact(f Field, val string) string {
	if f.Secret && val != "" {
		return "***"
	}
	return val
}

func loadYAML(path string, v reflect.Value) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	var raw map[string]yaml.Node
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("config: parse %s: %w", path, err)
	}
	byKey := map[string]Field{}
	for _, f := range Fields() {
		byKey[f.YAML] = f
	}
	for key, node := range raw {
		f, ok := byKey[key]
		if !ok {
			return fmt.Errorf("config: %s: unknown key %q", path, key)
		}
		if node.Kind != yaml.ScalarNode {
			return fmt.Errorf("config: %s: %s must be a scalar", path, key)
		}
		if err := setField(v.Field(f.index), node.Value); err != nil {
			return fmt.Errorf("config: %s: %s: %w", path, key, err)
		}
	}
	return nil
}

func setField(fv reflect.Value, s string) error {
	switch fv.Interface().(type) {
	case string:
		fv.SetString(s)
	case time.Duration:
		if s == "" {
			fv.SetInt(0)
			return nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration (like 30s, 15m, 24h): %w", err)
		}
		fv.SetInt(int64(d))
	case int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("not an integer: %w", err)
		}
		fv.SetInt(int64(n))
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean: %w", err)
		}
		fv.SetBool(b)
	default:
		return fmt.Errorf("unsupported type %s", fv.Type())
	}
	return nil
}

// Validate reports every problem at once, each naming its flag and variable.
func (c Config) Validate() error {
	var errs []error
	bad := func(flag, env, msg string) {
		errs = append(errs, fmt.Errorf("--%s (%s): %s", flag, env, msg))
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("http-addr", "SMSFLOW_HTTP_ADDR", fmt.Sprintf("%q is not host:port", c.HTTPAddr))
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data-dir", "SMSFLOW_DATA_DIR", "must not be empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "SMSFLOW_LOG_LEVEL", fmt.Sprintf("%q is not one of debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", "SMSFLOW_LOG_FORMAT", fmt.Sprintf("%q is not text or json", c.LogFormat))
	}
	if c.TokenTTL < time.Minute || c.TokenTTL > 7*24*time.Hour {
		bad("token-ttl", "SMSFLOW_TOKEN_TTL", "must be between 1m and 168h")
	}
	if c.SignatureMaxSkew < time.Second || c.SignatureMaxSkew > 24*time.Hour {
		bad("signature-max-skew", "SMSFLOW_SIGNATURE_MAX_SKEW", "must be between 1s and 24h")
	}
	if c.AuthCacheTTL < 0 || c.AuthCacheTTL > 10*time.Minute {
		bad("auth-cache-ttl", "SMSFLOW_AUTH_CACHE_TTL", "must be between 0 and 10m")
	}
	if c.AgentTimeout < 5*time.Second || c.AgentTimeout > 24*time.Hour {
		bad("agent-timeout", "SMSFLOW_AGENT_TIMEOUT", "must be between 5s and 24h")
	}
	if c.CommandRedeliver < time.Second || c.CommandRedeliver > 24*time.Hour {
		bad("command-redeliver", "SMSFLOW_COMMAND_REDELIVER", "must be between 1s and 24h")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", "SMSFLOW_SHUTDOWN_TIMEOUT", "must be positive")
	}
	if c.TemporalAddress != "" {
		if _, _, err := net.SplitHostPort(c.TemporalAddress); err != nil {
			bad("temporal-address", "SMSFLOW_TEMPORAL_ADDRESS", fmt.Sprintf("%q is not host:port", c.TemporalAddress))
		}
	}
	if c.TemporalRetention < 24*time.Hour {
		bad("temporal-retention", "SMSFLOW_TEMPORAL_RETENTION", "must be at least 24h")
	}
	if c.TimeZone != "Local" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			bad("timezone", "SMSFLOW_TIMEZONE", fmt.Sprintf("%q is not a time zone: %v", c.TimeZone, err))
		}
	}
	if c.SyncInterval < time.Second {
		bad("sync-interval", "SMSFLOW_SYNC_INTERVAL", "must be at least 1s")
	}
	if c.AgentStepTimeout < 10*time.Second {
		bad("agent-step-timeout", "SMSFLOW_AGENT_STEP_TIMEOUT", "must be at least 10s")
	}
	if (c.TemporalTLSCert == "") != (c.TemporalTLSKey == "") {
		bad("temporal-tls-cert", "SMSFLOW_TEMPORAL_TLS_CERT", "set both the certificate and the key, or neither")
	}
	for _, a := range []struct{ flag, env, v string }{{"temporal-ui-addr", "SMSFLOW_TEMPORAL_UI_ADDR", c.TemporalUIAddr},
		{"temporal-embedded-addr", "SMSFLOW_TEMPORAL_EMBEDDED_ADDR", c.TemporalEmbedAddr},
		{"worker-health-addr", "SMSFLOW_WORKER_HEALTH_ADDR", c.WorkerHealthAddr}} {
		if a.v != "" {
			if _, _, err := net.SplitHostPort(a.v); err != nil {
				bad(a.flag, a.env, fmt.Sprintf("%q is not host:port", a.v))
			}
		}
	}
	c.validateReceivers(bad)
	if strings.TrimSpace(c.TemporalNamespace) == "" {
		bad("temporal-namespace", "SMSFLOW_TEMPORAL_NAMESPACE", "must not be empty")
	}
	if c.SecretKey != "" && !validKey(c.SecretKey) {
		bad("secret-key", "SMSFLOW_SECRET_KEY", "must be 32 bytes in base64 or hex")
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return errors.New("invalid configuration:\n  " + strings.Join(msgs, "\n  "))
	}
	return nil
}

func validKey(s string) bool {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return true
		}
	}
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

// validateReceivers checks the receivers' addresses: the listen host is an IP
// literal, an agent is never told to dial "every interface", and a port
// range is well formed.
func (c Config) validateReceivers(bad func(flag, env, msg string)) {
	ip := net.ParseIP(c.ReceiverListen)
	if ip == nil {
		bad("receiver-listen", "SMSFLOW_RECEIVER_LISTEN", fmt.Sprintf("%q is not an IP address", c.ReceiverListen))
	}
	adv := strings.TrimSpace(c.ReceiverAdvertise)
	switch {
	case adv == "" && ip != nil && ip.IsUnspecified():
		// The worker cannot tell which of its addresses the source servers
		// reach (nor the API's public name: web may run elsewhere), so it is
		// asked rather than guessed.
		bad("receiver-advertise", "SMSFLOW_RECEIVER_ADVERTISE", fmt.Sprintf("required when --receiver-listen is %s: the address source servers dial", c.ReceiverListen))
	case adv != "" && (adv != c.ReceiverAdvertise || strings.ContainsAny(adv, "/[] ") || (strings.Contains(adv, ":") && net.ParseIP(adv) == nil)):
		bad("receiver-advertise", "SMSFLOW_RECEIVER_ADVERTISE", fmt.Sprintf("%q is not a host name or IP address (no port)", c.ReceiverAdvertise))
	case adv != "" && net.ParseIP(adv) != nil && net.ParseIP(adv).IsUnspecified():
		bad("receiver-advertise", "SMSFLOW_RECEIVER_ADVERTISE", fmt.Sprintf("%q is no address an agent can dial", c.ReceiverAdvertise))
	}
	if _, _, err := ParsePortRange(c.ReceiverPorts); err != nil {
		bad("receiver-ports", "SMSFLOW_RECEIVER_PORTS", err.Error())
	}
}

// ReceiverHost is the host agents are told to dial: --receiver-advertise, or
// the listen address when that is one address.
func (c Config) ReceiverHost() string {
	if c.ReceiverAdvertise != "" {
		return c.ReceiverAdvertise
	}
	return c.ReceiverListen
}

// ParsePortRange reads "LO-HI" (or one port); empty is 0, 0: any port.
func ParsePortRange(s string) (lo, hi int, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, 0, nil
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		b = a
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("%q is not a port range like 8900-8999 (ports 1 to 65535, low first)", s)
	}
	return lo, hi, nil
}
