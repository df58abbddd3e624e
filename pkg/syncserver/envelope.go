package syncserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// The push body is decoded by encoding/json, which is lenient where a sync
// server must not be: it replaces invalid UTF-8 and unpaired surrogate
// escapes with U+FFFD (so a record id would silently become another id),
// matches keys case-insensitively, and lets the last of duplicate keys win
// (so one of two values would silently be dropped). checkUTF8 and
// checkEnvelope refuse all of that, so the strings the server stores are
// exactly the ones the client sent. Field values are not looked into here:
// they are kept verbatim, byte for byte, and protocol.ValidateMutation
// checks them.

// Exact member names of the push envelope.
var (
	pushKeys     = []string{"clientId", "mutations"}
	mutationKeys = []string{"mutationId", "collection", "id", "op", "hlc", "origin", "fields"}
)

// checkUTF8 refuses a body that is not valid UTF-8 (the only encoding of
// JSON), naming the offset of the first bad byte.
func checkUTF8(body []byte) string {
	if utf8.Valid(body) {
		return ""
	}
	at := 0
	for at < len(body) {
		r, n := utf8.DecodeRune(body[at:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		at += n
	}
	return fmt.Sprintf("request body is not valid UTF-8 (at byte %d): JSON must be UTF-8; nothing was applied", at)
}

// checkEnvelope walks a push body that decoded without error and refuses
// null, key names that only match a protocol name when case is ignored,
// duplicate keys (in the request, a mutation, or a mutation's fields) and
// unpaired UTF-16 surrogate escapes in any string the server decodes (every
// string but field values). It returns a message for the client, or "".
func checkEnvelope(body []byte) string {
	w := &envWalker{dec: json.NewDecoder(bytes.NewReader(body)), body: body}
	tok, err := w.dec.Token()
	if err != nil {
		return "request body is not valid JSON"
	}
	if tok == nil {
		return "request body is null: send a JSON object {clientId, mutations}"
	}
	return w.object("request body", pushKeys, func(key string) string {
		if key != "mutations" {
			return w.stringValue("request body", key)
		}
		return w.mutations()
	})
}

type envWalker struct {
	dec  *json.Decoder
	body []byte
}

// object reads the members of an object whose '{' was read, and its '}'.
// Each key is checked (exact name from known when known is not nil, no
// duplicate, valid Unicode); member must read the key's value.
func (w *envWalker) object(where string, known []string, member func(key string) string) string {
	seen := map[string]bool{}
	for w.dec.More() {
		start := w.dec.InputOffset()
		tok, err := w.dec.Token()
		if err != nil {
			return where + ": not valid JSON"
		}
		key, _ := tok.(string)
		raw := w.body[start:w.dec.InputOffset()]
		if q := bytes.IndexByte(raw, '"'); q >= 0 {
			raw = raw[q:] // without the separators before the key
		}
		what := "key"
		if known == nil {
			what = "field name"
		}
		if esc, bad := loneSurrogate(raw); bad {
			return fmt.Sprintf("%s: %s %s holds the unpaired surrogate escape %s, which is not Unicode: send valid UTF-16 pairs", where, what, clip(string(raw), 80), esc)
		}
		if known != nil && !slices.Contains(known, key) {
			for _, k := range known {
				if strings.EqualFold(k, key) {
					return fmt.Sprintf("%s: unknown field %q (names are case-sensitive: send %q)", where, clip(key, 80), k)
				}
			}
			return fmt.Sprintf("%s: unknown field %q", where, clip(key, 80))
		}
		if seen[key] {
			return fmt.Sprintf("%s: %s %q appears twice: send each once", where, what, clip(key, 80))
		}
		seen[key] = true
		if msg := member(key); msg != "" {
			return msg
		}
	}
	if _, err := w.dec.Token(); err != nil {
		return where + ": not valid JSON"
	}
	return ""
}

// stringValue reads a member's value and refuses an unpaired surrogate
// escape in it when it is a string.
func (w *envWalker) stringValue(where, key string) string {
	var raw json.RawMessage
	if err := w.dec.Decode(&raw); err != nil {
		return where + ": not valid JSON"
	}
	if len(raw) > 0 && raw[0] == '"' {
		if esc, bad := loneSurrogate(raw); bad {
			return fmt.Sprintf("%s: %s holds the unpaired surrogate escape %s, which is not Unicode: send valid UTF-16 pairs", where, key, esc)
		}
	}
	return ""
}

// mutations reads the value of "mutations": null or an array of null or
// mutation objects (decoding already refused anything else).
func (w *envWalker) mutations() string {
	tok, err := w.dec.Token()
	if err != nil || tok == nil {
		return ""
	}
	for i := 1; w.dec.More(); i++ {
		tok, err := w.dec.Token()
		if err != nil {
			return "mutations: not valid JSON"
		}
		if tok == nil {
			continue
		}
		where := fmt.Sprintf("mutation %d", i)
		msg := w.object(where, mutationKeys, func(key string) string {
			if key == "fields" {
				return w.fields(where)
			}
			return w.stringValue(where, key)
		})
		if msg != "" {
			return msg
		}
	}
	_, _ = w.dec.Token() // ']'
	return ""
}

// fields reads a mutation's "fields" value: null or an object whose names
// are checked and whose values are skipped (they are kept verbatim).
func (w *envWalker) fields(where string) string {
	tok, err := w.dec.Token()
	if err != nil || tok == nil {
		return ""
	}
	return w.object(where+" fields", nil, func(string) string {
		var skip json.RawMessage
		if err := w.dec.Decode(&skip); err != nil {
			return where + ": not valid JSON"
		}
		return ""
	})
}

// loneSurrogate finds the first \uXXXX escape in a JSON string literal that
// is a UTF-16 surrogate without its partner, and returns its text.
func loneSurrogate(raw []byte) (string, bool) {
	for i := 0; i+1 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if raw[i] != 'u' || i+4 >= len(raw) {
			continue
		}
		r := hex4(raw[i+1 : i+5])
		esc := string(raw[i-1 : i+5])
		i += 4
		switch {
		case r >= 0xd800 && r <= 0xdbff:
			if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo := hex4(raw[i+3 : i+7]); lo >= 0xdc00 && lo <= 0xdfff {
					i += 6
					continue
				}
			}
			return esc, true
		case r >= 0xdc00 && r <= 0xdfff:
			return esc, true
		}
	}
	return "", false
}

// hex4 reads four hex digits (-1 if they are not).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return -1
		}
	}
	return r
}
