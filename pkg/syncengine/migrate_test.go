package syncengine

import (
	"context"
	"strings"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

func TestMigrateImportsOnceWithMarker(t *testing.T) {
	ctx := context.Background()
	te := openTest(t, testSchema())
	m := Migration{Key: "todos-v0", Collection: "todos", Items: []Record{
		{"id": "a", "title": "from localStorage", "done": true},
		{"id": "b", "title": "second"},
		{"id": "bad", "rank": "not a number"},
		{"title": "no id"},
	}}
	res, err := te.Migrate(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 2 || res.Skipped != 2 || res.AlreadyDone || len(res.Errors) != 2 || res.Errors[0].ID != "bad" || !strings.Contains(res.Errors[0].Reason, "rank") {
		t.Fatalf("first migrate: %+v", res)
	}
	if got := te.get("todos", "a"); got["title"] != "from localStorage" || got["done"] != true {
		t.Fatalf("a = %v", got)
	}
	ms := te.pending()
	if len(ms) != 2 || ms[0].Origin != protocol.OriginMigration || ms[0].Op != protocol.OpMerge || len(ms[0].Fields) != 3 {
		t.Fatalf("outbox %+v", ms)
	}
	before := te.snapshot()
	res, err = te.Migrate(ctx, m)
	if err != nil || !res.AlreadyDone || res.Imported != 0 {
		t.Fatalf("second migrate: %+v %v", res, err)
	}
	if te.snapshot() != before {
		t.Fatal("a second migrate of the same key changed the store")
	}
	// The marker survives a reopen (the page died before clearing the key).
	te.reopen(testSchema())
	if res, _ := te.Migrate(ctx, m); !res.AlreadyDone {
		t.Fatalf("after reopen: %+v", res)
	}
	verifyVisible(t, te.Engine)
}

func TestMigrateNeverOverridesWhatExists(t *testing.T) {
	ctx := context.Background()
	te := openTest(t, testSchema())
	// "rank" was never written on a (a record from before the field existed
	// is simulated by a remote state without it); title was.
	te.pull(remoteRec("todos", "a", protocol.Fields{
		"_deleted": fieldState(false, stamp(10, "o"), protocol.OriginUser),
		"title":    fieldState("server title", stamp(10, "o"), protocol.OriginUser),
	}))
	te.put("todos", Record{"id": "edited", "title": "user's value"})
	te.put("todos", Record{"id": "gone", "title": "x"})
	te.del("todos", "gone")
	res, err := te.Migrate(ctx, Migration{Key: "k", Collection: "todos", Items: []Record{
		{"id": "a", "title": "legacy title", "rank": 5},
		{"id": "edited", "title": "legacy"},
		{"id": "gone", "title": "legacy"},
		{"id": "new", "title": "legacy new"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 2 || res.Skipped != 2 {
		t.Fatalf("result %+v", res)
	}
	if got := te.get("todos", "a"); got["title"] != "server title" || got["rank"] != int64(5) {
		t.Fatalf("a = %v: want the server's title kept and the unwritten rank filled", got)
	}
	if got := te.get("todos", "edited"); got["title"] != "user's value" {
		t.Fatalf("edited = %v", got)
	}
	if got := te.get("todos", "gone"); got != nil {
		t.Fatalf("a deleted record came back: %v", got)
	}
	if got := te.get("todos", "new"); got["title"] != "legacy new" {
		t.Fatalf("new = %v", got)
	}
	// Patch mode skips records that do not exist, and fills the fields a
	// migration insert did not write.
	res, err = te.Migrate(ctx, Migration{Key: "stars", Collection: "todos", Mode: MigratePatch, Items: []Record{
		{"id": "missing", "done": true}, {"id": "a", "done": true}, {"id": "new", "done": true},
	}})
	if err != nil || res.Imported != 2 || res.Skipped != 1 || res.Errors[0].ID != "missing" {
		t.Fatalf("patch mode: %+v %v", res, err)
	}
	if got := te.get("todos", "new"); got["done"] != true || got["title"] != "legacy new" {
		t.Fatalf("new after the patch-mode key = %v", got)
	}
	if _, err := te.Migrate(ctx, Migration{Key: "x", Collection: "nope"}); CodeOf(err) != CodeValidation {
		t.Fatalf("unknown collection: %v", err)
	}
	if _, err := te.Migrate(ctx, Migration{Key: "x", Collection: "todos", Mode: "merge"}); CodeOf(err) != CodeValidation {
		t.Fatalf("bad mode: %v", err)
	}
	verifyVisible(t, te.Engine)
}

func TestMigrationMutationIDsAreDeterministic(t *testing.T) {
	ctx := context.Background()
	m := Migration{Key: "k", Collection: "todos", Items: []Record{{"id": "a", "title": "x"}}}
	var ids []string
	for range 2 {
		te := openTest(t, testSchema())
		if _, err := te.Migrate(ctx, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, te.pending()[0].MutationID)
	}
	if ids[0] != ids[1] {
		t.Fatalf("the same legacy data got ids %v in two databases", ids)
	}
}

func TestApplyRequestIsExactlyOnce(t *testing.T) {
	ctx := context.Background()
	te := openTest(t, testSchema())
	w := Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"rank": 1}}
	r1, err := te.ApplyRequest(ctx, "req-1", w)
	if err != nil {
		t.Fatal(err)
	}
	before := te.snapshot()
	r2, err := te.ApplyRequest(ctx, "req-1", w)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Version != r1.Version || len(r2.MutationIDs) != 1 || r2.MutationIDs[0] != r1.MutationIDs[0] {
		t.Fatalf("retry answered %+v, first was %+v", r2, r1)
	}
	if te.snapshot() != before {
		t.Fatal("a retried request was applied again")
	}
	te.reopen(testSchema())
	if r3, _ := te.ApplyRequest(ctx, "req-1", w); r3.MutationIDs[0] != r1.MutationIDs[0] {
		t.Fatalf("after reopen: %+v", r3)
	}
	// A refused request is not recorded: fixed and retried, it applies.
	bad := Write{Op: protocol.OpPatch, Collection: "todos", ID: "nope", Fields: Record{"rank": 1}}
	if _, err := te.ApplyRequest(ctx, "req-2", bad); CodeOf(err) != CodeNotFound {
		t.Fatalf("bad request: %v", err)
	}
	if _, err := te.ApplyRequest(ctx, "req-2", w); err != nil {
		t.Fatal(err)
	}
	if n := len(te.pending()); n != 2 {
		t.Fatalf("outbox holds %d, want 2", n)
	}
}

func TestIntegrityCheck(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a"})
	if got, err := te.IntegrityCheck(context.Background()); err != nil || got != "ok" {
		t.Fatalf("integrity check: %q %v", got, err)
	}
}
