package syncengine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// maxSafeInteger is the largest integer a JS number holds exactly.
const maxSafeInteger = 1<<53 - 1

var (
	jsonNull  = json.RawMessage("null")
	jsonTrue  = json.RawMessage("true")
	jsonFalse = json.RawMessage("false")
)

// Record is a record as the Go API takes and returns it: "id" plus field
// values (string, number, bool, nil, or any JSON-encodable value for json
// fields).
type Record map[string]any

// marshalJSON encodes v in the protocol's canonical form, so equal values
// have equal bytes.
func marshalJSON(v any) (json.RawMessage, error) { return protocol.Marshal(v) }

// normalizeValue checks v against the field type and returns its canonical
// JSON. Null (nil) is valid for every type.
func normalizeValue(t FieldType, v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		decoded, err := decodeJSONValue(raw)
		if err != nil {
			return nil, err
		}
		v = decoded
	}
	if v == nil {
		return jsonNull, nil
	}
	switch t {
	case TypeText:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want text (a string), got %s", describe(v))
		}
		return marshalJSON(s)
	case TypeBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want boolean (true or false), got %s", describe(v))
		}
		if b {
			return jsonTrue, nil
		}
		return jsonFalse, nil
	case TypeInteger:
		n, err := toInteger(v)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(strconv.FormatInt(n, 10)), nil
	case TypeReal:
		f, err := toReal(v)
		if err != nil {
			return nil, err
		}
		if f == 0 {
			f = 0 // -0 becomes 0: SQLite stores it as integer 0 anyway
		}
		return marshalJSON(f)
	case TypeJSON:
		raw, err := marshalJSON(v)
		if err != nil {
			return nil, fmt.Errorf("not JSON-encodable: %v", err)
		}
		if err := protocol.ValidateJSONValue(raw); err != nil {
			return nil, err
		}
		return raw, nil
	}
	return nil, fmt.Errorf("unknown field type %q", t)
}

func decodeJSONValue(raw json.RawMessage) (any, error) {
	if err := protocol.ValidateJSONValue(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func toInteger(v any) (int64, error) {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case uint8:
		n = int64(x)
	case uint16:
		n = int64(x)
	case uint32:
		n = int64(x)
	case uint:
		if uint64(x) > maxSafeInteger {
			return 0, errors.New("integer out of the safe range ±(2^53-1)")
		}
		n = int64(x)
	case uint64:
		if x > maxSafeInteger {
			return 0, errors.New("integer out of the safe range ±(2^53-1)")
		}
		n = int64(x)
	case float32:
		return toInteger(float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || x != math.Trunc(x) {
			return 0, fmt.Errorf("want integer, got %v", x)
		}
		if math.Abs(x) > maxSafeInteger {
			return 0, errors.New("integer out of the safe range ±(2^53-1)")
		}
		n = int64(x)
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			n = i
		} else if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return toInteger(f)
		} else {
			return 0, fmt.Errorf("want integer, got %q", string(x))
		}
	default:
		return 0, fmt.Errorf("want integer, got %s", describe(v))
	}
	if n > maxSafeInteger || n < -maxSafeInteger {
		return 0, errors.New("integer out of the safe range ±(2^53-1)")
	}
	return n, nil
}

func toReal(v any) (float64, error) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case json.Number:
		p, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, fmt.Errorf("want real, got %q", string(x))
		}
		f = p
	default:
		n, err := toInteger(v)
		if err != nil {
			return 0, fmt.Errorf("want real (a number), got %s", describe(v))
		}
		f = float64(n)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("want a finite real, got NaN or infinity")
	}
	return f, nil
}

func describe(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, float32, int, int64, int32:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return reflect.TypeOf(v).String()
}

// conforms reports whether canonical JSON raw (as received from a remote
// peer) is a valid value of type t. Remote values that do not conform show
// as null in the visible table and are kept verbatim in base.
func conforms(t FieldType, raw json.RawMessage) bool {
	if len(raw) == 0 || string(raw) == "null" {
		return true
	}
	switch t {
	case TypeText:
		return raw[0] == '"'
	case TypeBoolean:
		return string(raw) == "true" || string(raw) == "false"
	case TypeInteger:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		return err == nil && n <= maxSafeInteger && n >= -maxSafeInteger
	case TypeReal:
		f, err := strconv.ParseFloat(string(raw), 64)
		return err == nil && !math.IsInf(f, 0) && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
	case TypeJSON:
		return true
	}
	return false
}

// bindValue binds canonical JSON raw of type t to parameter i. A value that
// does not conform to t binds NULL.
func bindValue(st *sqlite3.Stmt, i int, t FieldType, raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" || !conforms(t, raw) {
		return st.BindNull(i)
	}
	switch t {
	case TypeText:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return st.BindNull(i)
		}
		return st.BindText(i, s)
	case TypeBoolean:
		return st.BindBool(i, string(raw) == "true")
	case TypeInteger:
		n, _ := strconv.ParseInt(string(raw), 10, 64)
		return st.BindInt64(i, n)
	case TypeReal:
		f, _ := strconv.ParseFloat(string(raw), 64)
		return st.BindFloat(i, f)
	default:
		return st.BindRawText(i, raw)
	}
}

// columnValue reads column i as the Go value of field type t: string,
// int64, float64, bool, json.RawMessage or nil.
func columnValue(st *sqlite3.Stmt, i int, t FieldType) any {
	dt := st.ColumnType(i)
	if dt == sqlite3.NULL {
		return nil
	}
	switch t {
	case TypeText:
		return st.ColumnText(i)
	case TypeBoolean:
		return st.ColumnInt64(i) != 0
	case TypeInteger:
		return st.ColumnInt64(i)
	case TypeReal:
		return st.ColumnFloat(i)
	case TypeJSON:
		text := st.ColumnText(i)
		if json.Valid([]byte(text)) {
			return json.RawMessage(text)
		}
		return text
	}
	return plainColumnValue(st, i)
}

// plainColumnValue reads column i by its SQLite storage class.
func plainColumnValue(st *sqlite3.Stmt, i int) any {
	switch st.ColumnType(i) {
	case sqlite3.INTEGER:
		return st.ColumnInt64(i)
	case sqlite3.FLOAT:
		return st.ColumnFloat(i)
	case sqlite3.TEXT:
		return st.ColumnText(i)
	case sqlite3.BLOB:
		return st.ColumnBlob(i, nil)
	}
	return nil
}

// bindArg binds one query argument from the Go API.
func bindArg(st *sqlite3.Stmt, i int, v any) error {
	switch x := v.(type) {
	case nil:
		return st.BindNull(i)
	case bool:
		return st.BindBool(i, x)
	case string:
		return st.BindText(i, x)
	case []byte:
		return st.BindBlob(i, x)
	case json.RawMessage:
		return st.BindRawText(i, x)
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return st.BindInt64(i, n)
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return fmt.Errorf("argument %d: %q is not a number", i, string(x))
		}
		return st.BindFloat(i, f)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) <= maxSafeInteger {
			return st.BindInt64(i, int64(x))
		}
		return st.BindFloat(i, x)
	case float32:
		return bindArg(st, i, float64(x))
	case int, int8, int16, int32, int64, uint8, uint16, uint32, uint, uint64:
		n, err := toInteger(x)
		if err != nil {
			return fmt.Errorf("argument %d: %v", i, err)
		}
		return st.BindInt64(i, n)
	}
	return fmt.Errorf("argument %d: unsupported type %T (use string, number, boolean, null)", i, v)
}

// jsonEqual reports whether two JSON values are equal: byte-equal, or equal
// once decoded (a peer may encode the same value differently, e.g. with
// whitespace or escaped characters).
func jsonEqual(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	va, errA := decodeJSONValue(a)
	vb, errB := decodeJSONValue(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}
