package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Fields is the hottest JSON of the system: every record in a pull page and
// every base row the engine reads or writes is one. encoding/json handles it
// through reflection and a map of structs, which on js/wasm cost more than
// the SQL around it; the hand-written codec below does the same job in one
// pass. Its output is byte for byte what Marshal produces for Fields (sorted
// keys, compact, no HTML escaping), and it accepts what json.Unmarshal
// accepts for Fields (unknown keys of a field state are ignored, the last
// of duplicate keys wins, null is a nil map).

// AppendJSON appends the canonical JSON of f to dst: the same bytes as
// Marshal(f). Values must be valid JSON (as decoding or normalizing
// produces them); a value that is not fails with an error and dst is
// returned unchanged.
func (f Fields) AppendJSON(dst []byte) ([]byte, error) {
	if f == nil {
		return append(dst, "null"...), nil
	}
	start := len(dst)
	names := make([]string, 0, len(f))
	for name := range f {
		names = append(names, name)
	}
	slices.Sort(names)
	dst = append(dst, '{')
	for i, name := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, name)
		fs := f[name]
		dst = append(dst, `:{"value":`...)
		var err error
		if dst, err = appendRawValue(dst, fs.Value); err != nil {
			return dst[:start], fmt.Errorf("field %q: %w", name, err)
		}
		dst = append(dst, `,"hlc":`...)
		if needsNoEscape(fs.HLC.Node) { // then neither does the text form
			dst = append(dst, '"')
			dst = fs.HLC.AppendText(dst)
			dst = append(dst, '"')
		} else {
			dst = appendJSONString(dst, fs.HLC.String())
		}
		dst = append(dst, `,"origin":`...)
		dst = appendJSONString(dst, string(fs.Origin))
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

// MarshalJSON encodes f as AppendJSON does.
func (f Fields) MarshalJSON() ([]byte, error) { return f.AppendJSON(nil) }

// appendRawValue appends a raw JSON value compacted, as encoding/json does
// for a json.RawMessage (empty means null).
func appendRawValue(dst []byte, v json.RawMessage) ([]byte, error) {
	if len(v) == 0 {
		return append(dst, "null"...), nil
	}
	if !hasSpaceOutsideStrings(v) {
		return append(dst, v...), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return dst, err
	}
	return append(dst, buf.Bytes()...), nil
}

// hasSpaceOutsideStrings reports whether v has whitespace that compacting
// would remove.
func hasSpaceOutsideStrings(v []byte) bool {
	in := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			return true
		}
	}
	return false
}

// AppendJSONString appends s as a JSON string, byte for byte as Marshal
// encodes it (encoding/json's escaping without the HTML escapes).
func AppendJSONString(dst []byte, s string) []byte { return appendJSONString(dst, s) }

func appendJSONString(dst []byte, s string) []byte {
	if needsNoEscape(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	raw, err := Marshal(s)
	if err != nil { // a string always encodes
		panic(err)
	}
	return append(dst, raw...)
}

// needsNoEscape reports whether s is printable ASCII without '"' or '\\'.
func needsNoEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// UnmarshalJSON decodes fields as json.Unmarshal would.
func (f *Fields) UnmarshalJSON(data []byte) error {
	out, err := DecodeFields(data)
	if err != nil {
		return err
	}
	*f = out
	return nil
}

// DecodeFields decodes the JSON of a Fields value. The values alias one
// private copy of data, so data may be reused afterwards. It fails on
// anything that is not valid JSON of that shape (an object of objects with
// a JSON "value", a string "hlc" in canonical form and a string "origin").
func DecodeFields(data []byte) (Fields, error) {
	s := scanner{b: bytes.Clone(data)}
	s.space()
	if s.literal("null") {
		return nil, s.end()
	}
	out, err := s.fields()
	if err != nil {
		return nil, err
	}
	return out, s.end()
}

// fields reads an object of field states.
func (s *scanner) fields() (Fields, error) {
	out := Fields{}
	err := s.object(func(name string) error {
		fs, err := s.fieldState()
		if err != nil {
			return fmt.Errorf("field %q: %w", name, err)
		}
		out[name] = fs
		return nil
	})
	return out, err
}

func (s *scanner) fieldState() (FieldState, error) {
	var fs FieldState
	if s.literal("null") { // encoding/json leaves the zero state
		return fs, nil
	}
	err := s.object(func(key string) error {
		switch matchKey(key, "value", "hlc", "origin") {
		case "value":
			v, err := s.value()
			fs.Value = v
			return err
		case "hlc":
			if s.literal("null") {
				return nil
			}
			raw, err := s.str()
			if err != nil {
				return err
			}
			// The fields of one write share a stamp: parse it once.
			if s.lastHLC.Node != "" && string(raw) == string(s.lastHLCText) {
				fs.HLC = s.lastHLC
				return nil
			}
			if err := fs.HLC.UnmarshalText(raw); err != nil {
				return err
			}
			s.lastHLC, s.lastHLCText = fs.HLC, raw
			return nil
		case "origin":
			if s.literal("null") {
				return nil
			}
			raw, err := s.str()
			fs.Origin = internOrigin(raw)
			return err
		default:
			_, err := s.value()
			return err
		}
	})
	return fs, err
}

// internOrigin returns the Origin for raw without allocating for the known ones.
func internOrigin(raw []byte) Origin {
	for _, o := range [...]Origin{OriginUser, OriginServer, OriginAgent, OriginSystem, OriginMigration} {
		if string(raw) == string(o) {
			return o
		}
	}
	return Origin(raw)
}

// maxDepth bounds the nesting of a value, as encoding/json does.
const maxDepth = 10000

var errSyntax = errors.New("invalid JSON")

// scanner reads JSON from b; i is the next byte.
type scanner struct {
	b     []byte
	i     int
	depth int

	lastHLC     HLC    // the last stamp parsed,
	lastHLCText []byte // and its text
}

func (s *scanner) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errSyntax, what, s.i)
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) end() error {
	s.space()
	if s.i != len(s.b) {
		return s.fail("data after the value")
	}
	return nil
}

func (s *scanner) literal(lit string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.i += len(lit)
		return true
	}
	return false
}

// object reads an object, calling member with each key with the scanner
// at the key's value, which member must consume.
func (s *scanner) object(member func(key string) error) error {
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.fail("want an object")
	}
	s.i++
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.space()
		key, err := s.str()
		if err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.fail("want ':'")
		}
		s.i++
		s.space()
		if err := member(string(key)); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.b) {
			return s.fail("unterminated object")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("want ',' or '}'")
		}
	}
}

// str reads a string and returns its decoded bytes (aliasing b when it has
// no escapes).
func (s *scanner) str() ([]byte, error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, s.fail("want a string")
	}
	start := s.i
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return s.b[start+1 : j], nil
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			// Escapes, control bytes or non-ASCII: let encoding/json decide.
			end, err := s.skipString(start)
			if err != nil {
				return nil, err
			}
			var out string
			if err := json.Unmarshal(s.b[start:end], &out); err != nil {
				return nil, s.fail("invalid string")
			}
			s.i = end
			return []byte(out), nil
		}
	}
	return nil, s.fail("unterminated string")
}

// skipString returns the offset after the string starting at start,
// checking its escapes and rejecting raw control bytes.
func (s *scanner) skipString(start int) (int, error) {
	for j := start + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			s.i = j
			return 0, s.fail("control character in string")
		case c == '\\':
			j++
			if j >= len(s.b) {
				break
			}
			switch s.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s.b) {
					s.i = j
					return 0, s.fail("short \\u escape")
				}
				for k := j + 1; k <= j+4; k++ {
					if !isHex(s.b[k]) {
						s.i = k
						return 0, s.fail("bad \\u escape")
					}
				}
				j += 4
			default:
				s.i = j
				return 0, s.fail("bad escape")
			}
		}
	}
	s.i = len(s.b)
	return 0, s.fail("unterminated string")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// value reads any JSON value and returns its bytes as they are in b.
func (s *scanner) value() ([]byte, error) {
	start := s.i
	if err := s.skipValue(); err != nil {
		return nil, err
	}
	return s.b[start:s.i:s.i], nil
}

func (s *scanner) skipValue() error {
	if s.i >= len(s.b) {
		return s.fail("want a value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		end, err := s.skipString(s.i)
		s.i = end
		return err
	case c == '{' || c == '[':
		s.depth++
		defer func() { s.depth-- }()
		if s.depth > maxDepth {
			return s.fail("nested too deeply")
		}
		if c == '{' {
			return s.object(func(string) error { return s.skipValue() })
		}
		return s.array()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case s.literal("true"), s.literal("false"), s.literal("null"):
		return nil
	}
	return s.fail("want a value")
}

func (s *scanner) array() error {
	s.i++ // '['
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.space()
		if err := s.skipValue(); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.b) {
			return s.fail("unterminated array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.fail("want ',' or ']'")
		}
	}
}

// number reads a number with JSON's grammar: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?
func (s *scanner) number() error {
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return s.fail("bad number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return s.fail("bad fraction")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return s.fail("bad exponent")
		}
	}
	return nil
}
