package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3/driver"

	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/pkg/syncserver"
)

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
	// The proxy says when a push has reached the server, so the server can
	// be killed while it works on it.
	pushes := make(chan struct{}, 1)
	proxy := proxyTo(t, srv.URL(), func(http.ResponseWriter, []byte) bool {
		select {
		case pushes <- struct{}{}:
		default:
		}
		return false
	})
	var clients []*client
	for i := range engines {
		clients = append(clients, newClient(t, fmt.Sprintf("engine%d", i), proxy.URL))
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
		case <-pushes:
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
	if proxy.failedPushes.Load() == 0 {
		t.Fatal("no push was cut by a kill: the test did not test anything")
	}

	drain(t, clients)
	server := equalToServer(t, clients, srv.URL())
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
	appliedOnce(t, store, made)
	t.Logf("%d SIGKILLs during pushes (%d server starts, %d pushes cut or refused), %d mutations from %d engines, each applied once; %d records",
		kills, srv.starts, proxy.failedPushes.Load(), len(made), engines, len(server))
}
