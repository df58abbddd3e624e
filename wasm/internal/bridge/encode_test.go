package bridge

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

// The hand-written encoders must write exactly what encoding/json
// (protocol.Marshal) writes for the same values.
func TestAppendValueMatchesMarshal(t *testing.T) {
	values := []any{
		nil, true, false, "", "plain", "<&> \u2028\u2029 \"q\" \\ \n\t\x01 é 😀", "\xff invalid utf-8",
		int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64), 7,
		0.0, math.Copysign(0, -1), 1.5, -2.25, 1e20, 1e21, 123456789e15, 1e-6, 1e-7, 2.5e-9, 1.7976931348623157e308,
		5e-324, 0.1, 1.0 / 3, 100.0,
		json.RawMessage(`{"a":[1,2,{"b":null}]}`), []byte("bytes\x00"),
	}
	for _, v := range values {
		want, err := protocol.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", v, err)
		}
		got, err := appendValue([]byte("x"), v)
		if err != nil || string(got) != "x"+string(want) {
			t.Errorf("appendValue(%#v) = %s, %v; want x%s", v, got, err, want)
		}
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := appendValue(nil, bad); err == nil {
			t.Errorf("appendValue(%v) succeeded; JSON has no such number", bad)
		}
	}
}

func TestEncodeRecordMatchesMarshal(t *testing.T) {
	rec := syncengine.Record{"id": "r1", "title": "<b>", "done": true, "rank": int64(3), "score": 0.5, "meta": json.RawMessage(`{"x":1}`), "note": nil, "é": "k"}
	want, err := protocol.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeRecord(rec)
	if err != nil || string(got) != string(want) {
		t.Fatalf("encodeRecord = %s, %v; want %s", got, err, want)
	}
}

func TestEncodeRowsKeepsColumnOrder(t *testing.T) {
	// A repeated column name ("z") is written once, at its last position.
	rows := &syncengine.Rows{
		Columns: []string{"z", "a", "z"},
		Values:  [][]any{{"first", int64(1), "last"}, {nil, 2.5, json.RawMessage(`[1]`)}},
	}
	got, err := encodeRows([]byte("x"), rows)
	want := `x[{"a":1,"z":"last"},{"a":2.5,"z":[1]}]`
	if err != nil || string(got) != want {
		t.Fatalf("encodeRows = %s, %v; want %s", got, err, want)
	}
}
