package bridge

import (
	"bytes"
	"encoding/json"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

// encodeRows writes query rows as a JSON array of objects whose keys keep
// the query's column order (a map would sort them), with json columns
// embedded as their JSON value.
func encodeRows(rows *syncengine.Rows) (json.RawMessage, error) {
	keys := make([][]byte, len(rows.Columns))
	for i, c := range rows.Columns {
		k, err := protocol.Marshal(c)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for r, row := range rows.Values {
		if r > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('{')
		first := true
		for i, v := range row {
			// A repeated column name keeps its last value, like the Go API.
			if lastIndex(rows.Columns, rows.Columns[i]) != i {
				continue
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			buf.Write(keys[i])
			buf.WriteByte(':')
			if raw, ok := v.(json.RawMessage); ok {
				buf.Write(raw)
				continue
			}
			val, err := protocol.Marshal(v)
			if err != nil {
				return nil, err
			}
			buf.Write(val)
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

func lastIndex(cols []string, name string) int {
	for i := len(cols) - 1; i >= 0; i-- {
		if cols[i] == name {
			return i
		}
	}
	return -1
}
