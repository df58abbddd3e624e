package main

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// ledger is what the generator knows about the run: counters, errors by
// kind, and per user the model of the records (every applied mutation
// merged with protocol.Fields.Merge, the server's own rule).
type ledger struct {
	users []*userModel

	validSent    atomic.Int64 // distinct valid mutation ids pushed
	invalidSent  atomic.Int64 // distinct deliberately invalid mutation ids pushed
	uncertain    atomic.Int64 // mutation ids whose push never got an answer
	applied      atomic.Int64 // "applied" verdicts received
	duplicates   atomic.Int64 // "duplicate" verdicts received
	rejected     atomic.Int64 // "rejected" verdicts received
	batches      atomic.Int64 // distinct batches pushed
	pushRequests atomic.Int64 // push requests answered 200 (retries and races included)
	retries      atomic.Int64 // batches sent again after their answer
	races        atomic.Int64 // batches sent twice at the same time
	pullRequests atomic.Int64 // pull requests answered 200
	pulledRecs   atomic.Int64 // records received in pull pages
	pokes        atomic.Int64 // pokes received on event streams
	lostFields   atomic.Int64 // fields of applied mutations that lost to a newer write (LWW conflicts)

	mu       sync.Mutex
	errs     map[string]int    // error kind → count
	examples map[string]string // error kind → first message
}

// userModel is one user's expected records.
type userModel struct {
	Name  string
	Token string

	mu      sync.Mutex
	records map[recordKey]protocol.Fields
}

// recordKey names a record.
type recordKey struct{ Collection, ID string }

func newLedger(users int) *ledger {
	l := &ledger{errs: map[string]int{}, examples: map[string]string{}}
	for i := range users {
		l.users = append(l.users, &userModel{
			Name:    fmt.Sprintf("soak-user-%03d", i),
			Token:   fmt.Sprintf("soak-token-%03d-%x", i, uint32(i*2654435761)),
			records: map[recordKey]protocol.Fields{},
		})
	}
	return l
}

// fail counts one error of kind, keeping the first message as an example.
func (l *ledger) fail(kind string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs[kind]++
	if _, ok := l.examples[kind]; !ok {
		l.examples[kind] = err.Error()
	}
}

// errorCounts returns a copy of the error counts and their examples.
func (l *ledger) errorCounts() (map[string]int, map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.errs), maps.Clone(l.examples)
}

// totalErrors is the number of errors of every kind.
func (l *ledger) totalErrors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.errs {
		n += c
	}
	return n
}

// apply merges an applied mutation into the user's model.
func (u *userModel) apply(m *protocol.Mutation) {
	k := recordKey{m.Collection, m.ID}
	u.mu.Lock()
	defer u.mu.Unlock()
	f := u.records[k]
	if f == nil {
		f = protocol.Fields{}
		u.records[k] = f
	}
	f.Merge(m.States())
}

// snapshot returns the user's expected records, sorted by key.
func (u *userModel) snapshot() ([]recordKey, map[recordKey]protocol.Fields) {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[recordKey]protocol.Fields, len(u.records))
	for k, f := range u.records {
		out[k] = maps.Clone(f)
	}
	keys := slices.SortedFunc(maps.Keys(out), func(a, b recordKey) int {
		if a.Collection != b.Collection {
			return compareStrings(a.Collection, b.Collection)
		}
		return compareStrings(a.ID, b.ID)
	})
	return keys, out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
