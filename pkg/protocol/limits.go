package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits shared by the engine and the server. A value over a limit is
// refused with a clear error, never truncated.
const (
	MaxIDBytes         = 256     // bytes in a record id
	MaxNameLen         = 64      // characters in a collection or field name
	MaxRecordBytes     = 1 << 20 // JSON bytes of one record's field values
	MaxJSONDepth       = 32      // nesting of arrays/objects in a json field
	MaxBatchMutations  = 500     // mutations in one push request
	MaxPullLimit       = 10000   // records in one pull page
	DefaultPullLimit   = 1000    // records in a pull page when none is asked for
	MaxRequestBytes    = 8 << 20 // bytes in one push request body
	MaxMutationIDBytes = 128     // bytes in a mutation id
	MaxFieldsPerRecord = 256     // fields in one record or mutation
)

// ValidateName checks a collection or field name: a letter, then letters,
// digits or underscores, at most MaxNameLen characters. Names starting with
// an underscore are reserved for opfsync.
func ValidateName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", kind)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%s name %q is longer than %d characters", kind, truncate(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter {
			return fmt.Errorf("%s name %q must start with a letter", kind, truncate(name))
		}
		if !letter && !(c >= '0' && c <= '9') && c != '_' {
			return fmt.Errorf("%s name %q may hold only letters, digits and _", kind, truncate(name))
		}
	}
	return nil
}

// ValidateFieldName checks a field name in a write or change: a valid name,
// not "id", or the DeletedField pseudo-field.
func ValidateFieldName(name string) error {
	if name == DeletedField {
		return nil
	}
	if name == "id" {
		return errors.New(`field name "id" is reserved for the record id`)
	}
	return ValidateName("field", name)
}

// ValidateID checks a record id: non-empty valid UTF-8, at most MaxIDBytes
// bytes, no control characters.
func ValidateID(id string) error {
	if id == "" {
		return errors.New("record id is empty")
	}
	if len(id) > MaxIDBytes {
		return fmt.Errorf("record id is %d bytes, the limit is %d", len(id), MaxIDBytes)
	}
	if !utf8.ValidString(id) {
		return errors.New("record id is not valid UTF-8")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return errors.New("record id contains a control character")
		}
	}
	return nil
}

// ValidateMutationID checks a mutation id: 1 to MaxMutationIDBytes bytes of
// printable ASCII.
func ValidateMutationID(id string) error {
	if id == "" || len(id) > MaxMutationIDBytes {
		return fmt.Errorf("mutation id must be 1 to %d bytes", MaxMutationIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= 0x20 || id[i] >= 0x7f {
			return errors.New("mutation id must be printable ASCII without spaces")
		}
	}
	return nil
}

// ValidateJSONValue checks that raw is exactly one well-formed JSON value,
// valid UTF-8, nested at most MaxJSONDepth deep.
func ValidateJSONValue(raw []byte) error {
	if !json.Valid(raw) {
		return errors.New("not a single well-formed JSON value")
	}
	if !utf8.Valid(raw) {
		return errors.New("JSON is not valid UTF-8")
	}
	if d := jsonDepth(raw); d > MaxJSONDepth {
		return fmt.Errorf("JSON nests %d deep, the limit is %d", d, MaxJSONDepth)
	}
	return nil
}

// jsonDepth returns the deepest nesting of arrays and objects in a
// well-formed JSON text.
func jsonDepth(raw []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > deepest {
				deepest = depth
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// ValidateMutation checks a mutation's shape (not its values against any
// app schema, which the server does not know): ids, names, op, stamp,
// origin, field count and size, and the DeletedField rules of its op.
func ValidateMutation(m *Mutation) error {
	if err := ValidateMutationID(m.MutationID); err != nil {
		return err
	}
	if err := ValidateName("collection", m.Collection); err != nil {
		return err
	}
	if err := ValidateID(m.ID); err != nil {
		return err
	}
	if !m.Op.Valid() {
		return fmt.Errorf("unknown op %q", truncate(string(m.Op)))
	}
	if err := ValidateHLC(m.HLC); err != nil {
		return fmt.Errorf("mutation stamp: %w", err)
	}
	if !m.Origin.Valid() {
		return fmt.Errorf("unknown origin %q", truncate(string(m.Origin)))
	}
	if len(m.Fields) > MaxFieldsPerRecord {
		return fmt.Errorf("mutation has %d fields, the limit is %d", len(m.Fields), MaxFieldsPerRecord)
	}
	size := 0
	for name, v := range m.Fields {
		if err := ValidateFieldName(name); err != nil {
			return err
		}
		if err := ValidateJSONValue(v); err != nil {
			return fmt.Errorf("field %q: %w", name, err)
		}
		size += len(v)
	}
	if size > MaxRecordBytes {
		return fmt.Errorf("mutation values are %d bytes, the limit is %d", size, MaxRecordBytes)
	}
	del, hasDel := m.Fields[DeletedField]
	if hasDel && !isJSONBool(del) {
		return fmt.Errorf("field %q must be true or false", DeletedField)
	}
	switch m.Op {
	case OpPut:
		if !hasDel || string(del) != "false" {
			return fmt.Errorf("a put must write %s=false", DeletedField)
		}
	case OpPatch:
		if hasDel {
			return fmt.Errorf("a patch must not write %s", DeletedField)
		}
		if len(m.Fields) == 0 {
			return errors.New("a patch must write at least one field")
		}
	case OpDelete:
		if len(m.Fields) != 1 || string(del) != "true" {
			return fmt.Errorf("a delete must write only %s=true", DeletedField)
		}
	case OpMerge:
		if len(m.Fields) == 0 {
			return errors.New("a merge must write at least one field")
		}
	}
	return nil
}

// isJSONBool reports whether v is exactly true or false (no whitespace:
// the tombstone is compared byte-wise everywhere).
func isJSONBool(v []byte) bool {
	return string(v) == "true" || string(v) == "false"
}

// ValidateHLC checks that a stamp is real and within range: not zero, wall
// in [1, MaxWall], counter at most MaxCounter, and a valid node id. Stamps
// decoded from text are always in range; this guards stamps built in Go.
func ValidateHLC(h HLC) error {
	if h.IsZero() {
		return errors.New("no hlc stamp")
	}
	if h.Wall < 1 || h.Wall > MaxWall || h.Counter > MaxCounter {
		return fmt.Errorf("hlc %d/%d out of range", h.Wall, h.Counter)
	}
	return ValidateNode(h.Node)
}

// ValidateRecordState checks a record state's shape: collection name, id,
// field names, stamps and origins present, values well-formed JSON, total
// size within MaxRecordBytes.
func ValidateRecordState(r *RecordState) error {
	if err := ValidateName("collection", r.Collection); err != nil {
		return err
	}
	if err := ValidateID(r.ID); err != nil {
		return err
	}
	if len(r.Fields) > MaxFieldsPerRecord+1 {
		return fmt.Errorf("record has %d fields, the limit is %d", len(r.Fields), MaxFieldsPerRecord)
	}
	size := 0
	for name, f := range r.Fields {
		if err := ValidateFieldName(name); err != nil {
			return err
		}
		if err := ValidateHLC(f.HLC); err != nil {
			return fmt.Errorf("field %q: %w", name, err)
		}
		if !f.Origin.Valid() {
			return fmt.Errorf("field %q: unknown origin %q", name, truncate(string(f.Origin)))
		}
		if err := ValidateJSONValue(f.Value); err != nil {
			return fmt.Errorf("field %q: %w", name, err)
		}
		if name == DeletedField && !isJSONBool(f.Value) {
			return fmt.Errorf("field %q must be true or false", DeletedField)
		}
		size += len(f.Value)
	}
	if size > MaxRecordBytes {
		return fmt.Errorf("record values are %d bytes, the limit is %d", size, MaxRecordBytes)
	}
	return nil
}
