package syncengine

// Randomized property tests of the sync contract (DESIGN.md, "Data model
// (local)" and "Sync"):
//
//   - TestPropertyConvergence: several engines write at random and sync with
//     a reference server kept in this file (field-level LWW with
//     protocol.Fields.Merge, idempotent per mutation id, random rejections,
//     lost, duplicated and late push responses, paged and interrupted pulls,
//     clocks moving both ways, reopens). After every step the engine that
//     stepped must satisfy visible == base + pending folded; after a final
//     drain every engine must show exactly the server's state, every
//     mutation must have one verdict, and every outbox must be empty.
//   - TestPropertyMergeOrderIndependence: the same remote record states,
//     applied as pull pages in different orders and page splits, give
//     identical visible tables and exports, equal to the LWW model.
//
// Each run uses a few fixed seeds plus one fresh random seed, run in
// parallel. A failure logs its seed; run again with
// OPFSYNC_PROPERTY_SEED=<seed> to reproduce it. OPFSYNC_PROPERTY_STEPS=<n>
// sets the steps per convergence run (for a longer soak).

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// propSeeds returns the seeds to run: the one in OPFSYNC_PROPERTY_SEED when
// set, otherwise 1..fixed plus a fresh random seed.
func propSeeds(t *testing.T, fixed int) []uint64 {
	t.Helper()
	if s := os.Getenv("OPFSYNC_PROPERTY_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("OPFSYNC_PROPERTY_SEED=%q: %v", s, err)
		}
		return []uint64{n}
	}
	seeds := make([]uint64, 0, fixed+1)
	for i := 1; i <= fixed; i++ {
		seeds = append(seeds, uint64(i))
	}
	return append(seeds, rand.Uint64()) // the global generator is randomly seeded
}

// propRun runs fn once per seed as a parallel subtest, with a generator
// seeded from it, and logs how to reproduce a failure.
func propRun(t *testing.T, seeds []uint64, fn func(t *testing.T, rng *rand.Rand)) {
	for _, seed := range seeds {
		t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			t.Logf("seed %d", seed)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("reproduce with: OPFSYNC_PROPERTY_SEED=%d go test -race -count=1 -run '%s' ./pkg/syncengine/",
						seed, strings.SplitN(t.Name(), "/", 2)[0])
				}
			})
			fn(t, rand.New(rand.NewPCG(seed, 0x6f706673796e63)))
		})
	}
}

// ---------------------------------------------------------------------------
// Random data.

var (
	propTodoIDs = []string{"t1", "t2", "t3", "t4", "t5", "t6"}
	propNoteIDs = []string{"n1", "n2"}
	propTexts   = []string{"", "a", "buy milk", "a<b & c>d", "héllo wörld", `quote " and \ back`,
		"line\nbreak", "sep\u2028sep", "🎉", "<script>&amp;</script>"}
	propInts  = []int64{0, 1, -1, 7, 42, -1000, maxSafeInteger, -maxSafeInteger}
	propReals = []float64{0, 1.5, -2.25, 3, 0.1, 1e21, -123456.789, 2.5e-8}
	propJSONs = []any{"s", "x<y>&z", 12, -0.5, true, false, []any{}, []any{1, "two", nil},
		map[string]any{"k": "v", "n": map[string]any{"b": 1, "a": []any{"<&>"}}}, map[string]any{}}
	propLocalOrigins  = []protocol.Origin{protocol.OriginUser, protocol.OriginAgent, protocol.OriginSystem}
	propRemoteOrigins = []protocol.Origin{protocol.OriginUser, protocol.OriginAgent, protocol.OriginSystem,
		protocol.OriginMigration, protocol.OriginServer}
)

// propNoteExtras are the undeclared fields written to notes (which accept
// extra fields), with the type their random values take.
var propNoteExtras = map[string]FieldType{"tag": TypeText, "color": TypeJSON}

func propValue(rng *rand.Rand, t FieldType) any {
	if rng.IntN(7) == 0 {
		return nil
	}
	switch t {
	case TypeText:
		return propTexts[rng.IntN(len(propTexts))]
	case TypeBoolean:
		return rng.IntN(2) == 0
	case TypeInteger:
		if rng.IntN(2) == 0 {
			return rng.IntN(100)
		}
		return propInts[rng.IntN(len(propInts))]
	case TypeReal:
		return propReals[rng.IntN(len(propReals))]
	}
	return propJSONs[rng.IntN(len(propJSONs))]
}

// propWritable returns the fields a local write may name in coll, with
// their types, in a stable order.
func propWritable(coll string) ([]string, map[string]FieldType) {
	types := maps.Clone(testSchema().Collections[coll].Fields)
	if coll == "notes" {
		maps.Copy(types, propNoteExtras)
	}
	return slices.Sorted(maps.Keys(types)), types
}

// propFields returns random values for a random subset of coll's fields
// (at least one when nonEmpty).
func propFields(rng *rand.Rand, coll string, nonEmpty bool) Record {
	names, types := propWritable(coll)
	rec := Record{}
	for _, n := range names {
		if rng.IntN(2) == 0 {
			rec[n] = propValue(rng, types[n])
		}
	}
	if nonEmpty && len(rec) == 0 {
		n := names[rng.IntN(len(names))]
		rec[n] = propValue(rng, types[n])
	}
	return rec
}

func propRandomWrite(rng *rand.Rand) Write {
	coll, ids := "todos", propTodoIDs
	if rng.IntN(4) == 0 {
		coll, ids = "notes", propNoteIDs
	}
	w := Write{Collection: coll, ID: ids[rng.IntN(len(ids))], Origin: propLocalOrigins[rng.IntN(len(propLocalOrigins))]}
	switch r := rng.IntN(10); {
	case r < 4:
		w.Op, w.Fields = protocol.OpPut, propFields(rng, coll, false)
	case r < 8:
		w.Op, w.Fields = protocol.OpPatch, propFields(rng, coll, true)
	default:
		w.Op = protocol.OpDelete
	}
	return w
}

// ---------------------------------------------------------------------------
// Expected values, as Get and Query return them.

// propRaw is the canonical JSON the engine stores for v as type t.
func propRaw(tb testing.TB, t FieldType, v any) json.RawMessage {
	tb.Helper()
	raw, err := normalizeValue(t, v)
	if err != nil {
		tb.Fatalf("test bug: value %#v is not a valid %s: %v", v, t, err)
	}
	return raw
}

// propApplyModel returns the record (as Get returns it, nil when not live)
// after w is applied to cur, and false when w must fail (a patch of a
// record that is not live).
func propApplyModel(tb testing.TB, cur Record, w Write) (Record, bool) {
	tb.Helper()
	decl := testSchema().Collections[w.Collection]
	switch w.Op {
	case protocol.OpDelete:
		return nil, true
	case protocol.OpPut:
		rec := Record{"id": w.ID}
		for name, t := range decl.Fields {
			rec[name] = expectedValue(t, propRaw(tb, t, w.Fields[name]))
		}
		for name, v := range w.Fields {
			if _, declared := decl.Fields[name]; !declared {
				if raw := propRaw(tb, TypeJSON, v); string(raw) != "null" {
					rec[name] = raw
				}
			}
		}
		return rec, true
	}
	if cur == nil {
		return nil, false
	}
	rec := maps.Clone(cur)
	for name, v := range w.Fields {
		if t, declared := decl.Fields[name]; declared {
			rec[name] = expectedValue(t, propRaw(tb, t, v))
		} else if raw := propRaw(tb, TypeJSON, v); string(raw) == "null" {
			delete(rec, name) // a null extra field is absent
		} else {
			rec[name] = raw
		}
	}
	return rec, true
}

// propNorm renders a record (or a query row) comparably: sorted keys, each
// value with its Go type, JSON as its bytes.
func propNorm(rec Record) string {
	if rec == nil {
		return "<none>"
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(rec)) {
		switch v := rec[k].(type) {
		case nil:
			fmt.Fprintf(&b, "%s=null ", k)
		case json.RawMessage:
			fmt.Fprintf(&b, "%s=json:%s ", k, v)
		default:
			fmt.Fprintf(&b, "%s=%T:%v ", k, v, v)
		}
	}
	return b.String()
}

// propModelRows is what `SELECT * FROM coll ORDER BY id` must return for
// the given record states: the live records, declared fields typed (a
// value that does not conform to its type reads as null), _updated_at the
// newest stamp's wall time, _extra the non-null undeclared fields.
func propModelRows(coll string, recs map[string]protocol.Fields) []string {
	decl := testSchema().Collections[coll]
	out := []string{}
	for _, id := range slices.Sorted(maps.Keys(recs)) {
		f := recs[id]
		if !f.Live() {
			continue
		}
		rec := Record{"id": id}
		for name, t := range decl.Fields {
			rec[name] = expectedValue(t, f[name].Value)
		}
		var wall int64
		for _, s := range f {
			wall = max(wall, s.HLC.Wall)
		}
		rec[UpdatedAtColumn] = wall
		if decl.ExtraFields {
			extra := map[string]json.RawMessage{}
			for name, s := range f {
				if _, declared := decl.Fields[name]; !declared && name != protocol.DeletedField && string(s.Value) != "null" {
					extra[name] = s.Value
				}
			}
			rec[ExtraColumn] = nil
			if len(extra) > 0 {
				raw, err := marshalJSON(extra)
				if err != nil {
					panic(err)
				}
				rec[ExtraColumn] = raw
			}
		}
		out = append(out, propNorm(rec))
	}
	return out
}

// propTableRows is `SELECT * FROM coll ORDER BY id` on te, rendered.
func propTableRows(te *testEngine, coll string) []string {
	te.t.Helper()
	out := []string{}
	for _, r := range te.query(`SELECT * FROM "` + coll + `" ORDER BY id`) {
		out = append(out, propNorm(r))
	}
	return out
}

// propDiff describes the first difference between two row lists.
func propDiff(want, got []string) string {
	for i := 0; i < max(len(want), len(got)); i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			return fmt.Sprintf("row %d:\n want %s\n  got %s\n(%d rows wanted, %d got)", i, w, g, len(want), len(got))
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// The reference server.

type propKey struct{ coll, id string }

func propCompareKeys(a, b propKey) int {
	if c := strings.Compare(a.coll, b.coll); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// propServer is an in-memory sync server with the real server's merge rule:
// each mutation's fields merge into the record with protocol.Fields.Merge
// (field-level LWW by HLC), each mutation id gets one verdict, and a
// mutation delivered again is answered from that verdict (duplicate with
// the current record state, or the same rejection). Every record change
// appends the record to the change log; a pull cursor is an index into it.
type propServer struct {
	t        testing.TB
	recs     map[propKey]protocol.Fields
	log      []propKey
	verdict  map[string]protocol.MutationStatus // applied or rejected
	applied  map[string]int
	rejected map[string]int
	newest   map[string]protocol.HLC // per client, the newest mutation seen for the first time
	stats    map[string]int
	// omitRecord decides whether an applied or duplicate verdict leaves out
	// the record state (the wire allows it; the engine then confirms the
	// mutation's own fields).
	omitRecord func() bool
}

func newPropServer(t testing.TB) *propServer {
	return &propServer{t: t, recs: map[propKey]protocol.Fields{}, verdict: map[string]protocol.MutationStatus{},
		applied: map[string]int{}, rejected: map[string]int{}, newest: map[string]protocol.HLC{}, stats: map[string]int{},
		omitRecord: func() bool { return false }}
}

// answer is an applied or duplicate verdict, with the record's current
// state unless omitRecord says otherwise.
func (s *propServer) answer(id string, status protocol.MutationStatus, k propKey) protocol.MutationResult {
	r := protocol.MutationResult{MutationID: id, Status: status}
	if !s.omitRecord() {
		r.Record = s.state(k)
	}
	return r
}

func (s *propServer) state(k propKey) *protocol.RecordState {
	return &protocol.RecordState{Collection: k.coll, ID: k.id, Fields: maps.Clone(s.recs[k])}
}

func propRejection(id string) protocol.MutationResult {
	return protocol.MutationResult{MutationID: id, Status: protocol.StatusRejected,
		Error: &protocol.ErrorBody{Code: protocol.CodeValidation, Message: "refused by the reference server"}}
}

// push applies a batch in order; reject decides, for a mutation seen for
// the first time, whether to refuse it.
func (s *propServer) push(ms []protocol.Mutation, reject func() bool) []protocol.MutationResult {
	s.t.Helper()
	out := make([]protocol.MutationResult, 0, len(ms))
	for i := range ms {
		m := &ms[i]
		if err := protocol.ValidateMutation(m); err != nil {
			s.t.Fatalf("the engine pushed an invalid mutation %+v: %v", *m, err)
		}
		s.stats["delivered"]++
		k := propKey{m.Collection, m.ID}
		switch s.verdict[m.MutationID] {
		case protocol.StatusApplied:
			s.stats["duplicate"]++
			out = append(out, s.answer(m.MutationID, protocol.StatusDuplicate, k))
			continue
		case protocol.StatusRejected:
			s.stats["rejected again"]++
			out = append(out, propRejection(m.MutationID))
			continue
		}
		// A client's mutations reach the server in the order it made them
		// (its stamps increase with the outbox order).
		if last, ok := s.newest[m.HLC.Node]; ok && !m.HLC.After(last) {
			s.t.Fatalf("mutation %s stamped %s reached the server after %s of the same client", m.MutationID, m.HLC, last)
		}
		s.newest[m.HLC.Node] = m.HLC
		if reject() {
			s.verdict[m.MutationID] = protocol.StatusRejected
			s.rejected[m.MutationID]++
			out = append(out, propRejection(m.MutationID))
			continue
		}
		f := s.recs[k]
		if f == nil {
			f = protocol.Fields{}
			s.recs[k] = f
		}
		if len(f.Merge(m.States())) > 0 {
			s.log = append(s.log, k)
		}
		s.verdict[m.MutationID] = protocol.StatusApplied
		s.applied[m.MutationID]++
		out = append(out, s.answer(m.MutationID, protocol.StatusApplied, k))
	}
	return out
}

// changedSince returns the records changed at or after log index cursor,
// ordered by their last change, with the index of that last change.
func (s *propServer) changedSince(cursor string) ([]propKey, map[propKey]int) {
	s.t.Helper()
	from := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 || n > len(s.log) {
			s.t.Fatalf("the engine pulled with cursor %q, which this server never issued (log length %d)", cursor, len(s.log))
		}
		from = n
	}
	last := map[propKey]int{}
	for i := from; i < len(s.log); i++ {
		last[s.log[i]] = i
	}
	keys := slices.SortedFunc(maps.Keys(last), func(a, b propKey) int { return last[a] - last[b] })
	return keys, last
}

// pullPage answers one pull page: up to limit records changed since cursor,
// in order of their last change. The next cursor points after the last
// change of the last record returned, so resuming from it misses nothing.
func (s *propServer) pullPage(cursor string, limit int) *protocol.PullResponse {
	keys, last := s.changedSince(cursor)
	page := &protocol.PullResponse{Changes: []protocol.RecordState{}, Cursor: strconv.Itoa(len(s.log))}
	n := min(limit, len(keys))
	for _, k := range keys[:n] {
		page.Changes = append(page.Changes, *s.state(k))
	}
	if n < len(keys) {
		page.HasMore, page.Cursor = true, strconv.Itoa(last[keys[n-1]]+1)
	}
	s.stats["pull pages"]++
	return page
}

// shuffledPull answers a whole pull from cursor as pages of random sizes
// holding the changed records in a random order. Pages before the last
// keep the cursor where it was (a conservative but valid answer); the last
// one moves it to the end of the log.
func (s *propServer) shuffledPull(rng *rand.Rand, cursor string) []*protocol.PullResponse {
	keys, _ := s.changedSince(cursor)
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	var pages []*protocol.PullResponse
	size := 1 + rng.IntN(5)
	for len(keys) > 0 || len(pages) == 0 {
		n := min(size, len(keys))
		page := &protocol.PullResponse{Changes: []protocol.RecordState{}, Cursor: cursor, HasMore: n < len(keys)}
		for _, k := range keys[:n] {
			page.Changes = append(page.Changes, *s.state(k))
		}
		keys = keys[n:]
		if !page.HasMore {
			page.Cursor = strconv.Itoa(len(s.log))
		}
		pages = append(pages, page)
	}
	return pages
}

// collection returns the server's records of one collection by id.
func (s *propServer) collection(coll string) map[string]protocol.Fields {
	out := map[string]protocol.Fields{}
	for k, f := range s.recs {
		if k.coll == coll {
			out[k.id] = f
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The clients and the world they sync in.

type propClient struct {
	*testEngine
	name     string
	pulling  bool  // a pull cycle is under way
	epoch    int64 // the pull epoch the engine should be at
	cursor   string
	hydrated bool
	late     [][]protocol.MutationResult // push responses still to arrive
}

type propWorld struct {
	t         *testing.T
	rng       *rand.Rand
	ctx       context.Context
	srv       *propServer
	clients   []*propClient
	owner     map[string]*propClient // every mutation id an engine produced
	mutKey    map[string]propKey
	step      int
	trace     []string
	conflicts int
}

func newPropWorld(t *testing.T, rng *rand.Rand, n int) *propWorld {
	w := &propWorld{t: t, rng: rng, ctx: context.Background(), srv: newPropServer(t),
		owner: map[string]*propClient{}, mutKey: map[string]propKey{}}
	w.srv.omitRecord = func() bool { return rng.IntN(8) == 0 }
	for i := range n {
		te := openTest(t, testSchema())
		// Deterministic client ids (they break HLC ties, which are common
		// here), so a seed reproduces the same run.
		name := fmt.Sprintf("c%d-%06x", i, rng.IntN(1<<24))
		if err := te.call(w.ctx, func() error {
			return te.stmts.exec(`UPDATE meta SET value = ? WHERE key = 'client_id'`, name)
		}); err != nil {
			t.Fatal(err)
		}
		te.reopen(testSchema())
		if te.ClientID() != name {
			t.Fatalf("client id %q, want %q", te.ClientID(), name)
		}
		// Clocks start a little apart.
		te.clock.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
		w.clients = append(w.clients, &propClient{testEngine: te, name: name})
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last steps:\n  %s", strings.Join(w.trace, "\n  "))
		}
	})
	return w
}

func (w *propWorld) logf(c *propClient, format string, args ...any) {
	w.trace = append(w.trace, fmt.Sprintf("step %d %s: ", w.step, c.name)+fmt.Sprintf(format, args...))
	if len(w.trace) > 40 {
		w.trace = w.trace[len(w.trace)-40:]
	}
}

func (w *propWorld) fatalf(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("step %d: "+format, append([]any{w.step}, args...)...)
}

// randomStep runs one random step on a random client, then checks on it
// that visible == base + pending folded, and that the fold is LWW.
func (w *propWorld) randomStep() {
	w.step++
	c := w.clients[w.rng.IntN(len(w.clients))]
	switch r := w.rng.IntN(100); {
	case r < 40:
		w.write(c)
	case r < 60:
		w.push(c, true)
	case r < 65:
		w.deliverLate(c)
	case r < 85:
		w.pull(c)
	case r < 98:
		w.moveClock(c)
	default:
		w.reopen(c)
	}
	verifyVisible(w.t, c.Engine)
	w.checkFold(c)
}

// checkFold checks the engine's fold independently of it: the export (every
// record as base + pending folded) must equal each record's base merged
// with its pending mutations, in outbox order, by protocol.Fields.Merge,
// the server's own rule.
func (w *propWorld) checkFold(c *propClient) {
	w.t.Helper()
	model := map[propKey]protocol.Fields{}
	err := c.call(w.ctx, func() error {
		return c.stmts.query(`SELECT collection, id, fields FROM base`, nil, func(st *sqlite3.Stmt) error {
			var f protocol.Fields
			err := json.Unmarshal(st.ColumnRawText(2), &f)
			model[propKey{st.ColumnText(0), st.ColumnText(1)}] = f
			return err
		})
	})
	if err != nil {
		w.fatalf("read base: %v", err)
	}
	for _, m := range c.pending() {
		k := propKey{m.Collection, m.ID}
		if model[k] == nil {
			model[k] = protocol.Fields{}
		}
		model[k].Merge(m.States())
	}
	want := []protocol.RecordState{}
	for _, k := range slices.SortedFunc(maps.Keys(model), propCompareKeys) {
		want = append(want, protocol.RecordState{Collection: k.coll, ID: k.id, Fields: model[k]})
	}
	d, err := c.Export(w.ctx)
	if err != nil {
		w.fatalf("export: %v", err)
	}
	if !reflect.DeepEqual(d.Records, want) {
		got, _ := marshalJSON(d.Records)
		exp, _ := marshalJSON(want)
		w.fatalf("%s: export is not base + pending merged by LWW:\n want %s\n  got %s", c.name, exp, got)
	}
}

func (w *propWorld) version(c *propClient) uint64 {
	w.t.Helper()
	v, err := c.Version(w.ctx)
	if err != nil {
		w.fatalf("version: %v", err)
	}
	return v
}

func (w *propWorld) pendingCount(c *propClient) int {
	w.t.Helper()
	n, err := c.PendingCount(w.ctx)
	if err != nil {
		w.fatalf("pending count: %v", err)
	}
	return n
}

// write makes one to three random local writes in one call and checks the
// outcome against a model built from the records as Get showed them: each
// write shows at once, a patch of a record that is not live fails the whole
// call with NOT_FOUND and changes nothing.
func (w *propWorld) write(c *propClient) {
	n := 1
	if w.rng.IntN(5) == 0 {
		n += 1 + w.rng.IntN(2)
	}
	writes := make([]Write, n)
	for i := range writes {
		writes[i] = propRandomWrite(w.rng)
	}
	model := map[propKey]Record{}
	for _, wr := range writes {
		k := propKey{wr.Collection, wr.ID}
		if _, ok := model[k]; !ok {
			model[k] = c.get(k.coll, k.id)
		}
	}
	fails := false
	for _, wr := range writes {
		k := propKey{wr.Collection, wr.ID}
		rec, ok := propApplyModel(w.t, model[k], wr)
		if !ok {
			fails = true
			break
		}
		model[k] = rec
	}
	desc := make([]string, n)
	for i, wr := range writes {
		desc[i] = fmt.Sprintf("%s %s/%s %s %s", wr.Op, wr.Collection, wr.ID, wr.Origin, propNorm(wr.Fields))
	}
	w.logf(c, "write %s (expect failure: %v)", strings.Join(desc, "; "), fails)

	var before string
	if fails {
		before = c.snapshot()
	}
	v0, p0 := w.version(c), w.pendingCount(c)
	var res WriteResult
	var err error
	if wr := writes[0]; n == 1 && wr.Origin == protocol.OriginUser && w.rng.IntN(2) == 0 {
		// The convenience API (origin user).
		switch wr.Op {
		case protocol.OpPut:
			rec := maps.Clone(wr.Fields)
			if rec == nil {
				rec = Record{}
			}
			rec["id"] = wr.ID
			res, err = c.Put(w.ctx, wr.Collection, rec)
		case protocol.OpPatch:
			res, err = c.Patch(w.ctx, wr.Collection, wr.ID, wr.Fields)
		default:
			res, err = c.Delete(w.ctx, wr.Collection, wr.ID)
		}
	} else {
		res, err = c.Apply(w.ctx, writes...)
	}
	if fails {
		if CodeOf(err) != CodeNotFound {
			w.fatalf("want NOT_FOUND for a patch of a record that is not live, got %v", err)
		}
		if after := c.snapshot(); after != before {
			w.fatalf("a refused write changed the store:\n before %s\n  after %s", before, after)
		}
		return
	}
	if err != nil {
		w.fatalf("write: %v", err)
	}
	if len(res.MutationIDs) != n || res.Version != v0+1 {
		w.fatalf("write result %+v, want %d mutation ids and version %d", res, n, v0+1)
	}
	if p := w.pendingCount(c); p != p0+n {
		w.fatalf("outbox holds %d mutations after queueing %d on %d", p, n, p0)
	}
	for i, id := range res.MutationIDs {
		if _, dup := w.owner[id]; dup {
			w.fatalf("mutation id %s issued twice", id)
		}
		w.owner[id] = c
		w.mutKey[id] = propKey{writes[i].Collection, writes[i].ID}
	}
	for _, k := range slices.SortedFunc(maps.Keys(model), propCompareKeys) {
		if got, want := propNorm(c.get(k.coll, k.id)), propNorm(model[k]); got != want {
			w.fatalf("%s/%s right after the write:\n want %s\n  got %s", k.coll, k.id, want, got)
		}
	}
}

// push sends the next outbox batch to the server. With lossy, the server may
// reject mutations and the response may be lost, delivered twice, or held
// back to arrive later.
func (w *propWorld) push(c *propClient, lossy bool) {
	all := c.pending()
	limit := 1 + w.rng.IntN(6)
	if !lossy {
		limit = 1 + w.rng.IntN(12)
	}
	batch, err := c.PendingBatch(w.ctx, limit)
	if err != nil {
		w.fatalf("pending batch: %v", err)
	}
	if len(batch) != min(limit, len(all)) || !reflect.DeepEqual(batch, all[:len(batch)]) {
		w.fatalf("PendingBatch(%d) is not the head of the outbox:\n batch %+v\n outbox %+v", limit, batch, all)
	}
	for i := 1; i < len(batch); i++ {
		if !batch[i].HLC.After(batch[i-1].HLC) {
			w.fatalf("outbox order is not stamp order: %s then %s", batch[i-1].HLC, batch[i].HLC)
		}
	}
	if len(batch) == 0 {
		w.logf(c, "push: outbox empty")
		return
	}
	results := w.srv.push(batch, func() bool { return lossy && w.rng.IntN(8) == 0 })
	ids := make([]string, len(batch))
	for i, m := range batch {
		ids[i] = m.MutationID
	}
	r := w.rng.IntN(20)
	switch {
	case !lossy || r < 11:
		w.logf(c, "push %d: acked", len(batch))
		w.ack(c, results)
	case r < 13:
		w.logf(c, "push %d: acked twice", len(batch))
		w.ack(c, results)
		snap := c.snapshot()
		w.ack(c, results)
		if again := c.snapshot(); again != snap {
			w.fatalf("acking the same results twice changed the store:\n once  %s\n twice %s", snap, again)
		}
	case r < 16:
		w.logf(c, "push %d: response lost", len(batch))
		if err := c.MarkPushFailed(w.ctx, ids, "network: connection reset"); err != nil {
			w.fatalf("mark push failed: %v", err)
		}
		if p := c.pending(); !reflect.DeepEqual(p, all) {
			w.fatalf("a failed push changed the outbox")
		}
	default:
		w.logf(c, "push %d: response delayed", len(batch))
		c.late = append(c.late, results)
	}
}

// checkConflicts takes the conflict events the last operation raised and
// checks each against the outbox as it was before: a conflict is reported
// only for a field a pending user write set to the reported local value,
// never for agent or system writes, and never before the first full pull.
func (w *propWorld) checkConflicts(c *propClient, pendingBefore []protocol.Mutation, hydratedBefore bool) {
	w.t.Helper()
	for _, ev := range c.takeEvents("conflict") {
		ce := ev.(*ConflictEvent)
		w.conflicts++
		if !hydratedBefore {
			w.fatalf("conflict event %+v during the initial hydration", ce)
		}
		if string(ce.Local) == string(ce.Remote) {
			w.fatalf("conflict event %+v between equal values", ce)
		}
		if !slices.ContainsFunc(pendingBefore, func(m protocol.Mutation) bool {
			v, ok := m.Fields[ce.Field]
			return m.Collection == ce.Collection && m.ID == ce.ID && m.Origin == protocol.OriginUser && ok && string(v) == string(ce.Local)
		}) {
			w.fatalf("conflict event %s/%s.%s local %s remote %s matches no pending user write", ce.Collection, ce.ID, ce.Field, ce.Local, ce.Remote)
		}
	}
}

// ack delivers push results and checks that every mutation they answer has
// left the outbox.
func (w *propWorld) ack(c *propClient, results []protocol.MutationResult) {
	w.t.Helper()
	before := c.pending()
	if err := c.AckPush(w.ctx, results); err != nil {
		w.fatalf("ack: %v", err)
	}
	// Conflicts raised by push results are not held back by hydration.
	w.checkConflicts(c, before, true)
	for _, m := range c.pending() {
		for _, r := range results {
			if r.MutationID == m.MutationID {
				w.fatalf("mutation %s is still queued after its %s verdict", m.MutationID, r.Status)
			}
		}
	}
}

// deliverLate delivers a held-back push response (sometimes keeping it to
// deliver once more later).
func (w *propWorld) deliverLate(c *propClient) {
	if len(c.late) == 0 {
		w.logf(c, "late: nothing in flight")
		return
	}
	i := w.rng.IntN(len(c.late))
	results := c.late[i]
	w.logf(c, "late: deliver %d results", len(results))
	w.ack(c, results)
	if w.rng.IntN(3) != 0 {
		c.late = slices.Delete(c.late, i, i+1)
	}
}

// pull advances the client's pull cycle by one page: applied, failed, or
// overtaken by a reset (then the page answers an old epoch and must be
// discarded).
func (w *propWorld) pull(c *propClient) {
	if !c.pulling {
		ps, err := c.BeginPull(w.ctx)
		if err != nil {
			w.fatalf("begin pull: %v", err)
		}
		if ps.State != PullFetchingFirst || ps.Epoch != c.epoch || ps.Cursor != c.cursor || ps.Hydrated != c.hydrated {
			w.fatalf("begin pull: state %+v, want FetchingFirstPage at epoch %d cursor %q hydrated %v", ps, c.epoch, c.cursor, c.hydrated)
		}
		c.pulling = true
	}
	page := w.srv.pullPage(c.cursor, 1+w.rng.IntN(4))
	switch r := w.rng.IntN(20); {
	case r < 16:
		w.logf(c, "pull page from %q: %d records, cursor %q, more %v", c.cursor, len(page.Changes), page.Cursor, page.HasMore)
		before := c.pending()
		res, err := c.ApplyPullPage(w.ctx, c.epoch, page)
		if err != nil {
			w.fatalf("apply pull page: %v", err)
		}
		w.checkConflicts(c, before, c.hydrated)
		want := PullState{State: PullFetchingNext, Cursor: page.Cursor, Epoch: c.epoch, Hydrated: c.hydrated}
		if !page.HasMore {
			want.State, want.Hydrated = PullIdle, true
		}
		if !res.Applied || res.Skipped != 0 || res.State != want {
			w.fatalf("apply pull page: %+v, want applied with state %+v", res, want)
		}
		c.cursor, c.hydrated, c.pulling = page.Cursor, want.Hydrated, page.HasMore
	case r < 18:
		w.logf(c, "pull page from %q: fetch failed", c.cursor)
		if err := c.FailPull(w.ctx, c.epoch, "network: timeout"); err != nil {
			w.fatalf("fail pull: %v", err)
		}
		w.checkPullState(c, PullState{State: PullError, Error: "network: timeout", Cursor: c.cursor, Epoch: c.epoch, Hydrated: c.hydrated})
		c.pulling = false
	default:
		w.logf(c, "pull page from %q: reset before the page arrived", c.cursor)
		ps, err := c.ResetPull(w.ctx)
		if err != nil {
			w.fatalf("reset pull: %v", err)
		}
		want := PullState{State: PullIdle, Epoch: c.epoch + 1, Hydrated: c.hydrated}
		if ps != want {
			w.fatalf("reset pull: %+v, want %+v", ps, want)
		}
		v := w.version(c)
		res, err := c.ApplyPullPage(w.ctx, c.epoch, page)
		if err != nil {
			w.fatalf("apply stale pull page: %v", err)
		}
		if res.Applied || res.Changed != 0 {
			w.fatalf("a page of epoch %d was applied at epoch %d: %+v", c.epoch, want.Epoch, res)
		}
		if w.version(c) != v {
			w.fatalf("a discarded page bumped the mutation version")
		}
		w.checkPullState(c, want)
		c.epoch, c.cursor, c.pulling = want.Epoch, "", false
	}
}

func (w *propWorld) checkPullState(c *propClient, want PullState) {
	w.t.Helper()
	ps, err := c.PullState(w.ctx)
	if err != nil {
		w.fatalf("pull state: %v", err)
	}
	if ps != want {
		w.fatalf("pull state %+v, want %+v", ps, want)
	}
}

// moveClock moves the client's wall clock: mostly a little forward, also
// not at all, far forward, or backwards.
func (w *propWorld) moveClock(c *propClient) {
	var ms int
	switch r := w.rng.IntN(10); {
	case r < 5:
		ms = w.rng.IntN(2000)
	case r < 7:
		ms = 0
	case r < 8:
		ms = w.rng.IntN(600_000)
	default:
		ms = -w.rng.IntN(3_600_000)
	}
	w.logf(c, "clock %+d ms", ms)
	c.clock.Advance(time.Duration(ms) * time.Millisecond)
}

// reopen closes and reopens the client's database: everything observable
// survives, and a pull left mid-cycle is back to Idle at its cursor.
func (w *propWorld) reopen(c *propClient) {
	w.logf(c, "reopen")
	before := c.snapshot()
	ps, err := c.PullState(w.ctx)
	if err != nil {
		w.fatalf("pull state: %v", err)
	}
	c.reopen(testSchema())
	if c.ClientID() != c.name {
		w.fatalf("client id %q after reopen, want %q", c.ClientID(), c.name)
	}
	if after := c.snapshot(); after != before {
		w.fatalf("reopen changed the store:\n before %s\n  after %s", before, after)
	}
	if ps.State == PullFetchingFirst || ps.State == PullFetchingNext {
		ps.State = PullIdle
	}
	w.checkPullState(c, ps)
	c.pulling = false
}

// drain ends the run: held-back responses arrive or are lost, every client
// pushes until its outbox is empty (no new rejections, no lost responses),
// then every client pulls everything, some after a reset, each receiving
// the same final states in its own random order and page split.
func (w *propWorld) drain() {
	w.step++
	for _, c := range w.clients {
		for _, results := range c.late {
			if w.rng.IntN(2) == 0 {
				w.logf(c, "drain: late delivery of %d results", len(results))
				w.ack(c, results)
			}
		}
		c.late = nil
		verifyVisible(w.t, c.Engine)
	}
	for _, c := range w.clients {
		for round := 0; w.pendingCount(c) > 0; round++ {
			if round > 1000 {
				w.fatalf("%s: the outbox does not drain", c.name)
			}
			w.push(c, false)
			verifyVisible(w.t, c.Engine)
		}
	}
	for i, c := range w.clients {
		if i == 0 || i > 1 && w.rng.IntN(2) == 0 {
			w.logf(c, "drain: reset pull")
			ps, err := c.ResetPull(w.ctx)
			if err != nil {
				w.fatalf("reset pull: %v", err)
			}
			c.epoch, c.cursor, c.pulling = ps.Epoch, "", false
		}
		ps, err := c.BeginPull(w.ctx)
		if err != nil {
			w.fatalf("begin pull: %v", err)
		}
		if ps.Epoch != c.epoch || ps.Cursor != c.cursor {
			w.fatalf("begin pull: %+v, want epoch %d cursor %q", ps, c.epoch, c.cursor)
		}
		pages := w.srv.shuffledPull(w.rng, ps.Cursor)
		w.logf(c, "drain: pull from %q in %d pages", ps.Cursor, len(pages))
		for _, page := range pages {
			before := c.pending()
			res, err := c.ApplyPullPage(w.ctx, ps.Epoch, page)
			if err != nil {
				w.fatalf("apply pull page: %v", err)
			}
			w.checkConflicts(c, before, ps.Hydrated)
			if !res.Applied || res.State.Cursor != page.Cursor {
				w.fatalf("apply pull page: %+v", res)
			}
			verifyVisible(w.t, c.Engine)
		}
		c.cursor, c.hydrated, c.pulling = pages[len(pages)-1].Cursor, true, false
		w.checkPullState(c, PullState{State: PullIdle, Cursor: strconv.Itoa(len(w.srv.log)), Epoch: c.epoch, Hydrated: true})
	}
}

// checkConverged asserts the end state: every client shows exactly the
// server's records, holds them as its base, has an empty outbox, and every
// mutation got exactly one verdict (and each rejection one event).
func (w *propWorld) checkConverged() {
	t := w.t
	for _, coll := range []string{"todos", "notes"} {
		want := propModelRows(coll, w.srv.collection(coll))
		for _, c := range w.clients {
			if d := propDiff(want, propTableRows(c.testEngine, coll)); d != "" {
				t.Fatalf("%s: %s differs from the server's state at %s", c.name, coll, d)
			}
		}
	}
	var serverRecs []protocol.RecordState
	for _, k := range slices.SortedFunc(maps.Keys(w.srv.recs), propCompareKeys) {
		serverRecs = append(serverRecs, *w.srv.state(k))
	}
	for _, c := range w.clients {
		if n := w.pendingCount(c); n != 0 {
			t.Fatalf("%s: %d mutations still queued", c.name, n)
		}
		d, err := c.Export(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d.Records, serverRecs) {
			got, _ := marshalJSON(d.Records)
			want, _ := marshalJSON(serverRecs)
			t.Fatalf("%s: export differs from the server's records:\n want %s\n  got %s", c.name, want, got)
		}
	}
	rejectedBy := map[*propClient]map[string]int{}
	for _, id := range slices.Sorted(maps.Keys(w.owner)) {
		a, r := w.srv.applied[id], w.srv.rejected[id]
		if !(a == 1 && r == 0 || a == 0 && r == 1) {
			t.Fatalf("mutation %s of %s: applied %d times, rejected %d times; want exactly one verdict", id, w.owner[id].name, a, r)
		}
		if r == 1 {
			if rejectedBy[w.owner[id]] == nil {
				rejectedBy[w.owner[id]] = map[string]int{}
			}
			rejectedBy[w.owner[id]][id] = 0
		}
	}
	for id := range w.srv.verdict {
		if _, ok := w.owner[id]; !ok {
			t.Fatalf("the server saw mutation %s that no engine produced", id)
		}
	}
	for _, c := range w.clients {
		got := map[string]int{}
		for _, ev := range c.takeEvents("") {
			switch ev := ev.(type) {
			case *RejectedEvent:
				got[ev.MutationID]++
				if k := w.mutKey[ev.MutationID]; ev.Collection != k.coll || ev.ID != k.id || ev.Code != protocol.CodeValidation {
					t.Fatalf("%s: rejected event %+v, want %s/%s with code %s", c.name, ev, k.coll, k.id, protocol.CodeValidation)
				}
			case *ConflictEvent:
				t.Fatalf("%s: conflict event %+v was not checked", c.name, ev)
			}
		}
		want := map[string]int{}
		for id := range rejectedBy[c] {
			want[id] = 1
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: rejected events per mutation %v, want one for each of %v", c.name, got, slices.Sorted(maps.Keys(want)))
		}
	}
	t.Logf("%d clients, %d steps: %d mutations (%d applied, %d rejected), %d deliveries (%d duplicates, %d repeated rejections), %d pull pages, %d server records, %d conflict events",
		len(w.clients), w.step, len(w.owner), len(w.srv.applied), len(w.srv.rejected), w.srv.stats["delivered"],
		w.srv.stats["duplicate"], w.srv.stats["rejected again"], w.srv.stats["pull pages"], len(w.srv.recs), w.conflicts)
}

func TestPropertyConvergence(t *testing.T) {
	steps, seeds := 300, propSeeds(t, 3)
	if testing.Short() {
		steps, seeds = 120, seeds[max(0, len(seeds)-2):]
	}
	if s := os.Getenv("OPFSYNC_PROPERTY_STEPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("OPFSYNC_PROPERTY_STEPS=%q: want a number of steps", s)
		}
		steps = n
	}
	propRun(t, seeds, func(t *testing.T, rng *rand.Rand) {
		w := newPropWorld(t, rng, 3+rng.IntN(2))
		for range steps {
			w.randomStep()
		}
		w.drain()
		w.checkConverged()
	})
}

// ---------------------------------------------------------------------------
// Merge order independence.

// propRemoteHistory invents the writes several remote clients made to a few
// records (puts, patches, deletes and restores, stamped by each client's
// own HLC clock from a wall clock that jumps both ways, some values not of
// the declared type, some fields undeclared, one collection unknown here),
// and returns record states as a server could have sent them over time:
// each the merge of some of a record's writes, some cut to a few fields.
// The model is the LWW merge of all of them.
func propRemoteHistory(tb testing.TB, rng *rand.Rand) ([]protocol.RecordState, map[propKey]protocol.Fields) {
	walls := make([]int64, 3)
	nodes := make([]*remoteNode, len(walls))
	for i := range nodes {
		walls[i] = 1_700_000_000_000 + int64(rng.IntN(2000))
		nodes[i] = newRemote(fmt.Sprintf("r%d-%04x", i, rng.IntN(1<<16)), func() int64 { return walls[i] })
	}
	fieldsOf := map[string]map[string]FieldType{
		"todos":  maps.Clone(testSchema().Collections["todos"].Fields),
		"notes":  maps.Clone(testSchema().Collections["notes"].Fields),
		"ghosts": {"x": TypeJSON}, // not declared here: kept in base only
	}
	fieldsOf["todos"]["legacy"] = TypeText // undeclared in a closed collection
	maps.Copy(fieldsOf["notes"], propNoteExtras)
	keys := []propKey{{"todos", "a"}, {"todos", "b"}, {"todos", "c"}, {"notes", "n1"}, {"notes", "n2"}, {"ghosts", "g1"}}

	raw := func(t FieldType) json.RawMessage {
		v := propValue(rng, t)
		if rng.IntN(20) == 0 { // a value of the wrong type reads as null
			v = []any{"not", t}
		}
		r, err := marshalJSON(v)
		if err != nil {
			tb.Fatal(err)
		}
		return r
	}
	var states []protocol.RecordState
	model := map[propKey]protocol.Fields{}
	for _, k := range keys {
		names := slices.Sorted(maps.Keys(fieldsOf[k.coll]))
		var writes []protocol.Fields
		for range 2 + rng.IntN(6) {
			ni := rng.IntN(len(nodes))
			walls[ni] += int64(rng.IntN(3000) - 1000)
			h := nodes[ni].clock.Now()
			origin := propRemoteOrigins[rng.IntN(len(propRemoteOrigins))]
			w := protocol.Fields{}
			switch op := rng.IntN(10); {
			case op < 4: // put (a restore when the record was deleted)
				for _, n := range names {
					if n != "legacy" || rng.IntN(2) == 0 {
						w[n] = protocol.FieldState{Value: raw(fieldsOf[k.coll][n]), HLC: h, Origin: origin}
					}
				}
				w[protocol.DeletedField] = protocol.FieldState{Value: jsonFalse, HLC: h, Origin: origin}
			case op < 7: // patch
				for len(w) == 0 {
					for _, n := range names {
						if rng.IntN(3) == 0 {
							w[n] = protocol.FieldState{Value: raw(fieldsOf[k.coll][n]), HLC: h, Origin: origin}
						}
					}
				}
			default: // delete
				w[protocol.DeletedField] = protocol.FieldState{Value: jsonTrue, HLC: h, Origin: origin}
			}
			writes = append(writes, w)
		}
		for range 1 + rng.IntN(4) {
			v := protocol.Fields{}
			for _, w := range writes {
				if rng.IntN(5) < 3 {
					v.Merge(w)
				}
			}
			if len(v) == 0 {
				v.Merge(writes[rng.IntN(len(writes))])
			}
			if rng.IntN(3) == 0 { // a partial state: only some of its fields
				for _, n := range slices.Sorted(maps.Keys(v)) {
					if len(v) > 1 && rng.IntN(2) == 0 {
						delete(v, n)
					}
				}
			}
			states = append(states, protocol.RecordState{Collection: k.coll, ID: k.id, Fields: v})
			if model[k] == nil {
				model[k] = protocol.Fields{}
			}
			model[k].Merge(v)
		}
	}
	return states, model
}

func TestPropertyMergeOrderIndependence(t *testing.T) {
	seeds := propSeeds(t, 10)
	if testing.Short() {
		seeds = seeds[max(0, len(seeds)-3):]
	}
	propRun(t, seeds, func(t *testing.T, rng *rand.Rand) {
		ctx := context.Background()
		states, model := propRemoteHistory(t, rng)
		var tables [][]string
		var dumps []string
		for i := range 3 {
			te := openTest(t, testSchema())
			order := rng.Perm(len(states))
			ps, err := te.BeginPull(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for p := 0; len(order) > 0; p++ {
				n := min(1+rng.IntN(5), len(order))
				page := &protocol.PullResponse{Cursor: fmt.Sprintf("p%d", p), HasMore: n < len(order)}
				for _, j := range order[:n] {
					page.Changes = append(page.Changes, states[j])
				}
				order = order[n:]
				res, err := te.ApplyPullPage(ctx, ps.Epoch, page)
				if err != nil || !res.Applied || res.Skipped != 0 {
					t.Fatalf("engine %d page %d: %+v, %v", i, p, res, err)
				}
				if i == 2 { // this one gets every page twice
					res, err := te.ApplyPullPage(ctx, ps.Epoch, page)
					if err != nil || !res.Applied || res.Changed != 0 {
						t.Fatalf("engine %d page %d again: %+v, %v; want applied, nothing changed", i, p, res, err)
					}
				}
				verifyVisible(t, te.Engine)
			}
			var rows []string
			for _, coll := range []string{"todos", "notes"} {
				got := propTableRows(te, coll)
				recs := map[string]protocol.Fields{}
				for k, f := range model {
					if k.coll == coll {
						recs[k.id] = f
					}
				}
				if d := propDiff(propModelRows(coll, recs), got); d != "" {
					t.Fatalf("engine %d: %s differs from the LWW model at %s", i, coll, d)
				}
				rows = append(rows, got...)
			}
			tables = append(tables, rows)

			d, err := te.Export(ctx)
			if err != nil {
				t.Fatal(err)
			}
			d.ExportedAt, d.ClientID = 0, ""
			var want []protocol.RecordState
			for _, k := range slices.SortedFunc(maps.Keys(model), propCompareKeys) {
				want = append(want, protocol.RecordState{Collection: k.coll, ID: k.id, Fields: model[k]})
			}
			if !reflect.DeepEqual(d.Records, want) {
				got, _ := marshalJSON(d.Records)
				w, _ := marshalJSON(want)
				t.Fatalf("engine %d: export differs from the LWW model:\n want %s\n  got %s", i, w, got)
			}
			raw, err := marshalJSON(d)
			if err != nil {
				t.Fatal(err)
			}
			dumps = append(dumps, string(raw))
		}
		for i := 1; i < len(tables); i++ {
			if d := propDiff(tables[0], tables[i]); d != "" {
				t.Fatalf("engines 0 and %d show different tables at %s", i, d)
			}
			if dumps[i] != dumps[0] {
				t.Fatalf("engines 0 and %d export differently:\n %s\n %s", i, dumps[0], dumps[i])
			}
		}
	})
}
