package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"time"

	"gorm.io/gorm"
)

// AgentLog is a log an agent uploaded for its task (UPLOAD_LOG, asked for
// with POST /v3/tasks/{id}/log), kept gzip-compressed. The newest
// KeepAgentLogs per task are kept; deleting the task deletes them.
type AgentLog struct {
	ID        uint64    `gorm:"primaryKey;autoIncrement"`
	DomainID  string    `gorm:"size:64;not null;index:ix_agent_logs_task,priority:1"`
	TaskID    string    `gorm:"size:64;not null;index:ix_agent_logs_task,priority:2"`
	Bucket    string    `gorm:"size:255;not null"`
	Size      int64     `gorm:"not null"` // bytes before compression
	Gzip      []byte    `gorm:"not null"`
	CreatedAt time.Time `gorm:"not null"`
}

// KeepAgentLogs is how many uploads of a task are kept.
const KeepAgentLogs = 5

// SaveAgentLog stores a task's uploaded log (compressing it) and drops the
// task's uploads beyond the newest KeepAgentLogs. The task must be the
// tenant's.
func (s *Store) SaveAgentLog(ctx context.Context, t Tenant, taskID, bucket string, text []byte) (*AgentLog, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(text); err != nil {
		return nil, fmt.Errorf("compress the agent log: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress the agent log: %w", err)
	}
	l := &AgentLog{DomainID: t.DomainID, TaskID: taskID, Bucket: bucket, Size: int64(len(text)), Gzip: buf.Bytes(),
		CreatedAt: time.Now().UTC()}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Task{}).Where("domain_id = ? AND id = ?", t.DomainID, taskID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		if err := tx.Create(l).Error; err != nil {
			return err
		}
		var keep []uint64
		if err := tx.Model(&AgentLog{}).Where("domain_id = ? AND task_id = ?", t.DomainID, taskID).
			Order("id DESC").Limit(KeepAgentLogs).Pluck("id", &keep).Error; err != nil {
			return err
		}
		return tx.Where("domain_id = ? AND task_id = ? AND id NOT IN ?", t.DomainID, taskID, keep).Delete(&AgentLog{}).Error
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// LatestAgentLog is the task's newest uploaded log (ErrNotFound when none).
func (s *Store) LatestAgentLog(ctx context.Context, t Tenant, taskID string) (*AgentLog, error) {
	return first[AgentLog](s.db.WithContext(ctx).Where("domain_id = ? AND task_id = ?", t.DomainID, taskID).Order("id DESC"))
}

// Text is the log, uncompressed.
func (l *AgentLog) Text() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(l.Gzip))
	if err != nil {
		return nil, fmt.Errorf("agent log %d: %w", l.ID, err)
	}
	defer zr.Close()
	b, err := io.ReadAll(io.LimitReader(zr, l.Size+1))
	if err != nil {
		return nil, fmt.Errorf("agent log %d: %w", l.ID, err)
	}
	return b, nil
}
