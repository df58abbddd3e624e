package bridge

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

// encoded is an op result already encoded as JSON by this package (valid,
// compact): reply embeds it as it is instead of running encoding/json over
// it again (which would re-scan and compact every byte of a large result).
type encoded []byte

// encodeRows writes query rows as a JSON array of objects whose keys keep
// the query's column order (a map would sort them), with json columns
// embedded as their JSON value.
func encodeRows(dst []byte, rows *syncengine.Rows) ([]byte, error) {
	keys := make([][]byte, len(rows.Columns))
	for i, c := range rows.Columns {
		keys[i] = protocol.AppendJSONString(nil, c)
	}
	dst = append(dst, '[')
	var err error
	for r, row := range rows.Values {
		if r > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '{')
		first := true
		for i, v := range row {
			// A repeated column name keeps its last value, like the Go API.
			if lastIndex(rows.Columns, rows.Columns[i]) != i {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, keys[i]...)
			dst = append(dst, ':')
			if dst, err = appendValue(dst, v); err != nil {
				return nil, err
			}
		}
		dst = append(dst, '}')
	}
	return append(dst, ']'), nil
}

// encodeRecord writes a record as a JSON object with sorted keys, as
// encoding/json writes a map.
func encodeRecord(rec syncengine.Record) (encoded, error) {
	names := make([]string, 0, len(rec))
	for name := range rec {
		names = append(names, name)
	}
	slices.Sort(names)
	dst := make([]byte, 0, 64*len(names))
	dst = append(dst, '{')
	var err error
	for i, name := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = protocol.AppendJSONString(dst, name)
		dst = append(dst, ':')
		if dst, err = appendValue(dst, rec[name]); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// appendValue appends v's JSON, byte for byte as protocol.Marshal(v) would
// write it, without reflection for the types query results hold.
func appendValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case json.RawMessage:
		if len(x) == 0 {
			return append(dst, "null"...), nil
		}
		return append(dst, x...), nil
	case string:
		return protocol.AppendJSONString(dst, x), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case float64:
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			return appendFloat(dst, x), nil
		}
	}
	raw, err := protocol.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(dst, raw...), nil
}

// appendFloat formats f as encoding/json does: shortest representation,
// exponent form only below 1e-6 or from 1e21, "e-07" written "e-7".
func appendFloat(dst []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

func lastIndex(cols []string, name string) int {
	for i := len(cols) - 1; i >= 0; i-- {
		if cols[i] == name {
			return i
		}
	}
	return -1
}
