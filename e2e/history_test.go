package e2e

import (
	"context"
	"os"
	"path/filepath"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"

	"github.com/smsflow/smsflow/workflows"
)

// recordEnv names the folder the e2e runs write their workflow histories to
// (SMSFLOW_RECORD_HISTORIES=../workflows/testdata/histories go test ./e2e/).
// The replay test in workflows/ replays every committed history against the
// current code, so a change that breaks determinism fails CI.
const recordEnv = "SMSFLOW_RECORD_HISTORIES"

// recordHistory writes the history of the task's latest run when recording
// is on. It runs at cleanup, before the server stops.
func (s *server) recordHistory(taskID, name string) {
	dir := os.Getenv(recordEnv)
	if dir == "" {
		return
	}
	s.t.Cleanup(func() {
		if s.t.Failed() {
			return // only good runs become fixtures
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := client.Dial(client.Options{HostPort: s.front, Namespace: "default",
			Logger: quietLogger()})
		if err != nil {
			s.t.Errorf("record history: %v", err)
			return
		}
		defer c.Close()
		hist := &historypb.History{}
		it := c.GetWorkflowHistory(ctx, workflows.MigrationWorkflowID(taskID), "", false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				s.t.Errorf("record history: %v", err)
				return
			}
			hist.Events = append(hist.Events, ev)
		}
		b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644)
		}
		if err != nil {
			s.t.Errorf("record history: %v", err)
		}
	})
}
