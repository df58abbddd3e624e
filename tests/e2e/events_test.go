package e2e

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

// recorder keeps the events of one engine.
type recorder struct {
	mu     sync.Mutex
	events []syncengine.Event
}

func record(c *client) *recorder {
	r := &recorder{}
	c.Subscribe(func(ev syncengine.Event) {
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
	})
	return r
}

// of waits briefly for delivery, then returns the events of kind.
func (r *recorder) of(kind string) []syncengine.Event {
	time.Sleep(50 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []syncengine.Event
	for _, ev := range r.events {
		if syncengine.EventKind(ev) == kind {
			out = append(out, ev)
		}
	}
	return out
}

// goOffline stops c's automatic syncing and waits until the loop took it.
func goOffline(t *testing.T, c *client) {
	t.Helper()
	c.sync.SetOnline(false)
	for deadline := time.Now().Add(5 * time.Second); c.sync.Status().Online; {
		if time.Now().After(deadline) {
			t.Fatal("the sync loop did not go offline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func syncNow(t *testing.T, c *client) {
	t.Helper()
	if err := c.sync.SyncNow(context.Background()); err != nil {
		t.Fatalf("%s sync: %v", c.name, err)
	}
}

func TestServerRefusalRollsBackAndEmitsRejected(t *testing.T) {
	srv := startServer(t, func(_ context.Context, _ string, m *protocol.Mutation) error {
		if string(m.Fields["title"]) == `"forbidden"` {
			return errors.New("titles may not say forbidden")
		}
		return nil
	})
	a := newClient(t, "a", srv.URL())
	events := record(a)
	ctx := context.Background()
	if _, err := a.Put(ctx, "items", syncengine.Record{"id": "x", "title": "fine", "n": 1}); err != nil {
		t.Fatal(err)
	}
	syncNow(t, a)
	// Hold automatic pushes, so the optimistic value can be seen before the
	// server refuses it.
	goOffline(t, a)
	res, err := a.Patch(ctx, "items", "x", syncengine.Record{"title": "forbidden"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Patch(ctx, "items", "x", syncengine.Record{"n": 2}); err != nil {
		t.Fatal(err)
	}
	if r, _ := a.Get(ctx, "items", "x"); r["title"] != "forbidden" {
		t.Fatalf("the optimistic write is not visible before sync: %v", r)
	}
	syncNow(t, a)
	r, _ := a.Get(ctx, "items", "x")
	if r["title"] != "fine" || r["n"] != int64(2) {
		t.Fatalf("after the refusal: %v (want the title rolled back, the later edit kept)", r)
	}
	rej := events.of("rejected")
	if len(rej) != 1 {
		t.Fatalf("rejected events: %v", rej)
	}
	ev := rej[0].(*syncengine.RejectedEvent)
	if ev.MutationID != res.MutationIDs[0] || ev.Code != protocol.CodeForbidden || ev.Message != "titles may not say forbidden" || ev.ID != "x" {
		t.Fatalf("rejected event %+v", ev)
	}
	if n := a.pending(t); n != 0 {
		t.Fatalf("outbox holds %d", n)
	}
	// A second device never sees the refused value.
	b := newClient(t, "b", srv.URL())
	syncNow(t, b)
	if r, _ := b.Get(ctx, "items", "x"); r["title"] != "fine" || r["n"] != int64(2) {
		t.Fatalf("second device sees %v", r)
	}
}

func TestConflictEventsOverHTTP(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, nil)
	seed := newClient(t, "seed", srv.URL())
	if _, err := seed.Put(ctx, "items", syncengine.Record{"id": "x", "title": "original"}); err != nil {
		t.Fatal(err)
	}
	syncNow(t, seed)

	for _, tc := range []struct {
		origin protocol.Origin
		want   int
	}{{protocol.OriginUser, 1}, {protocol.OriginSystem, 0}, {protocol.OriginAgent, 0}} {
		t.Run("losing "+string(tc.origin)+" edit", func(t *testing.T) {
			a := newClient(t, "a", srv.URL())
			syncNow(t, a) // hydrated
			events := record(a)
			goOffline(t, a)
			if _, err := a.Apply(ctx, syncengine.Write{Op: protocol.OpPatch, Collection: "items", ID: "x",
				Fields: syncengine.Record{"title": "mine"}, Origin: tc.origin}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // the other edit is later
			b := newClient(t, "b", srv.URL())
			syncNow(t, b)
			if _, err := b.Patch(ctx, "items", "x", syncengine.Record{"title": "theirs"}); err != nil {
				t.Fatal(err)
			}
			syncNow(t, b)
			syncNow(t, a)
			if r, _ := a.Get(ctx, "items", "x"); r["title"] != "theirs" {
				t.Fatalf("a shows %v, want the newer remote value", r)
			}
			conflicts := events.of("conflict")
			if len(conflicts) != tc.want {
				t.Fatalf("%d conflict events, want %d: %v", len(conflicts), tc.want, conflicts)
			}
			if tc.want == 1 {
				c := conflicts[0].(*syncengine.ConflictEvent)
				if c.Collection != "items" || c.ID != "x" || c.Field != "title" || string(c.Local) != `"mine"` || string(c.Remote) != `"theirs"` {
					t.Fatalf("conflict %+v", c)
				}
			}
			// Put it back for the next case.
			if _, err := b.Patch(ctx, "items", "x", syncengine.Record{"title": "original"}); err != nil {
				t.Fatal(err)
			}
			syncNow(t, b)
		})
	}

	t.Run("none during the initial hydration", func(t *testing.T) {
		// A new device whose clock is an hour behind edits offline before
		// its first sync; the server's newer value wins without an event.
		behind := func(o *syncengine.Options) { o.Now = func() time.Time { return time.Now().Add(-time.Hour) } }
		c := newClient(t, "c", "", behind)
		events := record(c)
		if _, err := c.Put(ctx, "items", syncengine.Record{"id": "x", "title": "offline draft"}); err != nil {
			t.Fatal(err)
		}
		s, err := c.StartSync(fastSync(srv.URL()))
		if err != nil {
			t.Fatal(err)
		}
		c.sync = s
		syncNow(t, c)
		if r, _ := c.Get(ctx, "items", "x"); r["title"] != "original" {
			t.Fatalf("c shows %v", r)
		}
		if got := events.of("conflict"); len(got) != 0 {
			t.Fatalf("conflict events during hydration: %v", got)
		}
	})
}

func TestEventStreamPokesOtherDevices(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, nil)
	a := newClient(t, "a", srv.URL())
	b := newClient(t, "b", "")
	opts := fastSync(srv.URL())
	opts.PullInterval = time.Hour // only a poke can bring the change
	s, err := b.StartSync(opts)
	if err != nil {
		t.Fatal(err)
	}
	b.sync = s
	time.Sleep(200 * time.Millisecond) // b's stream is connected
	if _, err := a.Put(ctx, "items", syncengine.Record{"id": "live", "title": "pushed by a"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r, _ := b.Get(ctx, "items", "live"); r != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never received a's write: the poke did not arrive")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClockAheadIsClampedAndCannotWinEveryConflict(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, nil)
	ahead := func(o *syncengine.Options) { o.Now = func() time.Time { return time.Now().Add(5 * time.Hour) } }
	liar := newClient(t, "liar", srv.URL(), ahead)
	honest := newClient(t, "honest", srv.URL())
	if _, err := liar.Put(ctx, "items", syncengine.Record{"id": "x", "title": "from the future"}); err != nil {
		t.Fatal(err)
	}
	syncNow(t, liar)
	syncNow(t, honest)
	time.Sleep(5 * time.Millisecond)
	if _, err := honest.Patch(ctx, "items", "x", syncengine.Record{"title": "honest and later"}); err != nil {
		t.Fatal(err)
	}
	syncNow(t, honest)
	syncNow(t, liar)
	for _, c := range []*client{liar, honest} {
		if r, _ := c.Get(ctx, "items", "x"); r["title"] != "honest and later" {
			t.Fatalf("%s shows %v: the future-dated write won", c.name, r)
		}
	}
}

// A client whose clock is hours behind still converges, and its edits are
// not lost for good: an edit it makes after seeing the others' changes
// carries a stamp past theirs (the HLC advances past every stamp it
// receives), so it wins as it should; only an edit concurrent with a later
// one loses, as last-writer-wins says.
func TestClockBehindStillConvergesAndWinsLaterEdits(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, nil)
	behind := func(o *syncengine.Options) { o.Now = func() time.Time { return time.Now().Add(-5 * time.Hour) } }
	late := newClient(t, "late", srv.URL(), behind)
	honest := newClient(t, "honest", srv.URL())
	goOffline(t, late)
	goOffline(t, honest)
	// Concurrent edits: the honest one is later in real time and in stamp.
	if _, err := late.Put(ctx, "items", syncengine.Record{"id": "x", "title": "from the past", "n": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := honest.Put(ctx, "items", syncengine.Record{"id": "x", "title": "honest", "n": 2}); err != nil {
		t.Fatal(err)
	}
	late.sync.SetOnline(true)
	honest.sync.SetOnline(true)
	syncNow(t, late)
	syncNow(t, honest)
	syncNow(t, late)
	for _, c := range []*client{late, honest} {
		if r, _ := c.Get(ctx, "items", "x"); r["title"] != "honest" {
			t.Fatalf("%s shows %v after concurrent edits", c.name, r)
		}
	}
	// Having seen the honest edit, the late client's next edit wins.
	if _, err := late.Patch(ctx, "items", "x", syncengine.Record{"title": "late but after"}); err != nil {
		t.Fatal(err)
	}
	syncNow(t, late)
	syncNow(t, honest)
	for _, c := range []*client{late, honest} {
		if r, _ := c.Get(ctx, "items", "x"); r["title"] != "late but after" || r["n"] != int64(2) {
			t.Fatalf("%s shows %v: the late clock's later edit was lost", c.name, r)
		}
	}
	equalToServer(t, []*client{late, honest}, srv.URL())
}
