package protocol

import (
	"encoding/json"
)

// Origin says who wrote a field: the app's user, an automated agent, the
// app itself (system), a localStorage migration, or the server.
type Origin string

// The origins. Only OriginUser writes can raise conflict events.
const (
	OriginUser      Origin = "user"
	OriginAgent     Origin = "agent"
	OriginSystem    Origin = "system"
	OriginMigration Origin = "migration"
	OriginServer    Origin = "server"
)

// Valid reports whether o is one of the known origins.
func (o Origin) Valid() bool {
	switch o {
	case OriginUser, OriginAgent, OriginSystem, OriginMigration, OriginServer:
		return true
	}
	return false
}

// DeletedField is the pseudo-field that carries a record's tombstone. It is
// a boolean with its own stamp: a delete writes true, a put writes false, a
// patch leaves it alone. A record is live when its DeletedField is present
// and false.
const DeletedField = "_deleted"

// FieldState is one field of a record as last written: its JSON value, the
// stamp of that write and who made it.
type FieldState struct {
	Value  json.RawMessage `json:"value"`
	HLC    HLC             `json:"hlc"`
	Origin Origin          `json:"origin"`
}

// Wins reports whether incoming replaces current under field-level
// last-writer-wins: strictly newer stamp wins, equal stamps keep current.
// A field that was never written (zero stamp) loses to any write.
func Wins(incoming, current FieldState) bool { return incoming.HLC.After(current.HLC) }

// Fields maps a field name to its state.
type Fields map[string]FieldState

// Merge applies every field of src that wins over dst's field of the same
// name, in place, and returns the names that changed. Merge is commutative,
// associative and idempotent on the resulting state, so any delivery order of
// the same writes converges.
func (dst Fields) Merge(src Fields) (changed []string) {
	for name, in := range src {
		if Wins(in, dst[name]) {
			dst[name] = in
			changed = append(changed, name)
		}
	}
	return changed
}

// Live reports whether fields describe a live (present, not deleted) record.
func (f Fields) Live() bool {
	d, ok := f[DeletedField]
	return ok && string(d.Value) == "false"
}

// Newest returns the newest stamp among the fields (zero if none).
func (f Fields) Newest() HLC {
	var n HLC
	for _, s := range f {
		if s.HLC.After(n) {
			n = s.HLC
		}
	}
	return n
}

// RecordState is a record as a server (or an export) knows it: every field
// ever written, with stamps, including the DeletedField tombstone.
type RecordState struct {
	Collection string `json:"collection"`
	ID         string `json:"id"`
	Fields     Fields `json:"fields"`
}

// Op names the kind of a mutation.
type Op string

// Mutation kinds. Put writes every declared field (absent ones as null) and
// DeletedField=false; Patch writes some fields and never DeletedField;
// Delete writes only DeletedField=true; Merge writes some fields and may
// include DeletedField: an import re-sends fields under their original
// stamp (one Merge per stamp, since a Mutation has one HLC), and a
// migration inserts a record with just the fields it has.
const (
	OpPut    Op = "put"
	OpPatch  Op = "patch"
	OpDelete Op = "delete"
	OpMerge  Op = "merge"
)

// Valid reports whether op is a known mutation kind.
func (op Op) Valid() bool {
	switch op {
	case OpPut, OpPatch, OpDelete, OpMerge:
		return true
	}
	return false
}

// Mutation is one local write as pushed to the server: every field in Fields
// was written with the same stamp and origin. MutationID is globally unique
// and stable across retries; the server applies each id at most once.
type Mutation struct {
	MutationID string                     `json:"mutationId"`
	Collection string                     `json:"collection"`
	ID         string                     `json:"id"`
	Op         Op                         `json:"op"`
	HLC        HLC                        `json:"hlc"`
	Origin     Origin                     `json:"origin"`
	Fields     map[string]json.RawMessage `json:"fields"`
}

// States returns the mutation's fields as field states stamped with the
// mutation's HLC and origin.
func (m *Mutation) States() Fields {
	out := make(Fields, len(m.Fields))
	for name, v := range m.Fields {
		out[name] = FieldState{Value: v, HLC: m.HLC, Origin: m.Origin}
	}
	return out
}
