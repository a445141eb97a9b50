package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/smsflow/smsflow/internal/sms"
)

// Command states.
const (
	CommandQueued = "queued"
	CommandIssued = "issued"
	CommandDone   = "done"
)

// Command is an order for a source's agent (§4.3): queued by the server,
// handed out by GET /v3/sources/{id}/command, closed by command_result.
// Seq orders them and lets pollers ask "anything new since".
type Command struct {
	Seq      int64       `gorm:"primaryKey;autoIncrement"`
	ID       string      `gorm:"size:64;not null"`
	DomainID string      `gorm:"size:64;not null"`
	SourceID string      `gorm:"size:64;not null"`
	Name     sms.Command `gorm:"size:32;not null"`
	TaskID   string      `gorm:"size:64;not null"`
	Bucket   string      `gorm:"size:255;not null"`
	// Params is extra JSON for the agent (speed limit, target address...).
	Params       string            `gorm:"type:longtext"`
	State        string            `gorm:"size:16;not null"`
	Deliveries   int32             `gorm:"not null"`
	Result       sms.CommandResult `gorm:"size:16;not null"`
	ResultDetail string            `gorm:"type:longtext"`
	CreatedAt    time.Time         `gorm:"not null"`
	IssuedAt     *time.Time        `gorm:""`
	DoneAt       *time.Time        `gorm:""`
}

// ErrNotIssued: a result for a command the server did not hand out (SMS.6021).
var ErrNotIssued = errors.New("store: command not issued")

// EnqueueCommand queues a command for a source of the tenant. A command
// whose id is already queued is not queued twice (ErrDuplicate): a retried
// activity gives its command the same id.
func (s *Store) EnqueueCommand(ctx context.Context, t Tenant, c *Command) error {
	c.DomainID = t.DomainID
	c.State = CommandQueued
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now().UTC()
	}
	if err := s.db.WithContext(ctx).Create(c).Error; err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("enqueue command %s: %w", c.ID, ErrDuplicate)
		}
		return fmt.Errorf("enqueue command: %w", err)
	}
	return nil
}

// NextCommand hands out the source's oldest open command: a queued one, or
// one issued more than redeliver ago whose result never came (the agent may
// have died before acting on it: delivery is at least once, and an agent
// treats a repeated command for the same task as the same order).
//
// Most polls find nothing, so the look is a plain read; only a found command
// is claimed, by a conditional update that one poller alone can win.
func (s *Store) NextCommand(ctx context.Context, t Tenant, sourceID string, now time.Time, redeliver time.Duration) (*Command, error) {
	stale := now.Add(-redeliver).UTC()
	for attempt := 0; attempt < 5; attempt++ {
		var c Command
		err := s.db.WithContext(ctx).
			Where("domain_id = ? AND source_id = ? AND (state = ? OR (state = ? AND issued_at < ?))",
				t.DomainID, sourceID, CommandQueued, CommandIssued, stale).
			Order("seq").Take(&c).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("next command: %w", err)
		}
		at := now.UTC()
		res := s.db.WithContext(ctx).Model(&Command{}).
			Where("seq = ? AND (state = ? OR (state = ? AND issued_at < ?))", c.Seq, CommandQueued, CommandIssued, stale).
			Updates(map[string]any{"state": CommandIssued, "issued_at": at, "deliveries": gorm.Expr("deliveries + 1")})
		if res.Error != nil {
			return nil, fmt.Errorf("claim command: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			c.State, c.IssuedAt, c.Deliveries = CommandIssued, &at, c.Deliveries+1
			return &c, nil
		}
		// Another poll of the same source claimed it first: look again.
	}
	return nil, nil
}

// CompleteCommand records an agent's result for the command id of that name
// (handed out with the command; our extension), or, from an agent that sends
// no id, for the oldest issued command of that name. Reporting the same
// result again for a command already done is accepted (the agent may retry
// after a lost answer); anything else that was never handed out is
// ErrNotIssued.
//
// The id matters when two commands of one name are open: a SYNC queued while
// the previous SYNC finishes must not be closed by the previous one's result.
func (s *Store) CompleteCommand(ctx context.Context, t Tenant, sourceID, id string, name sms.Command, result sms.CommandResult, detail string, now time.Time) (*Command, error) {
	var out *Command
	err := s.tx(ctx, func(tx *gorm.DB) error {
		mine := func() *gorm.DB {
			q := tx.Where("domain_id = ? AND source_id = ? AND name = ?", t.DomainID, sourceID, name)
			if id != "" {
				q = q.Where("id = ?", id)
			}
			return q
		}
		var c Command
		err := mine().Where("state = ?", CommandIssued).Order("seq").First(&c).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			var last Command
			err := mine().Where("state = ?", CommandDone).Order("seq DESC").First(&last).Error
			if err == nil && last.Result == result && last.ResultDetail == detail {
				out = &last
				return nil
			}
			return ErrNotIssued
		}
		if err != nil {
			return err
		}
		at := now.UTC()
		c.State, c.Result, c.ResultDetail, c.DoneAt = CommandDone, result, detail, &at
		if err := tx.Model(&Command{}).Where("seq = ?", c.Seq).Updates(map[string]any{
			"state": c.State, "result": result, "result_detail": detail, "done_at": at}).Error; err != nil {
			return err
		}
		out = &c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// QueuedSince lists (seq, domain, source) of commands queued after seq: the
// long-poll notifier's cross-process feed.
func (s *Store) QueuedSince(ctx context.Context, seq int64, limit int) ([]Command, error) {
	var out []Command
	err := s.db.WithContext(ctx).Model(&Command{}).Select("seq", "domain_id", "source_id").
		Where("seq > ? AND state = ?", seq, CommandQueued).Order("seq").Limit(limit).Find(&out).Error
	return out, err
}

// MaxCommandSeq is where a notifier starts.
func (s *Store) MaxCommandSeq(ctx context.Context) (int64, error) {
	var n *int64
	err := s.db.WithContext(ctx).Model(&Command{}).Select("MAX(seq)").Scan(&n).Error
	if n == nil {
		return 0, err
	}
	return *n, err
}

// Commands lists a source's commands, newest first (for operators and tests).
func (s *Store) Commands(ctx context.Context, t Tenant, sourceID string) ([]Command, error) {
	var out []Command
	err := s.db.WithContext(ctx).Where("domain_id = ? AND source_id = ?", t.DomainID, sourceID).Order("seq DESC").Find(&out).Error
	return out, err
}
