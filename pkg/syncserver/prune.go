package syncserver

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// PruneVerdicts implements VerdictPruner. It waits for the writer slot like
// Update.
func (s *SQLiteStore) PruneVerdicts(ctx context.Context, before time.Time, limit int) (int64, error) {
	release, err := s.takeWriter(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlite prune verdicts: %w", err)
	}
	defer release()
	res, err := s.db.ExecContext(ctx, pruneQuery, before.UnixMilli(), limit)
	if err != nil {
		return 0, fmt.Errorf("sqlite prune verdicts: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite prune verdicts: %w", err)
	}
	return n, nil
}

// PruneVerdicts implements VerdictPruner. Instances pruning at once each
// delete what they find; none fails for the others.
func (s *PostgresStore) PruneVerdicts(ctx context.Context, before time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, pruneQuery, before.UnixMilli(), limit)
	if err != nil {
		return 0, fmt.Errorf("postgres prune verdicts: %w", err)
	}
	return tag.RowsAffected(), nil
}

// pruneBatch is how many verdicts one PruneVerdicts call deletes at most,
// so that no single transaction holds the writer long.
const pruneBatch = 10_000

// PruneVerdictsEvery forgets, every interval until ctx ends, the verdicts
// of store older than retention (but those marked Keep), in batches of
// pruneBatch, and logs how many it removed. A failed round is logged and
// tried again at the next interval. It returns when ctx ends.
//
// A mutation retried after its verdict was pruned is decided again: one
// applied with its own stamp changes nothing the second time (field-level
// LWW keeps the newer stamps, and it was applied before), but the answer is
// "applied" instead of "duplicate", and a refused one may pass a policy
// that changed. Choose a retention longer than a client may keep an
// unanswered push (a device offline for months).
func PruneVerdictsEvery(ctx context.Context, store VerdictPruner, retention, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var total int64
		for ctx.Err() == nil {
			n, err := store.PruneVerdicts(ctx, time.Now().Add(-retention), pruneBatch)
			total += n
			if err != nil {
				if ctx.Err() == nil {
					log.Error("prune verdicts", "err", err, "removed", total)
				}
				break
			}
			if n < pruneBatch {
				break
			}
		}
		if total > 0 {
			log.Info("pruned verdicts", "removed", total, "older than", time.Now().Add(-retention).UTC().Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
