package syncengine

import (
	"context"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// The pull states. A pull cycle goes Idle → FetchingFirstPage →
// (FetchingNextPage)* → Idle, or → Error with the error text.
const (
	PullIdle          = "Idle"
	PullFetchingFirst = "FetchingFirstPage"
	PullFetchingNext  = "FetchingNextPage"
	PullError         = "Error"
)

// PullState is the persisted state of the pull loop. Cursor is the server
// position after the last applied page; Epoch identifies the current pull
// generation (ResetPull bumps it, and a page fetched under an older epoch is
// discarded); Hydrated is set once the first full pull has completed.
type PullState struct {
	State    string `json:"state"`
	Error    string `json:"error"`
	Cursor   string `json:"cursor"`
	Epoch    int64  `json:"epoch"`
	Hydrated bool   `json:"hydrated"`
}

// PullPageResult reports what ApplyPullPage did.
type PullPageResult struct {
	Applied bool // false when the page answered an older epoch and was discarded
	Changed int  // records whose base changed
	Skipped int  // records refused (invalid, or immutable records met again)
	State   PullState
}

func (e *Engine) readPullState() (PullState, error) {
	var ps PullState
	err := e.stmts.query(`SELECT state, error, cursor, epoch, hydrated FROM pull_state WHERE id = 1`, nil,
		func(st *sqlite3.Stmt) error {
			ps = PullState{State: st.ColumnText(0), Error: st.ColumnText(1), Cursor: st.ColumnText(2),
				Epoch: st.ColumnInt64(3), Hydrated: st.ColumnBool(4)}
			return nil
		})
	return ps, storageErr("read pull state", err)
}

func (e *Engine) savePullState(ps PullState) error {
	return storageErr("save pull state", e.stmts.exec(
		`UPDATE pull_state SET state = ?, error = ?, cursor = ?, epoch = ?, hydrated = ? WHERE id = 1`,
		ps.State, ps.Error, ps.Cursor, ps.Epoch, ps.Hydrated))
}

// resetInterruptedPull runs at open: a pull left Fetching* by a crash or a
// closed page is back to Idle (its cursor still points after the last
// applied page, so the next pull resumes there).
func (e *Engine) resetInterruptedPull() error {
	return storageErr("reset pull state", e.stmts.exec(
		`UPDATE pull_state SET state = 'Idle' WHERE id = 1 AND state IN ('FetchingFirstPage', 'FetchingNextPage')`))
}

// PullState returns the persisted pull state.
func (e *Engine) PullState(ctx context.Context) (PullState, error) {
	var ps PullState
	err := e.call(ctx, func() (err error) {
		ps, err = e.readPullState()
		return err
	})
	return ps, err
}

// BeginPull starts a pull cycle (state FetchingFirstPage) and returns the
// state to fetch with: the cursor to ask from and the epoch to hand back to
// ApplyPullPage or FailPull.
func (e *Engine) BeginPull(ctx context.Context) (PullState, error) {
	var ps PullState
	err := e.call(ctx, func() error {
		return e.write(func(t *txn) (err error) {
			if ps, err = e.readPullState(); err != nil {
				return err
			}
			ps.State, ps.Error = PullFetchingFirst, ""
			return e.savePullState(ps)
		})
	})
	return ps, err
}

// ApplyPullPage applies one fetched page in one transaction: its records
// merge into base, the visible rows of the touched records are recomputed,
// the cursor advances, and the state becomes FetchingNextPage (more pages)
// or Idle (done; the first completed pull marks the store hydrated).
// Conflict events are suppressed until the store is hydrated. A page whose
// epoch is not the current one is discarded (Applied false).
func (e *Engine) ApplyPullPage(ctx context.Context, epoch int64, page *protocol.PullResponse) (PullPageResult, error) {
	var res PullPageResult
	err := e.call(ctx, func() error {
		return e.write(func(t *txn) error {
			ps, err := e.readPullState()
			if err != nil {
				return err
			}
			res.State = ps
			if ps.Epoch != epoch {
				return nil
			}
			rr, err := e.applyRemote(t, page.Changes, ps.Hydrated)
			if err != nil {
				return err
			}
			res.Applied, res.Changed, res.Skipped = true, rr.changed, rr.skipped
			ps.Cursor, ps.Error = page.Cursor, ""
			if page.HasMore {
				ps.State = PullFetchingNext
			} else {
				ps.State, ps.Hydrated = PullIdle, true
			}
			res.State = ps
			return e.savePullState(ps)
		})
	})
	return res, err
}

// FailPull records a failed fetch: state Error with the message. A failure
// reported under an older epoch is ignored.
func (e *Engine) FailPull(ctx context.Context, epoch int64, message string) error {
	return e.call(ctx, func() error {
		return e.write(func(t *txn) error {
			ps, err := e.readPullState()
			if err != nil || ps.Epoch != epoch {
				return err
			}
			ps.State, ps.Error = PullError, message
			return e.savePullState(ps)
		})
	})
}

// ResetPull starts a full resync: the cursor goes back to the beginning and
// the epoch is bumped, so pages still in flight for the old epoch are
// discarded when they arrive. Local data and the outbox are kept; the
// re-pulled records merge idempotently.
func (e *Engine) ResetPull(ctx context.Context) (PullState, error) {
	var ps PullState
	err := e.call(ctx, func() error {
		return e.write(func(t *txn) (err error) {
			if ps, err = e.readPullState(); err != nil {
				return err
			}
			ps = PullState{State: PullIdle, Epoch: ps.Epoch + 1, Hydrated: ps.Hydrated}
			return e.savePullState(ps)
		})
	})
	return ps, err
}

// ApplyRemotePage applies one page of remote changes as a complete pull
// cycle of its own (begin, apply, done), exactly as if the sync loop had
// fetched it. For benchmarks and tests that measure or exercise the apply
// path without a server; apps never need it.
func (e *Engine) ApplyRemotePage(ctx context.Context, page *protocol.PullResponse) (PullPageResult, error) {
	ps, err := e.BeginPull(ctx)
	if err != nil {
		return PullPageResult{}, err
	}
	cp := *page
	if cp.Cursor == "" {
		cp.Cursor = ps.Cursor // keep the position: the page did not come from the server
	}
	return e.ApplyPullPage(ctx, ps.Epoch, &cp)
}
