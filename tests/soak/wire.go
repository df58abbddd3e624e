package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// wire speaks the sync protocol to one server for every simulated client
// of it: one shared http.Client (one connection pool), latency recorded per
// request (in records shared by the wires to every instance).
type wire struct {
	base    string       // server origin
	http    *http.Client // pushes and pulls (with a timeout)
	stream  *http.Client // event streams (no overall timeout), same pool
	pushLat *latencies
	pullLat *latencies
}

// requestTimeout bounds one push or pull, answer included.
const requestTimeout = 30 * time.Second

// newWire returns a wire for the server at base with a connection pool
// large enough that every client keeps its connection alive (maxConns idle
// connections) instead of opening a new one per request.
func newWire(base string, maxConns int) *wire {
	tr := &http.Transport{
		Proxy:               nil, // loopback: never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &wire{
		base:    base,
		http:    &http.Client{Transport: tr, Timeout: requestTimeout},
		stream:  &http.Client{Transport: tr},
		pushLat: &latencies{},
		pullLat: &latencies{},
	}
}

// sibling returns a wire to another server (another instance on the same
// store) with a connection pool of its own and the same latency records.
func (w *wire) sibling(base string, maxConns int) *wire {
	s := newWire(base, maxConns)
	s.pushLat, s.pullLat = w.pushLat, w.pullLat
	return s
}

// close drops the pool's idle connections.
func (w *wire) close() { w.http.CloseIdleConnections() }

// httpError is a non-2xx answer.
type httpError struct {
	Op     string
	Status int
	Code   string // the error body's code, when it had one
	Msg    string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s: HTTP %d %s: %s", e.Op, e.Status, e.Code, e.Msg)
}

// errorKind is the bucket an error is counted in: "push HTTP 500
// INTERNAL", "pull transport", "push decode", ...
func errorKind(op string, err error) string {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return fmt.Sprintf("%s HTTP %d %s", op, he.Status, he.Code)
	case errors.Is(err, errDecode):
		return op + " bad answer"
	default:
		return op + " transport"
	}
}

var errDecode = errors.New("cannot decode the answer")

// newRequest builds a sync request with the bearer token and the protocol
// version header, as the real clients send them.
func (w *wire) newRequest(ctx context.Context, method, path, token string, query url.Values, body []byte) (*http.Request, error) {
	u := w.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(protocol.VersionHeader, strconv.Itoa(protocol.Version))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// roundTrip sends req and returns the 200 answer's body, recording the
// latency (request written to answer read in full) in lat.
func (w *wire) roundTrip(op string, req *http.Request, lat *latencies) ([]byte, error) {
	start := time.Now()
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("%s: read answer: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb protocol.ErrorResponse
		_ = json.Unmarshal(body, &eb)
		msg := eb.Error.Message
		if msg == "" {
			msg = string(body[:min(len(body), 200)])
		}
		return nil, &httpError{Op: op, Status: resp.StatusCode, Code: eb.Error.Code, Msg: msg}
	}
	lat.add(took)
	return body, nil
}

// push sends one push request for the user of token.
func (w *wire) push(ctx context.Context, token string, preq *protocol.PushRequest) (*protocol.PushResponse, error) {
	body, err := protocol.Marshal(preq)
	if err != nil {
		return nil, fmt.Errorf("push: encode: %w", err)
	}
	req, err := w.newRequest(ctx, http.MethodPost, protocol.PathPush, token, nil, body)
	if err != nil {
		return nil, err
	}
	data, err := w.roundTrip("push", req, w.pushLat)
	if err != nil {
		return nil, err
	}
	var out protocol.PushResponse
	if err := protocol.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("push: %w: %v", errDecode, err)
	}
	return &out, nil
}

// pull asks for one page of changes after cursor.
func (w *wire) pull(ctx context.Context, token, cursor string, limit int) (*protocol.PullResponse, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	req, err := w.newRequest(ctx, http.MethodGet, protocol.PathPull, token, q, nil)
	if err != nil {
		return nil, err
	}
	data, err := w.roundTrip("pull", req, w.pullLat)
	if err != nil {
		return nil, err
	}
	page, err := protocol.DecodePullResponse(data)
	if err != nil {
		return nil, fmt.Errorf("pull: %w: %v", errDecode, err)
	}
	return page, nil
}

// events holds the event stream of clientID open until ctx ends, calling
// onPoke for every poke. It returns nil when ctx ended it, an error when
// the stream failed or ended on its own.
func (w *wire) events(ctx context.Context, token, clientID string, onPoke func()) error {
	req, err := w.newRequest(ctx, http.MethodGet, protocol.PathEvents, token, url.Values{"clientId": {clientID}}, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := w.stream.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &httpError{Op: "events", Status: resp.StatusCode, Msg: string(body)}
	}
	err = protocol.ReadEvents(resp.Body, func(event, _ string) {
		if event == protocol.EventPoke {
			onPoke()
		}
	})
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		err = io.EOF
	}
	return fmt.Errorf("events: stream ended: %w", err)
}
