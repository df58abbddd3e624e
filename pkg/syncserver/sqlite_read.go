package syncserver

import (
	"context"
	"fmt"
)

// Changes implements Store.
func (s *SQLiteStore) Changes(ctx context.Context, user string, after int64, limit int) ([]Change, error) {
	rows, err := s.db.QueryContext(ctx, changesQuery, user, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite changes: %w", err)
	}
	defer rows.Close()
	return readChanges(rows, "sqlite")
}

// Head implements Store.
func (s *SQLiteStore) Head(ctx context.Context, user string) (int64, error) {
	var head int64
	if err := s.db.QueryRowContext(ctx, headQuery, user).Scan(&head); err != nil {
		return 0, fmt.Errorf("sqlite head: %w", err)
	}
	return head, nil
}

// Stats implements Store.
func (s *SQLiteStore) Stats(ctx context.Context, user string) (Stats, error) {
	var st Stats
	if err := s.db.QueryRowContext(ctx, statsQuery, user).Scan(&st.Records, &st.Applied, &st.Rejected); err != nil {
		return Stats{}, fmt.Errorf("sqlite stats: %w", err)
	}
	return st, nil
}
