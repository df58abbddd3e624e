package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
)

// plainFields is Fields without its codec: what encoding/json does by
// reflection, the reference the hand-written codec must match.
type plainFields map[string]FieldState

var fieldsSamples = []string{
	`null`,
	`{}`,
	` { "title" : { "value" : "a b" , "hlc" : "0001700000000-000001-n1" , "origin" : "user" } } `,
	`{"title":{"value":{"nested":[1,2.5e3,-0,true,false,null,"x"]},"hlc":"0001700000000-000001-n1","origin":"server"},"_deleted":{"value":false,"hlc":"0001700000000-000002-n2","origin":"agent"}}`,
	`{"t":{"value":"<&>\u2028 é \"q\" \\","hlc":"0001700000000-000001-n1","origin":"user","extra":[1,{"a":2}]}}`,
	`{"é\n":{"value":1,"hlc":"0001700000000-000001-n1","origin":"migration"}}`,
	`{"t":{"VALUE":1,"Hlc":"0001700000000-000001-n1","ORIGIN":"user"}}`,
	`{"t":null,"u":{"value":1,"hlc":null,"origin":null}}`,
	`{"t":{"value":1,"hlc":"0001700000000-000001-n1","origin":"user"},"t":{"value":2,"hlc":"0001700000000-000003-n1","origin":"user"}}`,
	`{"t":{"value":"a","value":"b","hlc":"0001700000000-000001-n1","origin":"custom"}}`,
	// Invalid: each must fail in both decoders.
	`{"t":{"value":01,"hlc":"0001700000000-000001-n1","origin":"user"}}`,
	`{"t":{"value":1.,"hlc":"0001700000000-000001-n1","origin":"user"}}`,
	`{"t":{"value":tru,"hlc":"0001700000000-000001-n1","origin":"user"}}`,
	`{"t":{"value":"\x","hlc":"0001700000000-000001-n1","origin":"user"}}`,
	`{"t":{"value":1,"hlc":"not a stamp","origin":"user"}}`,
	`{"t":{"value":1,"hlc":5,"origin":"user"}}`,
	`{"t":5}`,
	`{"t":{"value":[1,2}}`,
	`{"t":{"value":1}`,
	`{"t":{"value":1}} x`,
	`[]`,
	`{"t":{"value":"` + "\x01" + `"}}`,
	``,
}

// checkSameAsReflection decodes and re-encodes input with both codecs and
// fails t when they disagree.
func checkSameAsReflection(t *testing.T, input []byte) {
	t.Helper()
	var want plainFields
	wantErr := json.Unmarshal(input, &want)
	got, gotErr := DecodeFields(input)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: encoding/json error %v, DecodeFields error %v", input, wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	if (want == nil) != (got == nil) || len(want) != len(got) {
		t.Fatalf("%q: decoded %v, want %v", input, got, want)
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok || !bytes.Equal(g.Value, w.Value) || g.HLC != w.HLC || g.Origin != w.Origin {
			t.Fatalf("%q: field %q = %+v, want %+v", input, name, g, w)
		}
	}
	wantJSON, wantErr := Marshal(want)
	gotJSON, gotErr := got.AppendJSON([]byte("prefix"))
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: Marshal error %v, AppendJSON error %v", input, wantErr, gotErr)
	}
	if wantErr == nil && string(gotJSON) != "prefix"+string(wantJSON) {
		t.Fatalf("%q: AppendJSON = %s, want prefix%s", input, gotJSON, wantJSON)
	}
}

func TestFieldsCodecMatchesEncodingJSON(t *testing.T) {
	for _, s := range fieldsSamples {
		checkSameAsReflection(t, []byte(s))
	}
}

func TestDecodeFieldsCopiesInput(t *testing.T) {
	buf := []byte(`{"t":{"value":"abc","hlc":"0001700000000-000001-n1","origin":"user"}}`)
	f, err := DecodeFields(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = ' '
	}
	if string(f["t"].Value) != `"abc"` {
		t.Fatalf("value changed with the input buffer: %s", f["t"].Value)
	}
}

func TestFieldsAppendJSONInvalidValue(t *testing.T) {
	f := Fields{"t": {Value: json.RawMessage(`{"a": }`), HLC: HLC{Wall: 1, Node: "n"}, Origin: OriginUser}}
	out, err := f.AppendJSON([]byte("keep"))
	if err == nil || string(out) != "keep" {
		t.Fatalf("AppendJSON of an invalid value = %q, %v; want an error and dst unchanged", out, err)
	}
}

func FuzzFieldsCodec(f *testing.F) {
	for _, s := range fieldsSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		checkSameAsReflection(t, input)
	})
}
