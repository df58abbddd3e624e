package syncserver

import (
	"context"
	"log/slog"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// Store is the server's durable state: per user, the records (every field
// with its stamp, tombstones included), each with the change position of its
// latest save, and the verdict given to every mutation id the user pushed.
//
// A Store holds no protocol logic; the Handler validates, deduplicates,
// clamps and merges, and a Store only keeps what it is given. Every method is
// scoped to one user: no method can read or write another user's data.
// Implementations must be safe for concurrent use.
type Store interface {
	// Update runs fn in one read-write transaction on user's data and
	// commits it when fn returns nil; when fn returns an error, nothing fn
	// did is kept and Update returns that error. Transactions are
	// serialisable, and when Update returns nil the commit is durable (a
	// client forgets a mutation once the server acknowledged it). A Tx is
	// valid only while fn runs.
	Update(ctx context.Context, user string, fn func(Tx) error) error

	// Changes returns, in position order, up to limit of user's records whose
	// latest change position is greater than after. Every record appears
	// at most once, with its current state (tombstones included). Positions
	// visible to Changes never appear later below an already visible one: a
	// commit's positions are all greater than those of every commit
	// visible before it.
	Changes(ctx context.Context, user string, after int64, limit int) ([]Change, error)

	// Head returns the greatest change position of user's records, 0 when
	// the user has none.
	Head(ctx context.Context, user string) (int64, error)

	// Stats counts what the store holds for user, or for every user when
	// user is "" (for operators, and for tests' exactly-once checks).
	Stats(ctx context.Context, user string) (Stats, error)

	// Ping checks that the store can be read.
	Ping(ctx context.Context) error

	// Close releases the store. Calls after Close fail.
	Close() error
}

// Tx is one Store.Update transaction on one user's data. Reads see the
// transaction's own writes.
type Tx interface {
	// Verdict returns the verdict stored for mutationID, or ok=false when
	// the id has not been seen.
	Verdict(mutationID string) (v Verdict, ok bool, err error)

	// SaveVerdict stores the verdict for v.MutationID, which must not have
	// one yet.
	SaveVerdict(v Verdict) error

	// Record returns the fields of the record collection/id, or ok=false
	// when it does not exist. The caller may modify the returned map.
	Record(collection, id string) (fields protocol.Fields, ok bool, err error)

	// SaveRecord stores fields as the whole state of collection/id and
	// gives the record the next change position, greater than every
	// position given to the user's records before, which it returns.
	SaveRecord(collection, id string, fields protocol.Fields) (position int64, err error)

	// Announce asks that, once this transaction commits, the user's event
	// streams served by other server instances sharing the store be woken,
	// except those of client exceptClientID (whose push made the change).
	// A store that only one server instance uses does nothing; the Handler
	// wakes its own streams itself.
	Announce(exceptClientID string) error
}

// SharedStore is a Store that several server instances use at once (each
// behind the same load balancer, on one database). The Handler follows its
// announcements so that a change committed through one instance wakes the
// event streams connected to every other one.
type SharedStore interface {
	Store

	// Follow calls wake(user, exceptClientID) for every change that another
	// instance announced (Tx.Announce) and committed, and wakeAll when
	// announcements may have been missed: once it starts listening, and
	// again after each lost and restored connection. It returns when ctx
	// ends or the store is closed, never earlier: failures to listen are
	// retried (and logged through log).
	Follow(ctx context.Context, log *slog.Logger, wake func(user, exceptClientID string), wakeAll func())
}

// Verdict is what the server decided about one mutation id, kept so that a
// retried mutation is answered the same way and applied at most once.
// Status is protocol.StatusApplied or protocol.StatusRejected (a duplicate is
// an answer, never a stored verdict); Error is set exactly for rejections.
type Verdict struct {
	MutationID string
	Status     protocol.MutationStatus
	Error      *protocol.ErrorBody
	ClientID   string // the client that pushed it first
	Collection string
	RecordID   string
	At         time.Time // when the verdict was given
	// Keep marks a verdict that PruneVerdicts never removes: that of a
	// mutation the server re-stamped (clamped). A retry of it applied again
	// would carry its own, later stamp and overwrite newer edits.
	Keep bool
}

// VerdictPruner is a Store that can forget old verdicts; both built-in
// stores are. A verdict is what makes a retried mutation an answered
// duplicate, so a mutation retried after its verdict is gone is applied
// again: harmless for one applied with its own stamp (field-level LWW makes
// it change nothing), which is why verdicts marked Keep are never pruned.
type VerdictPruner interface {
	// PruneVerdicts deletes up to limit verdicts of every user given before
	// before and not marked Keep, and returns how many it deleted.
	PruneVerdicts(ctx context.Context, before time.Time, limit int) (int64, error)
}

// Change is one record in a Changes answer: its current state and the
// position of its latest change.
type Change struct {
	Position int64
	Record   protocol.RecordState
}

// Stats are the counts Store.Stats returns.
type Stats struct {
	Records  int64 // records, tombstones included
	Applied  int64 // mutation ids with verdict "applied"
	Rejected int64 // mutation ids with verdict "rejected"
}
