// Package smsapi is the agent's client of the SMS API: AK/SK-signed calls
// for registration, commands, progress, task credentials and consistency
// results. Transient failures (network errors, 5xx, 429) are retried with
// backoff by the caller's loop, not here: every method does one request.
package smsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/smsflow/smsflow/internal/identity/signer"
	"github.com/smsflow/smsflow/internal/sms"
)

// Client calls one SMS endpoint as one AK/SK.
type Client struct {
	BaseURL   string // http(s)://host:port
	AK, SK    string
	ProjectID string
	HTTP      *http.Client
	// MachineID identifies the machine across re-installs (X-Smsflow-Machine-Id).
	MachineID string
}

// APIError is an error answer of the API.
type APIError struct {
	Status int
	Code   string `json:"error_code"`
	Msg    string `json:"error_msg"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("sms api: %d %s: %s", e.Status, e.Code, e.Msg)
}

// Temporary tells whether retrying may help (server faults, throttling).
func (e *APIError) Temporary() bool { return e.Status >= 500 || e.Status == http.StatusTooManyRequests }

// IsTemporary: a network error or a temporary API error.
func IsTemporary(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Temporary()
	}
	return err != nil && !errors.Is(err, context.Canceled)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	return c.send(ctx, method, path, "application/json", body, out)
}

// send is one signed request with a ready body.
func (c *Client) send(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Project-Id", c.ProjectID)
	req.Header.Set("User-Agent", "sms-agent")
	if c.MachineID != "" {
		req.Header.Set("X-Smsflow-Machine-Id", c.MachineID)
	}
	if err := signer.Sign(req, body, c.AK, c.SK, time.Now()); err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("sms api: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("sms api: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		_ = json.Unmarshal(b, ae)
		if ae.Msg == "" {
			ae.Msg = strings.TrimSpace(string(b))
		}
		return ae
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("sms api: %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Call is one signed request to any endpoint (tools and demos).
func (c *Client) Call(ctx context.Context, method, path string, in, out any) error {
	return c.do(ctx, method, path, in, out)
}

// Register posts the machine's facts (POST /v3/sources) and returns its id.
func (c *Client) Register(ctx context.Context, body any) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "/v3/sources", body, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// SignPrivacy signs the privacy agreement (POST /v3/privacy-agreements).
func (c *Client) SignPrivacy(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v3/privacy-agreements", map[string]any{}, nil)
}

// Command is a command for the agent.
type Command struct {
	Name sms.Command `json:"command_name"`
	// ID tells this command from others of the same name (smsflow's
	// extension; empty from a server without it).
	ID    string          `json:"command_id,omitempty"`
	Param json.RawMessage `json:"command_param"`
}

// NextCommand long-polls the source's next command for up to wait; an
// empty Name means none.
func (c *Client) NextCommand(ctx context.Context, sourceID string, wait time.Duration) (Command, error) {
	var cmd Command
	q := url.Values{"wait": {strconv.Itoa(int(wait / time.Second))}}
	err := c.do(ctx, http.MethodGet, "/v3/sources/"+url.PathEscape(sourceID)+"/command?"+q.Encode(), nil, &cmd)
	return cmd, err
}

// CommandResult reports how a command went; id is the command's command_id
// (empty: the server closes the oldest open command of the name).
func (c *Client) CommandResult(ctx context.Context, sourceID, id string, name sms.Command, result sms.CommandResult, detail map[string]string) error {
	body := map[string]any{"command_name": name, "result": result, "result_detail": detail}
	if id != "" {
		body["command_id"] = id
	}
	return c.do(ctx, http.MethodPost, "/v3/sources/"+url.PathEscape(sourceID)+"/command_result", body, nil)
}

// AgentTimeout is the server's --agent-timeout (GET /v3/config,
// agent_timeout_seconds): an agent silent this long reads disconnected.
// Zero when the server does not say.
func (c *Client) AgentTimeout(ctx context.Context) (time.Duration, error) {
	var out struct {
		Config map[string]string `json:"config"`
	}
	if err := c.do(ctx, http.MethodGet, "/v3/config", nil, &out); err != nil {
		return 0, err
	}
	secs, err := strconv.Atoi(out.Config["agent_timeout_seconds"])
	if err != nil || secs <= 0 {
		return 0, nil
	}
	return time.Duration(secs) * time.Second, nil
}

// Progress is PUT /v3/tasks/{id}/progress.
type Progress struct {
	Subtask       sms.Subtask `json:"subtask_name"`
	Progress      int32       `json:"progress"`
	Replicatesize int64       `json:"replicatesize"`
	Totalsize     int64       `json:"totalsize"`
	ProcessTrace  string      `json:"process_trace"`
	MigrateSpeed  float64     `json:"migrate_speed"`
	CompressRate  float64     `json:"compress_rate"`
	RemainTime    int64       `json:"remain_time"`
	TotalCPU      float64     `json:"total_cpu_usage"`
	AgentCPU      float64     `json:"agent_cpu_usage"`
	TotalMem      float64     `json:"total_mem_usage"`
	AgentMem      float64     `json:"agent_mem_usage"`
	TotalDiskIO   float64     `json:"total_disk_io"`
	AgentDiskIO   float64     `json:"agent_disk_io"`
	AgentTime     string      `json:"agent_time"`
}

// ReportProgress sends a progress report.
func (c *Client) ReportProgress(ctx context.Context, taskID string, p Progress) error {
	return c.do(ctx, http.MethodPut, "/v3/tasks/"+url.PathEscape(taskID)+"/progress", p, nil)
}

// TaskCreds is the task's certificate, key and passphrase.
func (c *Client) TaskCreds(ctx context.Context, taskID string) (cert, key, passphrase string, err error) {
	var ck struct {
		Cert string `json:"cert"`
		Key  string `json:"private_key"`
	}
	if err = c.do(ctx, http.MethodGet, "/v3/tasks/"+url.PathEscape(taskID)+"/certkey", nil, &ck); err != nil {
		return
	}
	var pp struct {
		Passphrase string `json:"passphrase"`
	}
	if err = c.do(ctx, http.MethodGet, "/v3/tasks/"+url.PathEscape(taskID)+"/passphrase", nil, &pp); err != nil {
		return
	}
	return ck.Cert, ck.Key, pp.Passphrase, nil
}

// Consistency is one line of a consistency result: a disk (block level,
// counting blocks) or a directory (file level, counting files).
type Consistency struct {
	DirCheck   string `json:"dir_check"`
	Total      int32  `json:"num_total_files"`
	Different  int32  `json:"num_different_files"`
	TargetMiss int32  `json:"num_target_miss_files"`
	TargetMore int32  `json:"num_target_more_files"`
}

// ReportConsistency posts the task's verification results.
func (c *Client) ReportConsistency(ctx context.Context, taskID string, rs []Consistency) error {
	return c.do(ctx, http.MethodPost, "/v3/tasks/"+url.PathEscape(taskID)+"/consistency-result",
		map[string]any{"consistency_result": rs}, nil)
}

// NetworkCheckInfo is POST /v3/{task_id}/update-network-check-info: what a
// network check measured between the source and its target.
type NetworkCheckInfo struct {
	DomainConnectivity      bool    `json:"domain_connectivity"`      // the SMS API answers
	DestinationConnectivity bool    `json:"destination_connectivity"` // the target's receiver answers
	NetworkDelay            float64 `json:"network_delay"`            // ms, mean round trip
	NetworkJitter           float64 `json:"network_jitter"`           // ms
	MigrationSpeed          float64 `json:"migration_speed"`          // Mbit/s
	LossPercentage          float64 `json:"loss_percentage"`          // %
	CPUUsage                float64 `json:"cpu_usage"`                // % of the host
	MemUsage                float64 `json:"mem_usage"`                // % of the host
	EvaluationResult        string  `json:"evaluation_result"`        // healthy, degraded or failed
}

// UpdateNetworkCheckInfo reports a network check.
func (c *Client) UpdateNetworkCheckInfo(ctx context.Context, taskID string, info NetworkCheckInfo) error {
	return c.do(ctx, http.MethodPost, "/v3/"+url.PathEscape(taskID)+"/update-network-check-info", info, nil)
}

// UploadLog sends the agent's log for a task (PUT /v3/tasks/{id}/agent-log,
// smsflow's extension), under the bucket name the operator gave.
func (c *Client) UploadLog(ctx context.Context, taskID, bucket string, text []byte) error {
	q := url.Values{"bucket": {bucket}}
	return c.send(ctx, http.MethodPut, "/v3/tasks/"+url.PathEscape(taskID)+"/agent-log?"+q.Encode(),
		"text/plain; charset=utf-8", text, nil)
}
