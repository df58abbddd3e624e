package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3/driver"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/pkg/syncserver"
)

// pushWatch is a plain reverse proxy that says when a push request has
// reached the server, so a test can kill the server while it works on it.
// When the server is down it answers 502, as a load balancer would.
type pushWatch struct {
	srv        *httptest.Server
	pushes     chan struct{}
	unanswered atomic.Int64 // pushes cut by a kill or refused while the server was down
}

func newPushWatch(t *testing.T, target string) *pushWatch {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p := &pushWatch{pushes: make(chan struct{}, 1)}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if r.URL.Path == protocol.PathPush {
			p.unanswered.Add(1)
		}
		http.Error(w, `{"error":{"code":"INTERNAL","message":"bad gateway"}}`, http.StatusBadGateway)
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == protocol.PathPush {
			select {
			case p.pushes <- struct{}{}:
			default:
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { p.srv.CloseClientConnections(); p.srv.Close() })
	return p
}

// TestServerKilledDuringPushesAppliesEachMutationOnce SIGKILLs the real
// server binary again and again just after a push request reached it (so
// some kills land before, some inside and some after the batch's
// transaction, and some answers are lost), restarts it on the same
// database, and checks that the engines retried until every mutation was
// applied exactly once, that they converged on the server's state, and
// that the server's database is intact.
func TestServerKilledDuringPushesAppliesEachMutationOnce(t *testing.T) {
	const (
		engines = 3
		kills   = 12
	)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	srv := startProcessServer(t)
	proxy := newPushWatch(t, srv.URL())
	var clients []*client
	for i := range engines {
		clients = append(clients, newClient(t, fmt.Sprintf("engine%d", i), proxy.srv.URL))
	}
	// A backlog made offline, so the first minutes are one push after
	// another.
	ctx := context.Background()
	var (
		mu   sync.Mutex
		made []string
	)
	goOffline(t, clients[0])
	for i := range 600 {
		res, err := clients[0].Put(ctx, "items", syncengine.Record{"id": "b" + strconv.Itoa(i%150), "title": "backlog " + strconv.Itoa(i), "n": i})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, res.MutationIDs...)
	}
	clients[0].sync.SetOnline(true)

	stop := make(chan struct{})
	var writers sync.WaitGroup
	for i, c := range clients {
		writers.Add(1)
		go func() {
			defer writers.Done()
			r := rand.New(rand.NewPCG(seed, uint64(i+2)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(1+r.IntN(6)) * time.Millisecond):
				}
				id := "r" + strconv.Itoa(r.IntN(20))
				var res syncengine.WriteResult
				var err error
				if r.IntN(3) == 0 {
					res, err = c.Patch(ctx, "items", id, syncengine.Record{"n": n})
					if syncengine.CodeOf(err) == syncengine.CodeNotFound {
						continue
					}
				} else {
					res, err = c.Put(ctx, "items", syncengine.Record{"id": id, "title": fmt.Sprintf("%s #%d", c.name, n), "n": n})
				}
				if err != nil {
					t.Errorf("%s write: %v", c.name, err)
					return
				}
				mu.Lock()
				made = append(made, res.MutationIDs...)
				mu.Unlock()
			}
		}()
	}

	// Kill the server just after a push reached it, a random few
	// milliseconds into its work; start it again a moment later.
	for range kills {
		select {
		case <-proxy.pushes:
		case <-time.After(20 * time.Second):
			t.Fatal("no push reached the server within 20 s")
		}
		time.Sleep(time.Duration(rng.IntN(4000)) * time.Microsecond)
		srv.kill()
		time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond)
		srv.start()
	}
	close(stop)
	writers.Wait()
	if t.Failed() {
		return
	}
	if proxy.unanswered.Load() == 0 {
		t.Fatal("no push was cut by a kill: the test did not test anything")
	}

	// Drain: sync until every outbox is empty.
	deadline := time.Now().Add(60 * time.Second)
	for {
		empty := true
		for _, c := range clients {
			c.sync.SyncNow(ctx)
			if c.pending(t) != 0 {
				empty = false
			}
		}
		if empty {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("outboxes did not drain within 60 s after the last restart")
		}
	}
	for _, c := range clients {
		syncNow(t, c)
	}
	server := canonicalRecords(t, serverRecords(t, srv.URL()))
	for _, c := range clients {
		d, err := c.Export(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := canonicalRecords(t, d.Records); !reflect.DeepEqual(got, server) {
			t.Fatalf("%s differs from the server:\n%v\n%v", c.name, got, server)
		}
	}
	srv.stop()

	// The server's database: intact, and each mutation applied once.
	db, err := driver.Open("file:" + srv.db)
	if err != nil {
		t.Fatal(err)
	}
	var integrity string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("server integrity_check: %q %v", integrity, err)
	}
	db.Close()
	store, err := syncserver.OpenSQLite(ctx, srv.db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stats, err := store.Stats(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if stats.Applied != int64(len(made)) || stats.Rejected != 0 {
		t.Fatalf("server applied %d and rejected %d mutations; the engines made %d", stats.Applied, stats.Rejected, len(made))
	}
	err = store.Update(ctx, "dev", func(tx syncserver.Tx) error {
		for _, id := range made {
			if v, ok, err := tx.Verdict(id); err != nil || !ok || v.Status != protocol.StatusApplied {
				return fmt.Errorf("mutation %s: verdict %+v found %v err %v", id, v, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d SIGKILLs during pushes (%d server starts, %d pushes cut or refused), %d mutations from %d engines, each applied once; %d records",
		kills, srv.starts, proxy.unanswered.Load(), len(made), engines, len(server))
}
