package protocol

import (
	"bytes"
	"encoding/json"
)

// Marshal encodes v as the one canonical JSON form both sides use: compact,
// no HTML escaping (encoding/json's default turns <, > and & into \u003c…,
// which would make equal values differ byte for byte), no trailing newline.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
