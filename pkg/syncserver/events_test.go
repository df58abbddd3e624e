package syncserver

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// sseEvent is one parsed server-sent event; a comment has name ":".
type sseEvent struct {
	name, data string
}

// eventStream is an open GET /sync/events as the test client sees it.
type eventStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
	ended  chan struct{}
	cancel context.CancelFunc
}

// openEvents connects to the event stream of token's user as clientID.
func (s *testServer) openEvents(token, clientID string) *eventStream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+protocol.PathEvents+"?clientId="+clientID, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		s.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		s.t.Fatalf("events: %d", resp.StatusCode)
	}
	es := &eventStream{t: s.t, resp: resp, events: make(chan sseEvent, 100), ended: make(chan struct{}), cancel: cancel}
	go es.read()
	s.t.Cleanup(es.close)
	return es
}

func (es *eventStream) read() {
	defer close(es.ended)
	sc := bufio.NewScanner(es.resp.Body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				es.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			es.events <- sseEvent{name: ":", data: strings.TrimSpace(line[1:])}
		case strings.HasPrefix(line, "event: "):
			ev.name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[len("data: "):]
		}
	}
}

func (es *eventStream) close() {
	es.cancel()
	es.resp.Body.Close()
	<-es.ended
}

// nextPoke waits up to d for a poke (skipping pings) and returns its cursor.
func (es *eventStream) nextPoke(d time.Duration) (string, bool) {
	es.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-es.events:
			if !ok {
				return "", false
			}
			if ev.name != protocol.EventPoke {
				continue
			}
			var p protocol.PokeData
			dec := json.NewDecoder(strings.NewReader(ev.data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				es.t.Fatalf("poke data %q: %v", ev.data, err)
			}
			return p.Cursor, true
		case <-timeout:
			return "", false
		}
	}
}

func TestEventsPokeOtherClients(t *testing.T) {
	s := newTestServer(t, nil, nil)
	s.push(tokA, "c0", putM(t, "todos", "t0", hlc(baseWall, 0, "c0")))
	_, head := s.pullAll(tokA, 0)

	pusher := s.openEvents(tokA, "c1")
	other := s.openEvents(tokA, "c2")
	bob := s.openEvents(tokB, "c3")
	for name, es := range map[string]*eventStream{"pusher": pusher, "other": other} {
		if cursor, ok := es.nextPoke(time.Second); !ok || cursor != head {
			t.Fatalf("%s: initial poke %q %v, want cursor %q", name, cursor, ok, head)
		}
	}
	if cursor, ok := bob.nextPoke(time.Second); !ok || cursor != "" {
		t.Fatalf("bob: initial poke %q %v, want empty cursor", cursor, ok)
	}
	if resp := pusher.resp; resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("stream headers %v", resp.Header)
	}

	start := time.Now()
	s.push(tokA, "c1", putM(t, "todos", "t1", hlc(baseWall+1, 0, "c1"), "title", "x"))
	_, newHead := s.pullAll(tokA, 0)
	cursor, ok := other.nextPoke(time.Second)
	if !ok || cursor != newHead {
		t.Fatalf("other client: poke %q %v, want cursor %q within a second", cursor, ok, newHead)
	}
	t.Logf("poke arrived %v after the push started", time.Since(start))
	if cursor, ok := pusher.nextPoke(300 * time.Millisecond); ok {
		t.Errorf("the pushing client was poked (cursor %q)", cursor)
	}
	if cursor, ok := bob.nextPoke(10 * time.Millisecond); ok {
		t.Errorf("another user was poked (cursor %q)", cursor)
	}
	// A push that changes nothing (a duplicate) pokes nobody.
	s.push(tokA, "c2", putM(t, "todos", "t1", hlc(baseWall, 0, "c2"), "title", "loses"))
	if cursor, ok := pusher.nextPoke(300 * time.Millisecond); ok {
		t.Errorf("a push that changed nothing poked (cursor %q)", cursor)
	}
}

func TestEventsPing(t *testing.T) {
	s := newTestServer(t, func(o *Options) { o.PingInterval = 50 * time.Millisecond }, nil)
	es := s.openEvents(tokA, "c1")
	deadline := time.After(2 * time.Second)
	for {
		select {
		case ev := <-es.events:
			if ev.name == ":" && ev.data == "ping" {
				return
			}
		case <-deadline:
			t.Fatal("no ping")
		}
	}
}

func TestEventsSurviveServerTimeouts(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil, func(srv *http.Server) {
		srv.WriteTimeout = 3 * time.Second
		srv.ReadTimeout = 3 * time.Second
	})
	es := s.openEvents(tokA, "c1")
	if _, ok := es.nextPoke(time.Second); !ok {
		t.Fatal("no initial poke")
	}
	time.Sleep(3500 * time.Millisecond)
	s.push(tokA, "c2", putM(t, "todos", "t1", hlc(baseWall, 0, "c2")))
	if _, ok := es.nextPoke(time.Second); !ok {
		t.Fatal("the stream died with the server's timeouts")
	}
}

func TestEventsEndOnCloseStreams(t *testing.T) {
	s := newTestServer(t, nil, nil)
	es := s.openEvents(tokA, "c1")
	if _, ok := es.nextPoke(time.Second); !ok {
		t.Fatal("no initial poke")
	}
	s.h.CloseStreams()
	select {
	case <-es.ended:
	case <-time.After(2 * time.Second):
		t.Fatal("stream still open after CloseStreams")
	}
	resp := s.do(request{method: http.MethodGet, path: protocol.PathEvents + "?clientId=c1", token: tokA})
	wantError(t, resp, http.StatusServiceUnavailable, protocol.CodeInternal, "shutting down")
}

func TestEventsClientGoneUnsubscribes(t *testing.T) {
	s := newTestServer(t, nil, nil)
	es := s.openEvents(tokA, "c1")
	if _, ok := es.nextPoke(time.Second); !ok {
		t.Fatal("no initial poke")
	}
	es.close()
	if !eventually(2*time.Second, func() bool {
		s.h.hub.mu.Lock()
		defer s.h.hub.mu.Unlock()
		return len(s.h.hub.subs) == 0
	}) {
		t.Fatal("the stream of a gone client is still subscribed")
	}
}
