package syncserver

import (
	"context"
	"fmt"
)

// Changes implements Store.
func (s *SQLiteStore) Changes(ctx context.Context, user string, after int64, limit int) ([]Change, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT collection, id, fields, position FROM records
		WHERE user_id = ? AND position > ? ORDER BY position LIMIT ?`, user, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite changes: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		var text string
		if err := rows.Scan(&c.Record.Collection, &c.Record.ID, &text, &c.Position); err != nil {
			return nil, fmt.Errorf("sqlite changes: %w", err)
		}
		if c.Record.Fields, err = decodeFields(text); err != nil {
			return nil, fmt.Errorf("sqlite changes: record %s/%s: %w", c.Record.Collection, c.Record.ID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite changes: %w", err)
	}
	return out, nil
}

// Head implements Store.
func (s *SQLiteStore) Head(ctx context.Context, user string) (int64, error) {
	var head int64
	if err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(position), 0) FROM records WHERE user_id = ?`, user).Scan(&head); err != nil {
		return 0, fmt.Errorf("sqlite head: %w", err)
	}
	return head, nil
}
