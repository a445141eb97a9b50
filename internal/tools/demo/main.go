// Command demo migrates a disk end to end against a running `smsflow serve`:
// it makes a 256 MiB disk image, runs an agent for it (in this process, the
// same code as sms-agent), creates the task, shows its progress and checks
// that the target is byte-for-byte the source.
//
//	go run ./cmd/smsflow serve        # one terminal
//	go run ./internal/tools/demo            # another
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/smsflow/smsflow/agent/discover"
	"github.com/smsflow/smsflow/agent/runner"
	"github.com/smsflow/smsflow/agent/smsapi"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/testkit/diskimage"
)

type credentials struct {
	ProjectID string `json:"project_id"`
	AK        string `json:"ak"`
	SK        string `json:"sk"`
}

func main() {
	server := flag.String("server", "http://127.0.0.1:8080", "smsflow API")
	dataDir := flag.String("data-dir", "./data", "serve's data dir (for admin-credentials.json)")
	work := flag.String("work", "./demo", "where the demo keeps its disk image and agent state")
	size := flag.Int64("size-mib", 256, "disk size in MiB")
	// 200 Mbit/s: the copy takes a few seconds, long enough to watch; 0 lifts
	// the limit (a 256 MiB disk then copies in about a second).
	mbps := flag.Int("speed-limit", 200, "speed limit in Mbit/s (0: none)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *server, *dataDir, *work, *size<<20, *mbps); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, server, dataDir, work string, size int64, mbps int) error {
	raw, err := os.ReadFile(filepath.Join(dataDir, "admin-credentials.json"))
	if err != nil {
		return fmt.Errorf("read the admin credentials (is serve running with --data-dir %s?): %w", dataDir, err)
	}
	var c credentials
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	img, err := filepath.Abs(filepath.Join(work, "demo-disk.img"))
	if err != nil {
		return err
	}
	fmt.Printf("1/4 making a %d MiB disk image: %s\n", size>>20, img)
	if err := diskimage.Source(img, size, uint64(size)); err != nil {
		return err
	}
	api := &smsapi.Client{BaseURL: server, AK: c.AK, SK: c.SK, ProjectID: c.ProjectID, HTTP: &http.Client{Timeout: time.Minute}}
	name := fmt.Sprintf("demo-%d-%04x", time.Now().Unix(), rand.Uint32N(1<<16)) // unique even for runs in the same second
	images := map[string]string{"/dev/vda": img}
	r := runner.New(runner.Config{
		API: api, DiskPaths: images, StateDir: filepath.Join(work, name), PollWait: 2 * time.Second,
		ProgressEvery: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Discover: func(ctx context.Context) (any, error) {
			src, err := discover.Discover(ctx, discover.Options{Name: name, DiskImages: images, OnlyImages: true,
				AgentVersion: discover.AgentVersionPrefix + "demo"})
			if err != nil {
				return nil, err
			}
			// Each run is a new source: this machine's id would bring back
			// the previous run's source, already migrated.
			src.MachineID = name
			return src, nil
		},
	})
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	agentErr := make(chan error, 1)
	go func() { agentErr <- r.Run(actx) }()
	fmt.Println("2/4 the agent registers the source server", name)
	for r.SourceID() == "" {
		select {
		case err := <-agentErr:
			return fmt.Errorf("agent: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	call := func(method, path string, in, out any) error { return signed(ctx, api, method, path, in, out) }
	var task struct {
		ID string `json:"id"`
	}
	body := map[string]any{"name": name, "type": sms.MigrateBlock, "os_type": sms.Linux,
		"source_server": map[string]any{"id": r.SourceID()}, "target_server": map[string]any{"vm_id": "", "name": name + "-target"},
		"region_name": "local", "region_id": "local", "project_name": "default", "project_id": c.ProjectID, "syncing": false}
	if mbps > 0 {
		body["speed_limit"] = mbps
	}
	if err := call("POST", "/v3/tasks", body, &task); err != nil {
		return fmt.Errorf("create the task: %w", err)
	}
	fmt.Println("3/4 migration task", task.ID)
	var show struct {
		State        sms.TaskState `json:"state"`
		MigrateSpeed float64       `json:"migrate_speed"`
		ErrorJSON    string        `json:"error_json"`
		WorkflowURL  string        `json:"workflow_url"`
		SubTasks     []struct {
			Name     string `json:"name"`
			Progress int    `json:"progress"`
		} `json:"sub_tasks"`
		TargetServer struct {
			Location string `json:"location"`
		} `json:"target_server"`
	}
	for {
		if err := call("GET", "/v3/tasks/"+task.ID, nil, &show); err != nil {
			return err
		}
		// The step shown is the first one not finished (the last one once
		// all are).
		step, pct := "", 0
		for _, st := range show.SubTasks {
			step, pct = st.Name, st.Progress
			if st.Progress < 100 {
				break
			}
		}
		if show.State == sms.TaskMigrateSuccess {
			pct = 100
		}
		fmt.Printf("\r    %-16s %-26s [%-30s] %3d%% %7.1f Mbit/s ", show.State, step,
			strings.Repeat("#", pct*30/100), pct, show.MigrateSpeed)
		if show.State == sms.TaskMigrateSuccess || show.State == sms.TaskMigrateFail {
			fmt.Println()
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if show.State == sms.TaskMigrateFail {
		return fmt.Errorf("the task failed: %s", show.ErrorJSON)
	}
	target := filepath.Join(show.TargetServer.Location, "disk-0.img")
	same, err := sameHead(img, target)
	if err != nil {
		return err
	}
	fmt.Printf("4/4 target %s identical to the source: %v\n", target, same)
	if show.WorkflowURL != "" {
		fmt.Println("    the run in the Temporal UI:", show.WorkflowURL)
	}
	if !same {
		return fmt.Errorf("the target differs")
	}
	return nil
}

func signed(ctx context.Context, api *smsapi.Client, method, path string, in, out any) error {
	return api.Call(ctx, method, path, in, out)
}

func sameHead(source, target string) (bool, error) {
	st, err := os.Stat(source)
	if err != nil {
		return false, err
	}
	sum := func(p string) ([]byte, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, io.LimitReader(f, st.Size())); err != nil {
			return nil, err
		}
		return h.Sum(nil), nil
	}
	a, err := sum(source)
	if err != nil {
		return false, err
	}
	b, err := sum(target)
	if err != nil {
		return false, err
	}
	return bytes.Equal(a, b), nil
}
