package syncengine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// scriptTransport serves the sync loop from the in-test reference server
// (propServer), with hooks that fail requests on demand. The loop's
// behaviour against the real server over HTTP is tested in tests/e2e; these
// tests pin down timing and failure handling that a real server cannot be
// made to show on cue.
type scriptTransport struct {
	mu       sync.Mutex
	srv      *propServer
	failPush func(batch []protocol.Mutation) error // nil: succeed
	failPull func() error
	attempts []time.Time // every push or pull attempt
	pokes    []chan protocol.PokeData
	// failEvents, when set, fails every event-stream connection at once;
	// streams counts the connection attempts.
	failEvents error
	streams    int
}

func newScriptTransport(t *testing.T) *scriptTransport {
	return &scriptTransport{srv: newPropServer(t)}
}

func (s *scriptTransport) Push(ctx context.Context, req *protocol.PushRequest) (*protocol.PushResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts = append(s.attempts, time.Now())
	if s.failPush != nil {
		if err := s.failPush(req.Mutations); err != nil {
			return nil, err
		}
	}
	res := s.srv.push(req.Mutations, func() bool { return false })
	for _, p := range s.pokes {
		select {
		case p <- protocol.PokeData{}:
		default:
		}
	}
	return &protocol.PushResponse{Results: res}, nil
}

func (s *scriptTransport) Pull(ctx context.Context, cursor string, limit int) (*protocol.PullResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts = append(s.attempts, time.Now())
	if s.failPull != nil {
		if err := s.failPull(); err != nil {
			return nil, err
		}
	}
	return s.srv.pullPage(cursor, limit), nil
}

func (s *scriptTransport) Events(ctx context.Context, clientID string, onPoke func(protocol.PokeData)) error {
	ch := make(chan protocol.PokeData, 1)
	s.mu.Lock()
	s.streams++
	if s.failEvents != nil {
		s.mu.Unlock()
		return s.failEvents
	}
	s.pokes = append(s.pokes, ch)
	s.mu.Unlock()
	onPoke(protocol.PokeData{})
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-ch:
			onPoke(p)
		}
	}
}

func (s *scriptTransport) attemptTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts...)
}

var errUnreachable = &TransportError{Op: "push", Err: errors.New("connection refused")}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSyncerPushesOnWriteAndPullsOnPoke(t *testing.T) {
	tr := newScriptTransport(t)
	a := openTest(t, testSchema())
	b := openTest(t, testSchema())
	for _, te := range []*testEngine{a, b} {
		if _, err := te.StartSync(SyncOptions{Transport: tr, PullInterval: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	a.put("todos", Record{"id": "x", "title": "from a"})
	waitFor(t, "b to receive a's write", func() bool {
		r, _ := b.Get(context.Background(), "todos", "x")
		return r != nil && r["title"] == "from a"
	})
	waitFor(t, "a's status to show the outbox drained", func() bool {
		st, _ := a.Status(context.Background())
		return !st.Syncing && st.Pending == 0
	})
	st, _ := a.Status(context.Background())
	if !st.Online || st.Error != "" || st.LastSyncAt == 0 {
		t.Fatalf("status after a good sync: %+v", st)
	}
	verifyVisible(t, a.Engine)
	verifyVisible(t, b.Engine)
}

func TestSyncerBacksOffExponentiallyWithJitterAndRetriesOnSyncNow(t *testing.T) {
	tr := newScriptTransport(t)
	var mu sync.Mutex
	failing := true
	tr.failPush = func([]protocol.Mutation) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errUnreachable
		}
		return nil
	}
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "x", "title": "queued"})
	const minB, maxB = 40 * time.Millisecond, 320 * time.Millisecond
	s, err := te.StartSync(SyncOptions{Transport: tr, MinBackoff: minB, MaxBackoff: maxB, NoEvents: true, PullInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "7 attempts", func() bool { return len(tr.attemptTimes()) >= 7 })
	at := tr.attemptTimes()
	// Never early; late by at most 150 ms, except one timer (a loaded
	// machine, or a browser worker, delays a timer now and then) by at most
	// 500 ms. A backoff that does not grow, or starts at the cap, fails on
	// more than one retry.
	want := minB
	late := 0
	for i := 1; i < 7; i++ {
		gap := at[i].Sub(at[i-1])
		if gap < want/2-5*time.Millisecond || gap > want+500*time.Millisecond {
			t.Fatalf("retry %d came after %v, want between %v and %v", i, gap, want/2, want)
		}
		if gap > want+150*time.Millisecond {
			if late++; late > 1 {
				t.Fatalf("retry %d came after %v (want between %v and %v), the second late retry", i, gap, want/2, want)
			}
		}
		want = min(2*want, maxB)
	}
	st := s.Status()
	if st.Online || st.Error == "" || st.Pending != 1 {
		t.Fatalf("status while the server is unreachable: %+v", st)
	}
	// SyncNow tries at once (not at the next backoff tick) and reports.
	if err := s.SyncNow(context.Background()); err == nil {
		t.Fatal("SyncNow succeeded against an unreachable server")
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	start := time.Now()
	if err := s.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > maxB {
		t.Fatalf("SyncNow waited %v", time.Since(start))
	}
	if st := s.Status(); !st.Online || st.Error != "" || st.Pending != 0 {
		t.Fatalf("status after recovery: %+v", st)
	}
	// The failed attempts were recorded on the mutation, then it left.
	if n, _ := te.PendingCount(context.Background()); n != 0 {
		t.Fatalf("outbox holds %d", n)
	}
}

func TestSyncerHonoursRetryAfter(t *testing.T) {
	tr := newScriptTransport(t)
	calls := 0
	tr.failPush = func([]protocol.Mutation) error {
		calls++
		if calls == 1 {
			return &TransportError{Op: "push", Status: 429, Code: "RATE_LIMITED", RetryAfter: 300 * time.Millisecond}
		}
		return nil
	}
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "x"})
	if _, err := te.StartSync(SyncOptions{Transport: tr, MinBackoff: 10 * time.Millisecond, NoEvents: true, PullInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retry", func() bool { return len(tr.attemptTimes()) >= 2 })
	at := tr.attemptTimes()
	if gap := at[1].Sub(at[0]); gap < 290*time.Millisecond {
		t.Fatalf("retried after %v despite Retry-After 300ms", gap)
	}
}

func TestSyncerIsolatesAMutationTheServerCannotTake(t *testing.T) {
	tr := newScriptTransport(t)
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "fine"})
	te.put("todos", Record{"id": "big", "title": "too large for this server"})
	te.put("todos", Record{"id": "c", "title": "fine too"})
	bad := te.pending()[1].MutationID
	tr.failPush = func(batch []protocol.Mutation) error {
		for _, m := range batch {
			if m.MutationID == bad {
				return &TransportError{Op: "push", Status: 413, Code: "TOO_LARGE", Message: "request body too large"}
			}
		}
		return nil
	}
	s, err := te.StartSync(SyncOptions{Transport: tr, NoEvents: true, PullInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := te.PendingCount(context.Background()); n != 0 {
		t.Fatalf("outbox holds %d: one bad mutation blocked the queue", n)
	}
	if te.get("todos", "big") != nil {
		t.Fatal("the refused record is still visible")
	}
	if te.get("todos", "a") == nil || te.get("todos", "c") == nil {
		t.Fatal("the good records were lost")
	}
	rej := te.takeEvents("rejected")
	if len(rej) != 1 || rej[0].(*RejectedEvent).MutationID != bad || rej[0].(*RejectedEvent).Code != "TOO_LARGE" {
		t.Fatalf("rejected events: %v", rej)
	}
	if tr.srv.applied[bad] != 0 || len(tr.srv.applied) != 2 {
		t.Fatalf("server applied %v", tr.srv.applied)
	}
}

func TestSyncerWaitsWhileOfflineAndRetriesWhenOnline(t *testing.T) {
	tr := newScriptTransport(t)
	te := openTest(t, testSchema())
	s, err := te.StartSync(SyncOptions{Transport: tr, NoEvents: true, PullInterval: time.Hour, MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first pull", func() bool { return len(tr.attemptTimes()) >= 1 })
	s.SetOnline(false)
	waitFor(t, "offline status", func() bool { return !s.Status().Online })
	n := len(tr.attemptTimes())
	te.put("todos", Record{"id": "x"})
	time.Sleep(100 * time.Millisecond)
	if got := len(tr.attemptTimes()); got != n {
		t.Fatalf("%d requests while offline", got-n)
	}
	s.SetOnline(true)
	waitFor(t, "the push after coming online", func() bool {
		c, _ := te.PendingCount(context.Background())
		return c == 0
	})
}

func TestSyncerStartedOfflineWaitsForTheNetwork(t *testing.T) {
	tr := newScriptTransport(t)
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "x"})
	s, err := te.StartSync(SyncOptions{Transport: tr, NoEvents: true, PullInterval: time.Hour, StartOffline: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Status().Online {
		t.Fatal("status online after starting offline")
	}
	time.Sleep(150 * time.Millisecond)
	if n := len(tr.attemptTimes()); n != 0 {
		t.Fatalf("%d requests before the network came", n)
	}
	s.SetOnline(true)
	waitFor(t, "the push after coming online", func() bool {
		c, _ := te.PendingCount(context.Background())
		return c == 0
	})
}

// The event stream follows the network: no connection attempt while
// offline, and coming online reconnects at once, whatever backoff earlier
// failures built up.
func TestSyncerEventStreamFollowsTheNetwork(t *testing.T) {
	tr := newScriptTransport(t)
	tr.failEvents = &TransportError{Op: "events", Err: errors.New("connection refused")}
	streams := func() int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.streams
	}
	te := openTest(t, testSchema())
	s, err := te.StartSync(SyncOptions{Transport: tr, PullInterval: time.Hour, StartOffline: true, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if n := streams(); n != 0 {
		t.Fatalf("%d event-stream connections tried before the network came", n)
	}
	s.SetOnline(true)
	waitFor(t, "a connection once online", func() bool { return streams() == 1 })
	time.Sleep(150 * time.Millisecond)
	if n := streams(); n != 1 {
		t.Fatalf("%d connections tried during an hour's backoff", n)
	}
	s.SetOnline(false)
	time.Sleep(100 * time.Millisecond)
	if n := streams(); n != 1 {
		t.Fatalf("%d connections tried after going offline", n-1)
	}
	s.SetOnline(true)
	waitFor(t, "a reconnection at once when the network came back", func() bool { return streams() == 2 })
}

func TestSyncerEmitsStatusEvents(t *testing.T) {
	tr := newScriptTransport(t)
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "x"})
	s, err := te.StartSync(SyncOptions{Transport: tr, NoEvents: true, PullInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	var sawSyncing, sawDone bool
	for _, ev := range te.takeEvents("status") {
		st := ev.(*StatusEvent).Status
		if st.Syncing {
			sawSyncing = true
		}
		if !st.Syncing && st.Pending == 0 && st.LastSyncAt > 0 && st.Online {
			sawDone = true
		}
	}
	if !sawSyncing || !sawDone {
		t.Fatalf("status events missed syncing=%v done=%v", sawSyncing, sawDone)
	}
}

func TestStatusCountsAWriteMadeWhileAPushIsInFlight(t *testing.T) {
	tr := newScriptTransport(t)
	inFlight, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	tr.failPush = func([]protocol.Mutation) error {
		once.Do(func() { close(inFlight); <-release })
		return nil
	}
	te := openTest(t, testSchema())
	t.Cleanup(func() { released.Do(func() { close(release) }) }) // runs before the engine's close
	if _, err := te.StartSync(SyncOptions{Transport: tr, NoEvents: true, PullInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	te.put("todos", Record{"id": "a"})
	<-inFlight
	te.takeEvents("status")
	te.put("todos", Record{"id": "b"}) // while a's push waits for its answer
	waitFor(t, "a status event counting both writes while the push is in flight", func() bool {
		for _, ev := range te.takeEvents("status") {
			if st := ev.(*StatusEvent).Status; st.Pending == 2 && st.Syncing {
				return true
			}
		}
		return false
	})
	if st, _ := te.Status(context.Background()); st.Pending != 2 {
		t.Fatalf("status() during the push: pending %d, want 2", st.Pending)
	}
	released.Do(func() { close(release) })
	waitFor(t, "the outbox to drain", func() bool {
		st, _ := te.Status(context.Background())
		return !st.Syncing && st.Pending == 0
	})
}

func TestCloseStopsTheSyncer(t *testing.T) {
	tr := newScriptTransport(t)
	te := openTest(t, testSchema())
	s, err := te.StartSync(SyncOptions{Transport: tr, PullInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := te.StartSync(SyncOptions{Transport: tr}); CodeOf(err) != CodeValidation {
		t.Fatalf("second StartSync: %v", err)
	}
	if err := te.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncNow(context.Background()); CodeOf(err) != CodeClosed {
		t.Fatalf("SyncNow after Close: %v", err)
	}
}

func TestLastSyncAtSurvivesAReopen(t *testing.T) {
	tr := newScriptTransport(t)
	te := openTest(t, testSchema())
	s, err := te.StartSync(SyncOptions{Transport: tr, NoEvents: true, PullInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	at := s.Status().LastSyncAt
	if at == 0 {
		t.Fatal("no lastSyncAt after a sync")
	}
	te.reopen(testSchema())
	s, err = te.StartSync(SyncOptions{Transport: tr, NoEvents: true, PullInterval: time.Hour, MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Persisted at most every lastSyncPersistEvery, so it may be a little
	// older than the last sync, never newer, never lost.
	if got := s.Status().LastSyncAt; got == 0 || got > at || at-got > lastSyncPersistEvery.Milliseconds() {
		t.Fatalf("lastSyncAt after reopen = %d, last sync was %d", got, at)
	}
}
