package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/pkg/syncengine/httpsync"
)

// testProxy is a reverse proxy to a server; when the server cannot be
// reached it answers 502, as a load balancer would, and counts the pushes
// it could not deliver or whose answer it lost.
type testProxy struct {
	*httptest.Server
	failedPushes atomic.Int64
}

// proxyTo starts a testProxy to target whose pushes go through onPush
// first: onPush may answer itself (return true) or let the push through.
func proxyTo(t *testing.T, target string, onPush func(w http.ResponseWriter, body []byte) bool) *testProxy {
	return proxyWith(t, target, func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		return r.URL.Path == protocol.PathPush && onPush(w, body)
	})
}

// proxyWith starts a testProxy to target whose requests go through
// intercept first (with the body read, for pushes): intercept may answer
// itself (return true) or let the request through.
func proxyWith(t *testing.T, target string, intercept func(w http.ResponseWriter, r *http.Request, body []byte) bool) *testProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if r.URL.Path == protocol.PathPush {
			p.failedPushes.Add(1)
		}
		http.Error(w, `{"error":{"code":"INTERNAL","message":"bad gateway"}}`, http.StatusBadGateway)
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.URL.Path == protocol.PathPush {
			var err error
			if body, err = io.ReadAll(r.Body); err != nil {
				http.Error(w, "read", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if intercept(w, r, body) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { p.CloseClientConnections(); p.Close() })
	return p
}

// Answers that refuse a request without being about its writes — a wrong
// URL's 404, a proxy's 405 or 415 page, a 400 that is no opfsync error, a
// protocol VERSION mismatch — keep the writes in the outbox (nothing
// rolled back, no rejected event) and say what was answered in the status;
// once the server is reached again, the writes sync. A pull refused so
// keeps its cursor (no full resync).
func TestRefusalsNotAboutTheWritesKeepThem(t *testing.T) {
	srv := startServer(t, nil)
	type answer struct {
		status      int
		ctype, body string
	}
	refusals := []answer{
		{404, "text/html", "<html><body>Not Found</body></html>"},
		{405, "text/plain", "Method Not Allowed"},
		{415, "text/plain", "Unsupported Media Type"},
		{400, "text/html", "<html><body>400 Bad Request</body></html>"},
		{400, "application/json", `{"error":{"code":"VERSION","message":"this server speaks protocol 2"}}`},
	}
	var (
		mu          sync.Mutex
		refusing    *answer  // nil: pass requests through
		refusePulls bool     // refuse pulls too (pushes only otherwise)
		cursors     []string // the cursor of every pull that reached the server
	)
	proxy := proxyWith(t, srv.URL(), func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		isPull := r.URL.Path == protocol.PathPull
		if refusing != nil && (r.URL.Path == protocol.PathPush || isPull && refusePulls) {
			w.Header().Set("Content-Type", refusing.ctype)
			w.WriteHeader(refusing.status)
			io.WriteString(w, refusing.body)
			return true
		}
		if isPull {
			cursors = append(cursors, r.URL.Query().Get("cursor"))
		}
		return false
	})
	refuse := func(a *answer, pulls bool) {
		mu.Lock()
		refusing, refusePulls = a, pulls
		mu.Unlock()
	}
	c := newClient(t, "kept", proxy.URL)
	events := record(c)
	ctx := context.Background()
	if _, err := c.Put(ctx, "items", syncengine.Record{"id": "first", "title": "synced"}); err != nil {
		t.Fatal(err)
	}
	syncNow(t, c)
	goOffline(t, c) // only SyncNow below
	mu.Lock()
	synced := len(cursors) // the pulls from here on must all have a cursor
	mu.Unlock()
	for i := range refusals {
		refuse(&refusals[i], false)
		id := fmt.Sprintf("w%d", i)
		if _, err := c.Put(ctx, "items", syncengine.Record{"id": id, "title": "kept"}); err != nil {
			t.Fatal(err)
		}
		err := c.sync.SyncNow(ctx)
		var te *syncengine.TransportError
		if !errors.As(err, &te) || te.Status != refusals[i].status {
			t.Fatalf("answer %d: SyncNow returned %v, want the server's %d", i, err, refusals[i].status)
		}
		if st := c.sync.Status(); !strings.Contains(st.Error, strconv.Itoa(refusals[i].status)) {
			t.Fatalf("answer %d: status error %q does not say what the server answered", i, st.Error)
		} else if refusals[i].status == 404 && !strings.Contains(st.Error, "must be the opfsync server's origin") {
			t.Fatalf("a 404 from something else than an opfsync server: status error %q does not point at the URL", st.Error)
		}
		if n := c.pending(t); n != i+1 {
			t.Fatalf("answer %d (%d %s): outbox holds %d, want %d", i, refusals[i].status, refusals[i].body, n, i+1)
		}
		if r, _ := c.Get(ctx, "items", id); r == nil || r["title"] != "kept" {
			t.Fatalf("answer %d: the write was rolled back: %v", i, r)
		}
	}
	if rej := events.of("rejected"); len(rej) != 0 {
		t.Fatalf("rejected events for writes no server refused: %v", rej)
	}
	// A pull refused so keeps the cursor it had.
	refuse(&refusals[0], true)
	if err := c.sync.SyncNow(ctx); err == nil {
		t.Fatal("SyncNow succeeded through a 404")
	}
	refuse(nil, false)
	syncNow(t, c)
	if n := c.pending(t); n != 0 {
		t.Fatalf("outbox holds %d after the server was reached", n)
	}
	mu.Lock()
	if len(cursors) == synced {
		t.Error("no pull reached the server after the refusals")
	}
	for _, cur := range cursors[synced:] {
		if cur == "" {
			t.Errorf("a pull started over from no cursor: %q", cursors[synced:])
		}
	}
	mu.Unlock()
	other := newClient(t, "other", srv.URL())
	syncNow(t, other)
	for i := range refusals {
		if r, _ := other.Get(ctx, "items", fmt.Sprintf("w%d", i)); r == nil || r["title"] != "kept" {
			t.Fatalf("w%d did not reach the server: %v", i, r)
		}
	}
}

// A server (or a proxy in front of it) that answers 429 Too Many Requests
// with Retry-After is not asked again before that time, in both of the
// header's forms (seconds and an HTTP date), even though the engine's own
// backoff would retry after milliseconds. The writes then sync.
func TestRetryAfterIsHonoured(t *testing.T) {
	srv := startServer(t, nil)
	var (
		mu       sync.Mutex
		arrivals []time.Time
		limited  []time.Duration // the Retry-After each 429 asked for
	)
	waits := []func() (string, time.Duration){
		func() (string, time.Duration) { return "1", time.Second },
		func() (string, time.Duration) {
			// An HTTP date has whole seconds: ask for the second after next.
			at := time.Now().Add(2 * time.Second).Truncate(time.Second)
			return at.UTC().Format(http.TimeFormat), time.Until(at)
		},
	}
	proxy := proxyTo(t, srv.URL(), func(w http.ResponseWriter, _ []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		arrivals = append(arrivals, time.Now())
		if n := len(arrivals); n <= len(waits) {
			header, d := waits[n-1]()
			limited = append(limited, d)
			w.Header().Set("Retry-After", header)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"code":"RATE_LIMITED","message":"slow down"}}`)
			return true
		}
		return false
	})
	c := newClient(t, "limited", proxy.URL) // backoff 10-200 ms
	ctx := context.Background()
	if _, err := c.Put(ctx, "items", syncengine.Record{"id": "x", "title": "patient"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for c.pending(t) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the write did not sync within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != len(waits)+1 {
		t.Fatalf("%d push attempts, want %d (two refused, one through)", len(arrivals), len(waits)+1)
	}
	for i, want := range limited {
		// A little slack for the timer; none for retrying early.
		if gap := arrivals[i+1].Sub(arrivals[i]); gap < want-50*time.Millisecond {
			t.Errorf("retry %d came %v after a 429 that said Retry-After %v", i+1, gap, want)
		}
	}
	if r, _ := c.Get(ctx, "items", "x"); r["title"] != "patient" {
		t.Fatalf("after the 429s: %v", r)
	}
}

// A device offline for a long time collects thousands of writes. Back
// online, they go up in batches of at most PushBatch, one request at a
// time, in order per record, each applied once; the live heap stays far
// below the size of what is sent. Under -race (make test-go) the backlog
// is smaller and the heap is not judged; make test-go runs it again
// without -race, whole.
func TestLongOfflineBacklogSyncsInBoundedBatches(t *testing.T) {
	records, patches := 2000, 2000
	const batch = 100
	if raceDetector {
		records, patches = 300, 300
	}
	srv := startServer(t, nil)
	var (
		requests, inFlight, maxInFlight, maxBatch atomic.Int64
		sent                                      atomic.Int64 // push body bytes
		order                                     sync.Mutex
		lastN                                     = map[string]int{} // per record, the last "n" pushed
		outOfOrder                                atomic.Int64
		base                                      uint64 // live heap before the sync
		peak                                      atomic.Uint64
	)
	proxy := proxyTo(t, srv.URL(), func(w http.ResponseWriter, body []byte) bool {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		requests.Add(1)
		// The live heap while the engine waits for this answer.
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for p := peak.Load(); ms.HeapAlloc > p && !peak.CompareAndSwap(p, ms.HeapAlloc); p = peak.Load() {
		}
		sent.Add(int64(len(body)))
		var req protocol.PushRequest
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("undecodable push: %v", err)
		}
		if k := int64(len(req.Mutations)); k > maxBatch.Load() {
			maxBatch.Store(k)
		}
		order.Lock()
		for _, m := range req.Mutations {
			raw, ok := m.Fields["n"]
			if !ok {
				continue
			}
			n, _ := strconv.Atoi(string(raw))
			if n < lastN[m.ID] {
				outOfOrder.Add(1)
			}
			lastN[m.ID] = n
		}
		order.Unlock()
		return false
	})
	c := newClient(t, "traveller", "", func(o *syncengine.Options) { o.CacheSizeKiB = 2048 })
	ctx := context.Background()
	pad := strings.Repeat("offline for a long time; ", 320) // 8 KB per record
	// Written in transactions of 500, to keep the test quick; each write
	// is its own mutation all the same.
	var writes []syncengine.Write
	for i := range records {
		writes = append(writes, syncengine.Write{Op: protocol.OpPut, Collection: "items", ID: "r" + strconv.Itoa(i), Fields: syncengine.Record{"title": pad, "n": 0}})
	}
	for i := range patches {
		writes = append(writes, syncengine.Write{Op: protocol.OpPatch, Collection: "items", ID: "r" + strconv.Itoa(i%500), Fields: syncengine.Record{"n": 1 + i/500}})
	}
	for chunk := range slices.Chunk(writes, 500) {
		if _, err := c.Apply(ctx, chunk...); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.pending(t); got != records+patches {
		t.Fatalf("%d pending, want %d", got, records+patches)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base = ms.HeapAlloc
	opts := fastSync(proxy.URL)
	opts.PushBatch = batch
	opts.RequestTimeout = time.Minute
	opts.Transport = &httpsync.Transport{URL: proxy.URL, Token: devToken}
	s, err := c.StartSync(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := s.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}

	if got := c.pending(t); got != 0 {
		t.Fatalf("%d still pending", got)
	}
	if min := int64((records + patches + batch - 1) / batch); requests.Load() < min {
		t.Fatalf("%d push requests for %d mutations: batches bigger than %d", requests.Load(), records+patches, batch)
	}
	if maxBatch.Load() > batch || maxInFlight.Load() != 1 || outOfOrder.Load() != 0 {
		t.Fatalf("largest batch %d (limit %d), most pushes in flight %d (want 1), %d out of per-record order",
			maxBatch.Load(), batch, maxInFlight.Load(), outOfOrder.Load())
	}
	growth := int64(peak.Load()) - int64(base)
	// The engine and the server share this process; neither may hold the
	// whole backlog at once.
	if !raceDetector && growth > sent.Load()/3 {
		t.Fatalf("heap grew by %d bytes while pushing %d bytes: the backlog is held in memory", growth, sent.Load())
	}
	if server := equalToServer(t, []*client{c}, srv.URL()); len(server) != records {
		t.Fatalf("the server holds %d records, want %d", len(server), records)
	}
	stats, err := srv.store.Stats(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if stats.Applied != int64(records+patches) {
		t.Fatalf("server applied %d mutations, want %d", stats.Applied, records+patches)
	}
	t.Logf("%d offline writes: %d push requests, largest %d mutations, one at a time, %.1f MB sent; heap grew %.1f MB at most",
		records+patches, requests.Load(), maxBatch.Load(), float64(sent.Load())/1e6, float64(growth)/1e6)
}
