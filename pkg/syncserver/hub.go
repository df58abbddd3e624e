package syncserver

import "sync"

// hub tracks the open event streams per user and wakes them when the user's
// data changes.
type hub struct {
	mu     sync.Mutex
	subs   map[string]map[*subscriber]struct{}
	closed bool
	done   chan struct{} // closed by close: every stream ends
}

// subscriber is one open event stream. wake holds at most one pending
// signal: pokes that arrive before the stream catches up coalesce into one
// (the stream then reports the newest cursor anyway).
type subscriber struct {
	clientID string
	wake     chan struct{}
}

func newHub() *hub {
	return &hub{subs: map[string]map[*subscriber]struct{}{}, done: make(chan struct{})}
}

// subscribe registers a stream of user's client clientID and returns it and
// the function that removes it.
func (h *hub) subscribe(user, clientID string) (*subscriber, func()) {
	s := &subscriber{clientID: clientID, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[user] == nil {
		h.subs[user] = map[*subscriber]struct{}{}
	}
	h.subs[user][s] = struct{}{}
	return s, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[user], s)
		if len(h.subs[user]) == 0 {
			delete(h.subs, user)
		}
	}
}

// poke wakes every stream of user except those of the client that made the
// change.
func (h *hub) poke(user, exceptClientID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[user] {
		if s.clientID == exceptClientID {
			continue
		}
		select {
		case s.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// pokeAll wakes every stream of every user: for when changes may have
// been missed (see SharedStore.Follow).
func (h *hub) pokeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for s := range subs {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

// close ends every stream, now and in future. It may be called more than
// once.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}
