package syncserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresChannel is the NOTIFY channel of change announcements.
const postgresChannel = "opfsync_changes"

// announcement is the payload of one NOTIFY: the user whose data changed,
// the client that changed it, and the store instance that committed it.
// Its JSON stays far below PostgreSQL's 8000-byte payload limit (a user id
// is at most MaxUserIDBytes, a client id protocol.MaxNodeLen).
type announcement struct {
	Instance string `json:"i"`
	User     string `json:"u"`
	Except   string `json:"c"`
}

func encodeAnnouncement(a announcement) (string, error) {
	b, err := json.Marshal(a)
	return string(b), err
}

// Reconnection delays of Follow's listener.
const (
	followRetryMin = 100 * time.Millisecond
	followRetryMax = 5 * time.Second
)

// Follow implements SharedStore. It holds one connection of its own
// (outside the pool) that LISTENs on postgresChannel.
func (s *PostgresStore) Follow(ctx context.Context, log *slog.Logger, wake func(user, exceptClientID string), wakeAll func()) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-s.closed.Done():
			stop()
		case <-ctx.Done():
		}
	}()
	delay := followRetryMin
	for ctx.Err() == nil {
		listening, err := s.listen(ctx, wake, wakeAll)
		if ctx.Err() != nil {
			return
		}
		if listening {
			delay = followRetryMin // it worked for a while: retry soon
		}
		log.Warn("postgres change feed lost; reconnecting", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, followRetryMax)
	}
}

// listen connects, LISTENs, calls wakeAll (anything may have happened while
// no one listened) and then passes on announcements until the connection
// fails or ctx ends. listening reports whether it got as far as listening.
func (s *PostgresStore) listen(ctx context.Context, wake func(user, exceptClientID string), wakeAll func()) (listening bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+postgresChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	wakeAll()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		var a announcement
		if json.Unmarshal([]byte(n.Payload), &a) != nil || a.User == "" {
			wakeAll() // not one of ours as we know them: wake everyone rather than miss one
			continue
		}
		if a.Instance != s.instance {
			wake(a.User, a.Except)
		}
	}
}
