package syncserver

import (
	"context"
	"fmt"
)

// Changes implements Store. One statement reads one snapshot; since a
// user's commits take turns and take their positions in commit order, a
// snapshot that holds a position holds every smaller one of that user.
func (s *PostgresStore) Changes(ctx context.Context, user string, after int64, limit int) ([]Change, error) {
	rows, err := s.pool.Query(ctx, changesQuery, user, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres changes: %w", err)
	}
	defer rows.Close()
	return readChanges(rows, "postgres")
}

// Head implements Store.
func (s *PostgresStore) Head(ctx context.Context, user string) (int64, error) {
	var head int64
	if err := s.pool.QueryRow(ctx, headQuery, user).Scan(&head); err != nil {
		return 0, fmt.Errorf("postgres head: %w", err)
	}
	return head, nil
}

// Stats implements Store.
func (s *PostgresStore) Stats(ctx context.Context, user string) (Stats, error) {
	var st Stats
	if err := s.pool.QueryRow(ctx, statsQuery, user).Scan(&st.Records, &st.Applied, &st.Rejected); err != nil {
		return Stats{}, fmt.Errorf("postgres stats: %w", err)
	}
	return st, nil
}
