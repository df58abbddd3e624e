package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// The simulated app: two collections of small records with a few typed
// fields, like the demo's notes.
var (
	collections = []string{"notes", "tasks"}
	dataFields  = []string{"title", "body", "n", "starred", "tags"}
	words       = strings.Fields("alpha beta gamma delta sync offline merge clock stamp cursor page batch " +
		"note task done todo urgent later café naïve ✓ <tag> a&b \"quoted\" back\\slash")
)

// planned is one mutation a client is about to push and whether it is a
// deliberately invalid one (which the server must reject).
type planned struct {
	protocol.Mutation
	invalid bool
}

// nextBatch builds a batch of n mutations of c, stamped by c's clock in the
// order they appear (each record's mutations in the order made).
func (c *simClient) nextBatch(n int) []planned {
	out := make([]planned, 0, n)
	for range n {
		out = append(out, c.nextMutation())
	}
	return out
}

// nextMutation makes one mutation on a shared record of c's user (written
// by all its clients, so their writes race field by field) or on one of
// c's own records.
func (c *simClient) nextMutation() planned {
	c.seq++
	m := protocol.Mutation{
		MutationID: fmt.Sprintf("%s-m%06d", c.id, c.seq),
		Origin:     protocol.OriginUser,
	}
	if c.rng.IntN(10) == 0 {
		m.Origin = protocol.OriginAgent
	}
	isNew := false
	switch {
	case c.rng.IntN(2) == 0:
		i := c.rng.IntN(c.shared)
		m.Collection, m.ID = collections[i%len(collections)], fmt.Sprintf("shared-%03d", i)
	case len(c.private) == 0 || c.rng.IntN(4) == 0:
		m.Collection = collections[c.rng.IntN(len(collections))]
		m.ID = fmt.Sprintf("%s-r%05d", c.id, len(c.private))
		c.private = append(c.private, recordKey{m.Collection, m.ID})
		isNew = true
	default:
		k := c.private[c.rng.IntN(len(c.private))]
		m.Collection, m.ID = k.Collection, k.ID
	}
	switch r := c.rng.IntN(100); {
	case isNew || r < 35:
		m.Op, m.Fields = protocol.OpPut, c.putFields()
	case r < 88:
		m.Op, m.Fields = protocol.OpPatch, c.patchFields()
	default:
		m.Op, m.Fields = protocol.OpDelete, map[string]json.RawMessage{protocol.DeletedField: json.RawMessage("true")}
	}
	p := planned{Mutation: m}
	if c.rng.Float64() < c.rejectRate {
		// A patch may not write the tombstone: the server must reject it
		// (and store the rejection), whatever else the batch holds.
		p.Op = protocol.OpPatch
		p.Fields = map[string]json.RawMessage{"title": c.value("title"), protocol.DeletedField: json.RawMessage("false")}
		p.invalid = true
	}
	p.HLC = c.clock.Now()
	return p
}

// putFields writes every declared field (some as null) and the live
// tombstone.
func (c *simClient) putFields() map[string]json.RawMessage {
	f := make(map[string]json.RawMessage, len(dataFields)+1)
	for _, name := range dataFields {
		if c.rng.IntN(8) == 0 {
			f[name] = json.RawMessage("null")
		} else {
			f[name] = c.value(name)
		}
	}
	f[protocol.DeletedField] = json.RawMessage("false")
	return f
}

// patchFields writes one to three declared fields.
func (c *simClient) patchFields() map[string]json.RawMessage {
	n := 1 + c.rng.IntN(3)
	f := make(map[string]json.RawMessage, n)
	for _, i := range c.rng.Perm(len(dataFields))[:n] {
		f[dataFields[i]] = c.value(dataFields[i])
	}
	return f
}

// value returns a fresh canonical JSON value for a field.
func (c *simClient) value(name string) json.RawMessage {
	var v any
	switch name {
	case "title":
		v = c.text(2 + c.rng.IntN(5))
	case "body":
		n := 5 + c.rng.IntN(60)
		if c.rng.IntN(50) == 0 {
			n = 600 // now and then a long one (a few KB)
		}
		v = c.text(n)
	case "n":
		v = c.rng.IntN(1_000_000) - 500_000
	case "starred":
		v = c.rng.IntN(2) == 0
	case "tags":
		tags := make([]string, c.rng.IntN(4))
		for i := range tags {
			tags[i] = words[c.rng.IntN(len(words))]
		}
		v = tags
	}
	raw, err := protocol.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode a %s value: %v", name, err)) // plain Go values always encode
	}
	return raw
}

// text returns n random words.
func (c *simClient) text(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[c.rng.IntN(len(words))])
	}
	return b.String()
}

// batchSize is how many mutations c pushes at once: mostly a few (a user
// typing), now and then a burst (an offline spell or an import).
func (c *simClient) batchSize() int {
	switch r := c.rng.IntN(100); {
	case c.hammer:
		return 10 + c.rng.IntN(91)
	case r < 80:
		return 1 + c.rng.IntN(5)
	case r < 97:
		return 5 + c.rng.IntN(26)
	default:
		return 100 + c.rng.IntN(151)
	}
}

// newRand returns a generator for one client.
func newRand(seed int64, client int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), uint64(client)+1))
}
