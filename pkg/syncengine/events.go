package syncengine

import (
	"encoding/json"
	"sync"
)

// Event is one notification from the engine: *ChangeEvent, *ConflictEvent,
// *RejectedEvent or *StatusEvent.
type Event interface{ eventKind() string }

// ChangeEvent follows every commit that changed data. Tables names the
// collections (and engine tables such as "pending") the commit touched;
// Version is the mutationVersion after the commit; Queued is set when the
// commit added local mutations to the outbox (so there is something to
// push).
type ChangeEvent struct {
	Tables  []string `json:"tables"`
	Version uint64   `json:"version"`
	Queued  bool     `json:"queued,omitempty"`
}

// ConflictEvent says a user's own pending edit of a field lost to a newer
// remote write: Local is the user's value, Remote the value that won.
type ConflictEvent struct {
	Collection string          `json:"collection"`
	ID         string          `json:"id"`
	Field      string          `json:"field"`
	Local      json.RawMessage `json:"local"`
	Remote     json.RawMessage `json:"remote"`
}

// RejectedEvent says the server refused a mutation for good; its effect has
// been rolled back locally.
type RejectedEvent struct {
	Collection string `json:"collection"`
	ID         string `json:"id"`
	MutationID string `json:"mutationId"`
	Code       string `json:"code"`
	Message    string `json:"message"`
}

// StatusEvent reports the sync status (emitted by the sync loop).
type StatusEvent struct {
	Status Status `json:"status"`
}

func (*ChangeEvent) eventKind() string   { return "change" }
func (*ConflictEvent) eventKind() string { return "conflict" }
func (*RejectedEvent) eventKind() string { return "rejected" }
func (*StatusEvent) eventKind() string   { return "status" }

// EventKind returns "change", "conflict", "rejected" or "status".
func EventKind(e Event) string { return e.eventKind() }

// dispatcher delivers events to subscribers in order, on its own goroutine,
// so a subscriber may call back into the engine without deadlocking it. The
// queue is unbounded: the engine never blocks on a slow subscriber.
type dispatcher struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []Event
	subs    []subscriber
	nextID  int
	stopped bool
	busy    bool // a batch taken from the queue is being delivered
	done    chan struct{}
}

type subscriber struct {
	id int
	fn func(Event)
}

func newDispatcher() *dispatcher {
	d := &dispatcher{done: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	go d.run()
	return d
}

func (d *dispatcher) subscribe(fn func(Event)) (unsubscribe func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := d.nextID
	d.nextID++
	d.subs = append(d.subs, subscriber{id, fn})
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for i, s := range d.subs {
			if s.id == id {
				d.subs = append(d.subs[:i:i], d.subs[i+1:]...)
				return
			}
		}
	}
}

func (d *dispatcher) emit(events ...Event) {
	if len(events) == 0 {
		return
	}
	d.mu.Lock()
	if !d.stopped {
		d.queue = append(d.queue, events...)
		d.cond.Broadcast()
	}
	d.mu.Unlock()
}

// flush waits until every event emitted so far has been delivered.
func (d *dispatcher) flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for (len(d.queue) > 0 || d.busy) && !d.stopped {
		d.cond.Wait()
	}
}

// stop delivers what is queued, then ends the dispatcher.
func (d *dispatcher) stop() {
	d.mu.Lock()
	d.stopped = true
	d.cond.Broadcast()
	d.mu.Unlock()
	<-d.done
}

func (d *dispatcher) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		for len(d.queue) == 0 && !d.stopped {
			d.cond.Wait()
		}
		if len(d.queue) == 0 && d.stopped {
			d.mu.Unlock()
			return
		}
		ev := d.queue[0]
		d.queue[0] = nil
		d.queue = d.queue[1:]
		subs := d.subs // subscribe/unsubscribe never modify a published slice in place
		d.busy = true
		d.mu.Unlock()
		for _, s := range subs {
			s.fn(ev)
		}
		d.mu.Lock()
		d.busy = false
		d.cond.Broadcast()
		d.mu.Unlock()
	}
}
