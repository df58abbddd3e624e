package syncserver

import (
	"context"
	"fmt"
	"maps"

	"github.com/jackc/pgx/v5"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// Update implements Store. It runs at READ COMMITTED and first locks the
// user's heads row (creating it for a new user): the user's transactions on
// every instance wait there for each other, and once the lock is held every
// later statement sees the previous holder's commit. Positions are given
// from that row, so a commit's positions are above every position committed
// before it. The commit is durable when PostgreSQL's synchronous_commit is
// on (its default).
func (s *PostgresStore) Update(ctx context.Context, user string, fn func(Tx) error) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres update: begin: %w", err)
	}
	// Rollback is a no-op after Commit; it undoes everything on error or
	// panic, and must run even when ctx is cancelled.
	defer tx.Rollback(context.Background())
	st := &postgresStatements{ctx: ctx, tx: tx}
	t := &postgresTx{
		userRows: userRows{st: st, user: user, backend: "postgres"}, st: st, instance: s.instance,
		verdicts: map[string]knownVerdict{}, records: map[recordKey]knownRecord{},
	}
	if err := tx.QueryRow(ctx, `INSERT INTO heads (user_id, last) VALUES ($1, 0)
		ON CONFLICT (user_id) DO UPDATE SET last = heads.last RETURNING last`, user).Scan(&t.last); err != nil {
		return fmt.Errorf("postgres update: lock the user's head: %w", err)
	}
	start := t.last
	if err := fn(t); err != nil {
		return err
	}
	if t.last != start {
		_ = st.exec(`UPDATE heads SET last = $2 WHERE user_id = $1`, user, t.last)
	}
	if err := st.flush(); err != nil {
		return fmt.Errorf("postgres update: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres update: commit: %w", err)
	}
	return nil
}

// begin starts a READ COMMITTED transaction. A pooled connection that the
// database ended (a restart, a failover, an administrator) fails on its
// first use and leaves the pool; BEGIN has no effect of its own, so begin
// tries again, once more than the pool has connections, unless ctx ended.
func (s *PostgresStore) begin(ctx context.Context) (pgx.Tx, error) {
	var err error
	for range s.pool.Config().MaxConns + 1 {
		var tx pgx.Tx
		if tx, err = s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}); err == nil || ctx.Err() != nil || s.closed.Err() != nil {
			return tx, err
		}
	}
	return nil, err
}

// postgresTx is a Tx on one user's rows inside a PostgreSQL transaction
// that holds the user's heads row lock. Round trips, not statements, are
// what a push costs on PostgreSQL, so the Handler's reads are fetched for a
// whole push at once (prefetch) and answered from memory, and writes are
// queued and sent together (postgresStatements): a push takes the same
// few round trips whatever its size.
type postgresTx struct {
	userRows
	st        *postgresStatements
	instance  string
	last      int64 // the last position given to the user's records, this transaction's included
	announced bool
	// What this transaction knows for certain: prefetched, or written by
	// it. A key missing from a map is read from the database.
	verdicts map[string]knownVerdict
	records  map[recordKey]knownRecord
}

// recordKey names one record of the user.
type recordKey struct{ collection, id string }

// knownVerdict is a verdict, or the knowledge that there is none (ok false).
type knownVerdict struct {
	v  Verdict
	ok bool
}

// knownRecord is a record's fields, or the knowledge that it does not
// exist (ok false).
type knownRecord struct {
	fields protocol.Fields
	ok     bool
}

// prefetch reads the verdicts of mutationIDs and the records of keys in
// one round trip, so that Verdict and Record answer them from memory.
func (t *postgresTx) prefetch(mutationIDs []string, keys []recordKey) error {
	if len(mutationIDs) == 0 && len(keys) == 0 {
		return nil
	}
	if err := t.st.flush(); err != nil {
		return fmt.Errorf("postgres prefetch: %w", err)
	}
	colls, ids := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		colls[i], ids[i] = k.collection, k.id
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT mutation_id, `+verdictColumns+` FROM verdicts WHERE user_id = $1 AND mutation_id = ANY($2::text[])`, t.user, mutationIDs)
	b.Queue(`SELECT r.collection, r.id, r.fields FROM records r JOIN unnest($2::text[], $3::text[]) AS k(collection, id)
		ON r.collection = k.collection AND r.id = k.id WHERE r.user_id = $1`, t.user, colls, ids)
	br := t.st.tx.SendBatch(t.st.ctx, b)
	err := t.readVerdicts(br, mutationIDs)
	if err == nil {
		err = t.readRecords(br, keys)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("postgres prefetch: %w", err)
	}
	return nil
}

// readVerdicts reads prefetch's verdict rows: every id asked for becomes
// known, with its verdict or with none.
func (t *postgresTx) readVerdicts(br pgx.BatchResults, mutationIDs []string) error {
	for _, id := range mutationIDs {
		t.verdicts[id] = knownVerdict{}
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		v, err := scanVerdict(rows, &id)
		if err != nil {
			return err
		}
		v.MutationID = id
		t.verdicts[id] = knownVerdict{v: v, ok: true}
	}
	return rows.Err()
}

// readRecords reads prefetch's record rows: every key asked for becomes
// known, with its fields or as missing.
func (t *postgresTx) readRecords(br pgx.BatchResults, keys []recordKey) error {
	for _, k := range keys {
		t.records[k] = knownRecord{}
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k recordKey
		var text string
		if err := rows.Scan(&k.collection, &k.id, &text); err != nil {
			return err
		}
		fields, err := decodeFields(text)
		if err != nil {
			return fmt.Errorf("record %s/%s: %w", k.collection, k.id, err)
		}
		t.records[k] = knownRecord{fields: fields, ok: true}
	}
	return rows.Err()
}

// Verdict implements Tx.
func (t *postgresTx) Verdict(mutationID string) (Verdict, bool, error) {
	if k, known := t.verdicts[mutationID]; known {
		return k.v, k.ok, nil
	}
	return t.userRows.Verdict(mutationID)
}

// SaveVerdict implements Tx.
func (t *postgresTx) SaveVerdict(v Verdict) error {
	if err := t.userRows.SaveVerdict(v); err != nil {
		return err
	}
	t.verdicts[v.MutationID] = knownVerdict{v: v, ok: true}
	return nil
}

// Record implements Tx.
func (t *postgresTx) Record(collection, id string) (protocol.Fields, bool, error) {
	if k, known := t.records[recordKey{collection, id}]; known {
		return maps.Clone(k.fields), k.ok, nil
	}
	return t.userRows.Record(collection, id)
}

// SaveRecord implements Tx.
func (t *postgresTx) SaveRecord(collection, id string, fields protocol.Fields) (int64, error) {
	pos := t.last + 1
	if err := t.saveRecordAt(collection, id, fields, pos); err != nil {
		return 0, err
	}
	t.last = pos
	t.records[recordKey{collection, id}] = knownRecord{fields: maps.Clone(fields), ok: true}
	return pos, nil
}

// Announce implements Tx: a NOTIFY, which PostgreSQL delivers to the other
// instances' listeners when (and only if) the transaction commits.
func (t *postgresTx) Announce(exceptClientID string) error {
	if t.announced {
		return nil
	}
	payload, err := encodeAnnouncement(announcement{Instance: t.instance, User: t.user, Except: exceptClientID})
	if err != nil {
		return fmt.Errorf("postgres announce: %w", err)
	}
	if err := t.st.exec(`SELECT pg_notify($1, $2)`, postgresChannel, payload); err != nil {
		return fmt.Errorf("postgres announce: %w", err)
	}
	t.announced = true
	return nil
}

// postgresStatements runs statements in one PostgreSQL transaction (pgx
// prepares and caches each per connection). Writes are queued: exec never
// fails, and what it queued is sent with every write queued after it in one
// round trip — before the next read (so reads see them) or by flush, which
// Update calls before it commits and which reports the first write that
// failed.
type postgresStatements struct {
	ctx    context.Context
	tx     pgx.Tx
	queued pgx.Batch
}

func (s *postgresStatements) exec(query string, args ...any) error {
	s.queued.Queue(query, args...)
	return nil
}

// flush sends the queued writes and waits for them.
func (s *postgresStatements) flush() error {
	if s.queued.Len() == 0 {
		return nil
	}
	err := s.tx.SendBatch(s.ctx, &s.queued).Close()
	s.queued = pgx.Batch{}
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (s *postgresStatements) queryRow(query string, args ...any) (rowScanner, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	return s.tx.QueryRow(s.ctx, query, args...), nil
}
