package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opfsync/opfsync/internal/pgtest"
	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/pkg/syncserver"
)

// pgCluster is several opfsync-server processes (the real binary) sharing
// one fresh PostgreSQL database, each on a loopback port of its own.
type pgCluster struct {
	t         *testing.T
	db        string // the database's URL
	instances []*processServer
	restarts  int // instance restarts by restartAll
}

func startPGCluster(t *testing.T, n int) *pgCluster {
	t.Helper()
	c := &pgCluster{t: t, db: pgtest.Database(t)}
	for range n {
		c.instances = append(c.instances, startPostgresInstance(t, c.db))
	}
	return c
}

// urls are the instances' URLs.
func (c *pgCluster) urls() []func() string {
	var out []func() string
	for _, s := range c.instances {
		out = append(out, s.URL)
	}
	return out
}

// restartAll SIGKILLs and starts again every instance, one after another,
// on the same port (a rolling crash: the others serve meanwhile).
func (c *pgCluster) restartAll() {
	for _, s := range c.instances {
		s.kill()
		s.start()
		c.restarts++
	}
}

// store opens the cluster's database as one more store (closed at the end
// of the test), to check what the instances committed.
func (c *pgCluster) store() syncserver.Store {
	c.t.Helper()
	s, err := syncserver.OpenPostgres(context.Background(), c.db)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Close() })
	return s
}

// TestConvergenceAcrossThreeInstancesOnPostgres runs the sync issue's
// convergence scenario, unchanged, against three server processes on one
// PostgreSQL database, with the engines spread across them (engine i on
// instance i%3, each behind its own fault-injecting proxy) and every
// instance SIGKILLed and started again half way. Engines on different
// instances collide on the same records; at the end every engine holds
// exactly what each instance serves, and every mutation was applied once.
func TestConvergenceAcrossThreeInstancesOnPostgres(t *testing.T) {
	cl := startPGCluster(t, 3)
	testConvergence(t, convergenceServers{
		urls:     cl.urls(),
		restart:  cl.restartAll,
		restarts: func() int { return cl.restarts },
		store:    cl.store,
	})
}

// balancer is a load balancer in front of several instances: each request
// goes to the next instance in turn, and when that one cannot be reached
// (connection refused: it is down) to the one after it, and so on. A
// request that reached an instance which then died is answered 502, as a
// real load balancer does (it cannot know whether the instance acted on
// it): the client retries.
//
// Armed with loseNextAnswer, it drops the next successful push answer
// (answering 502 instead) and reports the instance on answersLost, so the
// test can kill that instance just after it committed the push: the case
// of an instance that dies between its commit and its answer, which a kill
// on a timer almost never hits.
type balancer struct {
	*httptest.Server
	instances    []*processServer
	transport    *http.Transport
	next         atomic.Uint64
	pushes       chan int     // the instance a push is being sent to (when no one listens, dropped)
	failedPushes atomic.Int64 // pushes answered 502: cut by a dying instance
	failovers    atomic.Int64 // requests that found an instance down and went on to the next
	duplicates   atomic.Int64 // "duplicate" verdicts: mutations pushed again after their answer was lost

	loseNextAnswer atomic.Bool
	answersLost    chan int // the instance whose push answer was dropped
}

// errAnswerLost is the balancer's error for a push answer it dropped.
var errAnswerLost = errors.New("the push's answer was lost: the instance died after its commit")

func balance(t *testing.T, instances []*processServer) *balancer {
	t.Helper()
	b := &balancer{transport: &http.Transport{}, pushes: make(chan int, 1), answersLost: make(chan int, 1)}
	b.instances = instances
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "instance" // RoundTrip picks it
		},
		Transport: b,
		ErrorLog:  log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.URL.Path == protocol.PathPush {
				b.failedPushes.Add(1)
			}
			http.Error(w, `{"error":{"code":"INTERNAL","message":"bad gateway"}}`, http.StatusBadGateway)
		},
	}
	b.Server = httptest.NewServer(rp)
	t.Cleanup(func() {
		b.CloseClientConnections()
		b.Close()
		b.transport.CloseIdleConnections()
	})
	return b
}

// RoundTrip sends req to the next instance that accepts a connection.
func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	first := b.next.Add(1)
	var err error
	for i := range b.instances {
		k := int((first + uint64(i)) % uint64(len(b.instances)))
		out := req.Clone(req.Context())
		out.URL.Host = b.instances[k].address()
		if req.Body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
		}
		if req.URL.Path == protocol.PathPush {
			select {
			case b.pushes <- k:
			default:
			}
		}
		var resp *http.Response
		resp, err = b.transport.RoundTrip(out)
		var op *net.OpError
		if err == nil && req.URL.Path == protocol.PathPush && resp.StatusCode == http.StatusOK {
			if b.loseNextAnswer.CompareAndSwap(true, false) {
				resp.Body.Close()
				b.answersLost <- k
				return nil, errAnswerLost
			}
			return b.countDuplicates(resp)
		}
		if err == nil || !errors.As(err, &op) || op.Op != "dial" {
			return resp, err
		}
		b.failovers.Add(1)
	}
	return nil, err
}

// countDuplicates reads a push answer and counts its duplicate verdicts.
func (b *balancer) countDuplicates(resp *http.Response) (*http.Response, error) {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var res protocol.PushResponse
	if json.Unmarshal(body, &res) == nil {
		for _, r := range res.Results {
			if r.Status == protocol.StatusDuplicate {
				b.duplicates.Add(1)
			}
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// TestInstanceKilledMidPushLosesNothing runs three server processes on one
// PostgreSQL database behind a failover load balancer, with engines
// pushing through it all the time, and SIGKILLs an instance again and
// again: just after a push reached it (so kills land before and inside the
// batch's transaction), or just after it committed a push whose answer is
// lost (so the engine pushes the same mutations again, through another
// instance). A killed instance is started again on the same port, at once
// or only after the next kill, while the others carry its traffic. At the
// end every mutation made was applied exactly once, nothing else was, and
// every engine holds exactly what each instance serves.
func TestInstanceKilledMidPushLosesNothing(t *testing.T) {
	const (
		instances = 3
		engines   = 4
		kills     = 9
	)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	cl := startPGCluster(t, instances)
	lb := balance(t, cl.instances)
	var clients []*client
	for i := range engines {
		clients = append(clients, newClient(t, fmt.Sprintf("engine%d", i), lb.URL))
	}
	// A backlog made offline, so there is one push after another.
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

	// Every engine writes at random, on a small id space, so engines
	// pushing through different instances collide.
	stop := make(chan struct{})
	var writers sync.WaitGroup
	stopWriters := sync.OnceFunc(func() { close(stop); writers.Wait() })
	defer stopWriters()
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
				switch x := r.IntN(6); {
				case x < 2:
					res, err = c.Patch(ctx, "items", id, syncengine.Record{"n": n})
					if syncengine.CodeOf(err) == syncengine.CodeNotFound {
						continue
					}
				case x < 5:
					res, err = c.Put(ctx, "items", syncengine.Record{"id": id, "title": fmt.Sprintf("%s #%d", c.name, n), "n": n})
				default:
					res, err = c.Delete(ctx, "items", id)
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

	// Kill an instance just after a push was sent to it, a random few
	// milliseconds into its work, or (one kill in three) just after it
	// committed a push whose answer is then lost. Most come back a moment
	// later; some stay down until the next kill, so that for a while two
	// instances (or one) serve everyone.
	down := -1 // the instance left down, if any
	killing := time.Now()
	for i := range kills {
		k := -1
		if i%3 == 2 {
			lb.loseNextAnswer.Store(true)
			select {
			case k = <-lb.answersLost:
			case <-time.After(20 * time.Second):
				t.Fatal("no push was answered within 20 s")
			}
		} else {
			select { // a fresh push, not one sent before the last kill
			case <-lb.pushes:
			default:
			}
			for k < 0 || !cl.instances[k].running() {
				select {
				case k = <-lb.pushes:
				case <-time.After(20 * time.Second):
					t.Fatal("no push reached an instance within 20 s")
				}
			}
			time.Sleep(time.Duration(rng.IntN(4000)) * time.Microsecond)
		}
		cl.instances[k].kill()
		if down >= 0 {
			cl.instances[down].start()
			down = -1
		}
		if rng.IntN(3) == 0 {
			down = k
		} else {
			time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond)
			cl.instances[k].start()
		}
	}
	if down >= 0 {
		cl.instances[down].start()
	}
	stopWriters()
	killsTook := time.Since(killing)
	if t.Failed() {
		return
	}
	if lb.failedPushes.Load() == 0 {
		t.Fatal("no push was cut by a kill: the test did not test anything")
	}
	if lb.duplicates.Load() == 0 {
		t.Fatal("no mutation was pushed again after an instance committed it and died: the test did not test lost answers")
	}
	if lb.failovers.Load() == 0 {
		t.Fatal("no request found an instance down and went on to another: the test did not test failover")
	}

	draining := time.Now()
	drain(t, clients)
	drainTook := time.Since(draining)
	want := clients[0].rows(t)
	for _, c := range clients[1:] {
		if got := c.rows(t); got != want {
			t.Fatalf("%s differs from %s:\n%s\n%s", c.name, clients[0].name, got, want)
		}
	}
	var server []protocol.RecordState
	for _, s := range cl.instances {
		server = equalToServer(t, clients, s.URL())
	}

	// Each mutation applied once: no mutation id made twice, one
	// "applied" verdict for each, and no other.
	distinct := map[string]bool{}
	for _, id := range made {
		distinct[id] = true
	}
	if len(distinct) != len(made) {
		t.Fatalf("the engines made %d mutations but only %d distinct ids", len(made), len(distinct))
	}
	store := cl.store()
	appliedOnce(t, store, made)
	stats, err := store.Stats(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if stats.Records != int64(len(server)) {
		t.Fatalf("the store holds %d records, the instances serve %d", stats.Records, len(server))
	}
	starts := 0
	for _, s := range cl.instances {
		starts += s.starts
	}
	t.Logf("%d SIGKILLs during pushes (%d instance starts), %d pushes cut, %d requests failed over, %d duplicate verdicts; %d mutations from %d engines, each applied once; %d records; kills %.1f s, drain %.1f s",
		kills, starts, lb.failedPushes.Load(), lb.failovers.Load(), lb.duplicates.Load(), len(made), engines, len(server), killsTook.Seconds(), drainTook.Seconds())
}

// TestEventStreamPokesAcrossInstances checks that a change committed
// through one instance pokes the event streams connected to another (the
// PostgreSQL store's NOTIFY / LISTEN): on the wire, with the newest cursor,
// except a stream of the client that made the change; and end to end, an
// engine whose only way to hear of a change is a poke gets the other
// engine's write.
func TestEventStreamPokesAcrossInstances(t *testing.T) {
	cl := startPGCluster(t, 2)
	a, b := cl.instances[0].URL(), cl.instances[1].URL()

	pokes := watchEvents(t, b, "watcher")
	first := nextPoke(t, pokes, "the first poke")
	pushPut(t, a, "writer", "w1")
	_, head := serverPull(t, a)
	if head == first {
		t.Fatalf("the cursor did not move after a push: %q", head)
	}
	waitPoke(t, pokes, head, "a push through the other instance")

	// Pokes that were on their way (the listener's first wake-up) arrive
	// now; none may report a newer cursor.
	settle := time.After(300 * time.Millisecond)
settling:
	for {
		select {
		case c := <-pokes:
			if c != head {
				t.Fatalf("a poke with cursor %q; nothing changed after %q", c, head)
			}
		case <-settle:
			break settling
		}
	}
	// The watcher's own change, pushed through the other instance, does
	// not poke the watcher's stream.
	pushPut(t, a, "watcher", "w2")
	select {
	case c := <-pokes:
		t.Fatalf("the watcher's stream was poked (cursor %q) for the watcher's own push", c)
	case <-time.After(time.Second):
	}
	pushPut(t, a, "writer", "w3")
	_, head = serverPull(t, a)
	waitPoke(t, pokes, head, "a second push through the other instance")

	// End to end: engine y pulls only when poked.
	ctx := context.Background()
	x := newClient(t, "x", a)
	y := newClient(t, "y", "")
	opts := fastSync(b)
	opts.PullInterval = time.Hour // only a poke can bring the change
	s, err := y.StartSync(opts)
	if err != nil {
		t.Fatal(err)
	}
	y.sync = s
	time.Sleep(200 * time.Millisecond) // y's stream is connected
	if _, err := x.Put(ctx, "items", syncengine.Record{"id": "live", "title": "pushed by x"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r, _ := y.Get(ctx, "items", "live"); r != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("y (on the other instance) never received x's write: the poke did not arrive")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchEvents opens an event stream of user dev's client clientID at url
// and returns the cursors of its pokes as they come.
func watchEvents(t *testing.T, url, clientID string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+protocol.PathEvents+"?clientId="+clientID, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+devToken)
	req.Header.Set(protocol.VersionHeader, strconv.Itoa(protocol.Version))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("event stream: %s", resp.Status)
	}
	pokes := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(done)
		protocol.ReadEvents(resp.Body, func(event, data string) {
			if event != protocol.EventPoke {
				return
			}
			var p protocol.PokeData
			if err := json.Unmarshal([]byte(data), &p); err != nil {
				p.Cursor = "undecodable poke " + data
			}
			select {
			case pokes <- p.Cursor:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return pokes
}

// nextPoke returns the next poke's cursor, waiting 5 s at most.
func nextPoke(t *testing.T, pokes <-chan string, what string) string {
	t.Helper()
	select {
	case c := <-pokes:
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("no poke within 5 s: %s", what)
		return ""
	}
}

// waitPoke waits (5 s at most) for a poke with cursor want; pokes with
// other cursors may come first (a wake-up of the instance's listener, with
// the cursor from before).
func waitPoke(t *testing.T, pokes <-chan string, want, after string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case c := <-pokes:
			if c == want {
				return
			}
		case <-deadline:
			t.Fatalf("no poke with cursor %q within 5 s of %s", want, after)
		}
	}
}

// pushPut pushes, as client clientID of user dev, one put of record
// items/id to the server at url, and checks that it was applied.
func pushPut(t *testing.T, url, clientID, id string) {
	t.Helper()
	m := protocol.Mutation{
		MutationID: clientID + "-" + id,
		Collection: "items",
		ID:         id,
		Op:         protocol.OpPut,
		HLC:        protocol.HLC{Wall: time.Now().UnixMilli(), Node: clientID},
		Origin:     protocol.OriginUser,
		Fields: map[string]json.RawMessage{
			"title":               json.RawMessage(strconv.Quote("by " + clientID)),
			protocol.DeletedField: json.RawMessage("false"),
		},
	}
	body, err := protocol.Marshal(protocol.PushRequest{ClientID: clientID, Mutations: []protocol.Mutation{m}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url+protocol.PathPush, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+devToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(protocol.VersionHeader, strconv.Itoa(protocol.Version))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res protocol.PushResponse
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("push %s: %s %v", id, resp.Status, err)
	}
	if len(res.Results) != 1 || res.Results[0].Status != protocol.StatusApplied {
		t.Fatalf("push %s: %+v", id, res.Results)
	}
}
