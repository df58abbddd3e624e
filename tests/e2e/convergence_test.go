package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/pkg/syncserver"
)

// TestConvergenceThroughFaultsAndARestart is the sync issue's convergence
// test: several engines and a real server on loopback, a fault-injecting
// proxy in front of each engine, random offline periods, random colliding
// writes, and a server restart half way. At the end every engine shows the
// same state, equal to the server's; every mutation made was applied
// exactly once; every outbox is empty.
func TestConvergenceThroughFaultsAndARestart(t *testing.T) {
	srv := startServer(t, nil)
	testConvergence(t, convergenceServers{
		urls:     []func() string{srv.URL},
		restart:  srv.restart,
		restarts: func() int { return srv.restarts },
		store:    func() syncserver.Store { return srv.store },
	})
}

// convergenceServers is what the convergence scenario runs against: one
// server, or several instances of it sharing one database.
type convergenceServers struct {
	urls     []func() string         // the instances: engine i talks to urls[i%len(urls)]
	restart  func()                  // half way: restart the server (every instance)
	restarts func() int              // how many restarts there were
	store    func() syncserver.Store // after the drain: the store, for the exactly-once check
}

// testConvergence runs the convergence scenario against servers.
func testConvergence(t *testing.T, servers convergenceServers) {
	const engines = 4
	duration := 8 * time.Second
	if testing.Short() {
		duration = 3 * time.Second
	}
	seed := rand.Uint64()
	if s := os.Getenv("OPFSYNC_E2E_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (rerun with OPFSYNC_E2E_SEED=%d)", seed, seed)
	start := time.Now()

	var proxies []*faultProxy
	var clients []*client
	for i := range engines {
		p := newFaultProxy(seed+uint64(i), servers.urls[i%len(servers.urls)])
		t.Cleanup(p.Close)
		proxies = append(proxies, p)
		clients = append(clients, newClient(t, fmt.Sprintf("engine%d", i), p.URL()))
	}

	// Workload: each engine writes at random on a small id space, so writes
	// collide, and goes offline now and then.
	var (
		mu      sync.Mutex
		made    []string // mutation ids the engines reported as queued
		ops     = map[string]int{}
		stop    = make(chan struct{})
		workers sync.WaitGroup
	)
	for i, c := range clients {
		workers.Add(1)
		go func() {
			defer workers.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			offlineUntil := time.Time{}
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(rng.IntN(15)) * time.Millisecond):
				}
				if time.Now().After(offlineUntil) && proxies[i].offline.Load() {
					proxies[i].offline.Store(false)
					c.sync.SetOnline(true)
				} else if rng.IntN(200) == 0 {
					offlineUntil = time.Now().Add(time.Duration(200+rng.IntN(800)) * time.Millisecond)
					proxies[i].offline.Store(true)
					if rng.IntN(2) == 0 {
						c.sync.SetOnline(false) // the browser noticed
					}
				}
				id := "r" + strconv.Itoa(rng.IntN(8))
				var res syncengine.WriteResult
				var err error
				kind := ""
				switch x := rng.IntN(10); {
				case x < 4:
					kind = "put"
					res, err = c.Put(context.Background(), "items", syncengine.Record{
						"id": id, "title": fmt.Sprintf("%s by %s #%d", id, c.name, rng.IntN(1000)),
						"n": rng.IntN(100), "done": rng.IntN(2) == 0, "tags": []any{c.name, "<&>"},
					})
				case x < 8:
					kind = "patch"
					fields := syncengine.Record{"n": rng.IntN(100)}
					if rng.IntN(2) == 0 {
						fields["title"] = "patched by " + c.name
					}
					res, err = c.Patch(context.Background(), "items", id, fields)
					if syncengine.CodeOf(err) == syncengine.CodeNotFound {
						continue
					}
				default:
					kind = "delete"
					res, err = c.Delete(context.Background(), "items", id)
				}
				if err != nil {
					t.Errorf("%s %s %s: %v", c.name, kind, id, err)
					return
				}
				mu.Lock()
				made = append(made, res.MutationIDs...)
				ops[kind]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(duration / 2)
	servers.restart()
	time.Sleep(duration / 2)
	close(stop)
	workers.Wait()
	if t.Failed() {
		return
	}

	// Drain: faults off, everyone online, sync until all outboxes are empty
	// and every engine has pulled everything.
	for i, p := range proxies {
		p.faulty.Store(false)
		p.offline.Store(false)
		clients[i].sync.SetOnline(true)
	}
	drain(t, clients)

	// Every engine shows the same rows.
	want := clients[0].rows(t)
	for _, c := range clients[1:] {
		if got := c.rows(t); got != want {
			t.Fatalf("%s differs from %s:\n%s\n%s", c.name, clients[0].name, got, want)
		}
	}
	// And holds exactly the server's records, field by field with stamps
	// (as every instance serves them).
	var server []protocol.RecordState
	for _, url := range servers.urls {
		server = equalToServer(t, clients, url())
	}
	// Every mutation made was applied, exactly once, and nothing else was.
	appliedOnce(t, servers.store(), made)
	faults := map[string]int{}
	total := 0
	for _, p := range proxies {
		for k, v := range p.Counts() {
			faults[k] += v
			total += v
		}
	}
	t.Logf("converged: %d engines on %d server instance(s), %d operations %v (%d mutations), %d server restart(s), %d faults injected %v, %d records, %.1f s",
		engines, len(servers.urls), len(made), ops, len(made), servers.restarts(), total, faults, len(server), time.Since(start).Seconds())
	if total == 0 || faults["response dropped after the server applied"] == 0 || faults["request duplicated"] == 0 || faults["request cut mid-body"] == 0 {
		t.Fatalf("the proxies injected too few faults to mean anything: %v", faults)
	}
}

// drain syncs the clients until every outbox is empty (60 s at most), then
// once more each, so every client has pulled everything.
func drain(t *testing.T, clients []*client) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(60 * time.Second); ; {
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
			t.Fatal("outboxes did not drain within 60 s")
		}
	}
	for _, c := range clients {
		syncNow(t, c)
	}
}

// equalToServer checks that each client holds exactly the server's
// records, field by field with stamps and origins, and returns them.
func equalToServer(t *testing.T, clients []*client, url string) []protocol.RecordState {
	t.Helper()
	server := serverRecords(t, url)
	want := canonicalRecords(t, server)
	for _, c := range clients {
		d, err := c.Export(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := canonicalRecords(t, d.Records); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s's records differ from the server's:\n%v\n%v", c.name, got, want)
		}
	}
	return server
}

// appliedOnce checks that the server applied exactly the mutations made
// (one "applied" verdict each), rejected none and applied nothing else.
func appliedOnce(t *testing.T, store syncserver.Store, made []string) {
	t.Helper()
	ctx := context.Background()
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
				return fmt.Errorf("mutation %s: verdict %+v, found %v, err %v", id, v, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// serverRecords pulls every record of user dev straight from the server at
// url.
func serverRecords(t *testing.T, url string) []protocol.RecordState {
	t.Helper()
	recs, _ := serverPull(t, url)
	return recs
}

// serverPull pulls every record of user dev straight from the server at
// url, and returns them and the last page's cursor.
func serverPull(t *testing.T, url string) ([]protocol.RecordState, string) {
	t.Helper()
	var out []protocol.RecordState
	cursor := ""
	for {
		req, _ := http.NewRequest(http.MethodGet, url+protocol.PathPull+"?limit=1000&cursor="+cursor, nil)
		req.Header.Set("Authorization", "Bearer "+devToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page protocol.PullResponse
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("pull from the server: %d %v", resp.StatusCode, err)
		}
		out = append(out, page.Changes...)
		cursor = page.Cursor
		if !page.HasMore {
			return out, cursor
		}
	}
}

// canonicalRecords renders records as sorted canonical JSON lines.
func canonicalRecords(t *testing.T, recs []protocol.RecordState) []string {
	t.Helper()
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		fields := map[string]any{}
		for name, f := range r.Fields {
			var v any
			if err := json.Unmarshal(f.Value, &v); err != nil {
				t.Fatal(err)
			}
			fields[name] = []any{v, f.HLC.String(), string(f.Origin)}
		}
		raw, err := protocol.Marshal(map[string]any{"c": r.Collection, "id": r.ID, "f": fields})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(raw))
	}
	slices.Sort(out)
	return out
}
