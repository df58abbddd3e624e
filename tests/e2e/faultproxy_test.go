package e2e

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// faultProxy sits between one engine and the server and misbehaves on
// purpose: it drops requests, cuts requests mid-body (the server reads a
// body shorter than its Content-Length), drops responses after the server applied the
// request, delays, delivers requests twice, answers 500 without asking the
// server, cuts event streams, and can be taken offline. The faults are what
// a real network and a real load balancer do.
type faultProxy struct {
	target  func() string // the server's URL (it changes port never, but may be down)
	srv     *httptest.Server
	client  *http.Client
	faulty  atomic.Bool
	offline atomic.Bool
	mu      sync.Mutex
	rng     *rand.Rand
	counts  map[string]int
}

func newFaultProxy(seed uint64, target func() string) *faultProxy {
	p := &faultProxy{
		target: target,
		client: &http.Client{Transport: &http.Transport{}},
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		counts: map[string]int{},
	}
	p.faulty.Store(true)
	p.srv = httptest.NewServer(p)
	return p
}

func (p *faultProxy) URL() string { return p.srv.URL }

func (p *faultProxy) Close() { p.srv.CloseClientConnections(); p.srv.Close() }

func (p *faultProxy) count(kind string) {
	p.mu.Lock()
	p.counts[kind]++
	p.mu.Unlock()
}

func (p *faultProxy) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

func (p *faultProxy) roll() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64()
}

// cut closes the client's connection without an answer.
func cut(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.offline.Load() {
		p.count("offline refusal")
		cut(w)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		cut(w)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/sync/events") {
		p.stream(w, r)
		return
	}
	faulty := p.faulty.Load()
	x := p.roll()
	switch {
	case faulty && x < 0.08:
		p.count("request dropped")
		cut(w)
		return
	case faulty && x < 0.13:
		p.count("500 without forwarding")
		http.Error(w, `{"error":{"code":"INTERNAL","message":"injected"}}`, http.StatusInternalServerError)
		return
	case faulty && x < 0.16 && len(body) > 1:
		// The client's connection dies half way through its request: the
		// server gets a body shorter than its Content-Length.
		p.count("request cut mid-body")
		p.forwardTruncated(r, body)
		cut(w)
		return
	case faulty && x < 0.20:
		p.count("delayed")
		time.Sleep(time.Duration(p.roll() * float64(300*time.Millisecond)))
	}
	resp, err := p.forward(r, body)
	if err != nil {
		p.count("server down (502)")
		http.Error(w, `{"error":{"code":"INTERNAL","message":"bad gateway"}}`, http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		cut(w)
		return
	}
	y := p.roll()
	switch {
	case faulty && y < 0.08:
		p.count("response dropped after the server applied")
		cut(w)
		return
	case faulty && y < 0.13:
		// Deliver the request a second time and answer with the second
		// response (the first was "lost").
		p.count("request duplicated")
		if again, err := p.forward(r, body); err == nil {
			defer again.Body.Close()
			if b, err := io.ReadAll(again.Body); err == nil {
				resp, respBody = again, b
			}
		}
	case faulty && y < 0.16:
		p.count("503 after the server applied")
		http.Error(w, `{"error":{"code":"INTERNAL","message":"injected"}}`, http.StatusServiceUnavailable)
		return
	case faulty && y < 0.19:
		p.count("response cut mid-body")
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(respBody[:len(respBody)/2])
		cut(w)
		return
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(respBody)
}

func (p *faultProxy) forward(r *http.Request, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target()+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	return p.client.Do(req)
}

// forwardTruncated sends the server the first half of body under the full
// Content-Length, then gives up, as a connection that dies mid-request.
func (p *faultProxy) forwardTruncated(r *http.Request, body []byte) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target()+r.URL.RequestURI(), bytes.NewReader(body[:len(body)/2]))
	if err != nil {
		return
	}
	req.Header = r.Header.Clone()
	req.ContentLength = int64(len(body))
	if resp, err := p.client.Do(req); err == nil {
		resp.Body.Close()
	}
}

// stream passes an event stream through, flushing each chunk, and cuts it
// after a random time when faulty.
func (p *faultProxy) stream(w http.ResponseWriter, r *http.Request) {
	resp, err := p.forward(r, nil)
	if err != nil {
		p.count("server down (502)")
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	var deadline <-chan time.Time
	if p.faulty.Load() {
		deadline = time.After(time.Duration(200+p.roll()*2000) * time.Millisecond)
	}
	chunks := make(chan []byte)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(chunks)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				select {
				case chunks <- append([]byte(nil), buf[:n]...):
				case <-done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case <-deadline:
			p.count("event stream cut")
			resp.Body.Close()
			return
		case <-r.Context().Done():
			resp.Body.Close()
			return
		case c, ok := <-chunks:
			if !ok {
				return
			}
			if p.offline.Load() {
				resp.Body.Close()
				return
			}
			w.Write(c)
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}
