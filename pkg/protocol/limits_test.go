package protocol

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"todos", true},
		{"T", true},
		{"a1_b2", true},
		{"camelCase", true},
		{strings.Repeat("a", MaxNameLen), true},
		{strings.Repeat("a", MaxNameLen+1), false},
		{"", false},
		{"_deleted", false}, // reserved prefix: not a valid collection/field name
		{"_x", false},
		{"1abc", false},
		{"a-b", false},
		{"a b", false},
		{"a.b", false},
		{"é", false},
		{"aé", false},
		{"a\x00", false},
		{`a"b`, false},
	}
	for _, tt := range tests {
		err := ValidateName("collection", tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "collection") {
			t.Errorf("ValidateName(%q) error %q does not say what kind of name", tt.name, err)
		}
	}
}

func TestValidateFieldName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"title", true},
		{DeletedField, true},
		{"id", false},
		{"ID", true}, // only the exact "id" is the record id
		{"_deleted2", false},
		{"_updated_at", false},
		{"", false},
		{strings.Repeat("f", MaxNameLen), true},
		{strings.Repeat("f", MaxNameLen+1), false},
		{"9lives", false},
	}
	for _, tt := range tests {
		if err := ValidateFieldName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidateFieldName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"simple", "t1", true},
		{"uuid", "0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"spaces and punctuation", "a b/c?d#e", true},
		{"unicode", "日本語-✓", true},
		{"emoji", "😀", true},
		{"exactly 256 bytes", strings.Repeat("x", MaxIDBytes), true},
		{"256 bytes of multi-byte runes", strings.Repeat("é", MaxIDBytes/2), true},
		{"257 bytes", strings.Repeat("x", MaxIDBytes+1), false},
		{"257 bytes with a multi-byte rune last", strings.Repeat("x", MaxIDBytes-1) + "é", false},
		{"empty", "", false},
		{"invalid UTF-8", "a\xffb", false},
		{"truncated rune", "\xe6\x97", false},
		{"NUL", "a\x00b", false},
		{"newline", "a\nb", false},
		{"tab", "\t", false},
		{"unit separator", "a\x1f", false},
		{"DEL", "a\x7f", false},
		{"space", " ", true},
		{"C1 range rune", "a\u0085b", true}, // only C0 and DEL are refused
	}
	for _, tt := range tests {
		if err := ValidateID(tt.id); (err == nil) != tt.ok {
			t.Errorf("%s: ValidateID(%q) = %v, want ok=%v", tt.name, tt.id, err, tt.ok)
		}
	}
}

func TestValidateMutationID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"m0123456789abcdef", true},
		{"!", true},
		{"~", true},
		{"a-b_c.d:e/f", true},
		{strings.Repeat("m", MaxMutationIDBytes), true},
		{strings.Repeat("m", MaxMutationIDBytes+1), false},
		{"", false},
		{"a b", false},
		{" a", false},
		{"a\t", false},
		{"a\x7f", false},
		{"é", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		if err := ValidateMutationID(tt.id); (err == nil) != tt.ok {
			t.Errorf("ValidateMutationID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func nested(depth int, open, close, inner string) string {
	return strings.Repeat(open, depth) + inner + strings.Repeat(close, depth)
}

func TestValidateJSONValue(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"null", "null", true},
		{"true", "true", true},
		{"number", "-1.5e3", true},
		{"string", `"x"`, true},
		{"object", `{"a":[1,{"b":null}]}`, true},
		{"surrounding whitespace", " 1 ", true},
		{"empty", "", false},
		{"two values", "1 2", false},
		{"trailing comma", "[1,]", false},
		{"single quotes", "'x'", false},
		{"NaN", "NaN", false},
		{"unterminated", `{"a":1`, false},
		{"invalid UTF-8 in a string", "\"a\xffb\"", false},
		{"arrays at the depth limit", nested(MaxJSONDepth, "[", "]", ""), true},
		{"arrays one past the limit", nested(MaxJSONDepth+1, "[", "]", ""), false},
		{"objects at the depth limit", nested(MaxJSONDepth, `{"k":`, "}", "1"), true},
		{"objects one past the limit", nested(MaxJSONDepth, `{"k":`, "}", "[]"), false},
		{"mixed at the limit", nested(MaxJSONDepth/2, `[{"k":`, "}]", "0"), true},
		{"brackets in strings do not count", `["` + strings.Repeat("[{", 100) + `"]`, true},
		{"escaped quote then brackets", `["\"[[[[", {"a\\":"]]]"}]`, true},
		{"deep but sequential", strings.Repeat(nested(MaxJSONDepth, "[", "]", ""), 1), true},
		{"wide at the limit", "[" + strings.Repeat(nested(MaxJSONDepth-1, "[", "]", "")+",", 50) + "1]", true},
	}
	for _, tt := range tests {
		if err := ValidateJSONValue([]byte(tt.raw)); (err == nil) != tt.ok {
			t.Errorf("%s: ValidateJSONValue = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func validMutation(op Op) *Mutation {
	m := &Mutation{
		MutationID: "m1", Collection: "todos", ID: "t1", Op: op,
		HLC: HLC{Wall: 1_700_000_000_000, Node: "c1"}, Origin: OriginUser,
	}
	switch op {
	case OpPut:
		m.Fields = map[string]json.RawMessage{"title": json.RawMessage(`"x"`), DeletedField: json.RawMessage("false")}
	case OpPatch:
		m.Fields = map[string]json.RawMessage{"title": json.RawMessage(`"x"`)}
	case OpDelete:
		m.Fields = map[string]json.RawMessage{DeletedField: json.RawMessage("true")}
	case OpMerge:
		m.Fields = map[string]json.RawMessage{"title": json.RawMessage(`"x"`), DeletedField: json.RawMessage("true")}
	}
	return m
}

func TestValidateMutation(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	manyFields := func(n int) map[string]json.RawMessage {
		out := map[string]json.RawMessage{}
		for i := 0; i < n; i++ {
			out[fmt.Sprintf("f%d", i)] = raw("1")
		}
		return out
	}
	tests := []struct {
		name   string
		op     Op
		change func(m *Mutation)
		ok     bool
	}{
		{"valid put", OpPut, nil, true},
		{"valid patch", OpPatch, nil, true},
		{"valid delete", OpDelete, nil, true},
		{"valid merge", OpMerge, nil, true},
		{"merge without tombstone", OpMerge, func(m *Mutation) { delete(m.Fields, DeletedField) }, true},
		{"merge restoring", OpMerge, func(m *Mutation) { m.Fields[DeletedField] = raw("false") }, true},
		{"merge of only a tombstone", OpMerge, func(m *Mutation) { m.Fields = map[string]json.RawMessage{DeletedField: raw("true")} }, true},
		{"merge without fields", OpMerge, func(m *Mutation) { m.Fields = nil }, false},
		{"merge tombstone not a bool", OpMerge, func(m *Mutation) { m.Fields[DeletedField] = raw("1") }, false},
		{"put without tombstone", OpPut, func(m *Mutation) { delete(m.Fields, DeletedField) }, false},
		{"put writing deleted=true", OpPut, func(m *Mutation) { m.Fields[DeletedField] = raw("true") }, false},
		{"put with a string tombstone", OpPut, func(m *Mutation) { m.Fields[DeletedField] = raw(`"false"`) }, false},
		{"put of only the tombstone", OpPut, func(m *Mutation) { m.Fields = map[string]json.RawMessage{DeletedField: raw("false")} }, true},
		{"patch writing the tombstone", OpPatch, func(m *Mutation) { m.Fields[DeletedField] = raw("false") }, false},
		{"patch without fields", OpPatch, func(m *Mutation) { m.Fields = map[string]json.RawMessage{} }, false},
		{"delete with another field", OpDelete, func(m *Mutation) { m.Fields["title"] = raw("null") }, false},
		{"delete writing false", OpDelete, func(m *Mutation) { m.Fields[DeletedField] = raw("false") }, false},
		{"delete without fields", OpDelete, func(m *Mutation) { m.Fields = nil }, false},
		{"unknown op", OpPut, func(m *Mutation) { m.Op = "upsert" }, false},
		{"empty op", OpPut, func(m *Mutation) { m.Op = "" }, false},
		{"no stamp", OpPut, func(m *Mutation) { m.HLC = HLC{} }, false},
		{"unknown origin", OpPut, func(m *Mutation) { m.Origin = "admin" }, false},
		{"empty origin", OpPut, func(m *Mutation) { m.Origin = "" }, false},
		{"server origin", OpMerge, func(m *Mutation) { m.Origin = OriginServer }, true},
		{"bad mutation id", OpPut, func(m *Mutation) { m.MutationID = "a b" }, false},
		{"empty mutation id", OpPut, func(m *Mutation) { m.MutationID = "" }, false},
		{"bad collection", OpPut, func(m *Mutation) { m.Collection = "1x" }, false},
		{"empty id", OpPut, func(m *Mutation) { m.ID = "" }, false},
		{"id with a control character", OpPut, func(m *Mutation) { m.ID = "a\nb" }, false},
		{"field named id", OpPatch, func(m *Mutation) { m.Fields["id"] = raw(`"t2"`) }, false},
		{"reserved field name", OpPatch, func(m *Mutation) { m.Fields["_rank"] = raw("1") }, false},
		{"invalid JSON value", OpPatch, func(m *Mutation) { m.Fields["title"] = raw("{") }, false},
		{"empty JSON value", OpPatch, func(m *Mutation) { m.Fields["title"] = raw("") }, false},
		{"too deep JSON value", OpPatch, func(m *Mutation) { m.Fields["meta"] = raw(nested(MaxJSONDepth+1, "[", "]", "")) }, false},
		{"JSON value at the depth limit", OpPatch, func(m *Mutation) { m.Fields["meta"] = raw(nested(MaxJSONDepth, "[", "]", "")) }, true},
		{"fields at the limit", OpPatch, func(m *Mutation) { m.Fields = manyFields(MaxFieldsPerRecord) }, true},
		{"too many fields", OpPatch, func(m *Mutation) { m.Fields = manyFields(MaxFieldsPerRecord + 1) }, false},
		{"values at the size limit", OpPatch, func(m *Mutation) {
			m.Fields = map[string]json.RawMessage{"a": raw(`"` + strings.Repeat("x", MaxRecordBytes-2) + `"`)}
		}, true},
		{"values over the size limit", OpPatch, func(m *Mutation) {
			m.Fields = map[string]json.RawMessage{"a": raw(`"` + strings.Repeat("x", MaxRecordBytes/2) + `"`), "b": raw(`"` + strings.Repeat("x", MaxRecordBytes/2) + `"`)}
		}, false},
	}
	for _, tt := range tests {
		m := validMutation(tt.op)
		if tt.change != nil {
			tt.change(m)
		}
		if err := ValidateMutation(m); (err == nil) != tt.ok {
			t.Errorf("%s: ValidateMutation = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func validRecordState() *RecordState {
	h := HLC{Wall: 1_700_000_000_000, Node: "c1"}
	return &RecordState{Collection: "todos", ID: "t1", Fields: Fields{
		"title":      {Value: json.RawMessage(`"x"`), HLC: h, Origin: OriginUser},
		"done":       {Value: json.RawMessage(`false`), HLC: HLC{Wall: 1_700_000_000_001, Node: "c2"}, Origin: OriginAgent},
		DeletedField: {Value: json.RawMessage(`false`), HLC: h, Origin: OriginServer},
	}}
}

func TestValidateRecordState(t *testing.T) {
	h := HLC{Wall: 1, Node: "n"}
	many := func(n int) Fields {
		out := Fields{}
		for i := 0; i < n; i++ {
			out[fmt.Sprintf("f%d", i)] = FieldState{Value: json.RawMessage("1"), HLC: h, Origin: OriginUser}
		}
		return out
	}
	tests := []struct {
		name   string
		change func(r *RecordState)
		ok     bool
	}{
		{"valid", nil, true},
		{"no fields", func(r *RecordState) { r.Fields = nil }, true},
		{"tombstone only", func(r *RecordState) {
			r.Fields = Fields{DeletedField: {Value: json.RawMessage("true"), HLC: h, Origin: OriginUser}}
		}, true},
		{"bad collection", func(r *RecordState) { r.Collection = "" }, false},
		{"bad id", func(r *RecordState) { r.ID = strings.Repeat("x", MaxIDBytes+1) }, false},
		{"field without stamp", func(r *RecordState) {
			f := r.Fields["title"]
			f.HLC = HLC{}
			r.Fields["title"] = f
		}, false},
		{"field with unknown origin", func(r *RecordState) {
			f := r.Fields["title"]
			f.Origin = "root"
			r.Fields["title"] = f
		}, false},
		{"field with invalid JSON", func(r *RecordState) {
			f := r.Fields["title"]
			f.Value = json.RawMessage("nul")
			r.Fields["title"] = f
		}, false},
		{"field with no value", func(r *RecordState) {
			f := r.Fields["title"]
			f.Value = nil
			r.Fields["title"] = f
		}, false},
		{"tombstone not a bool", func(r *RecordState) {
			f := r.Fields[DeletedField]
			f.Value = json.RawMessage("0")
			r.Fields[DeletedField] = f
		}, false},
		{"field named id", func(r *RecordState) { r.Fields["id"] = r.Fields["title"] }, false},
		{"reserved field name", func(r *RecordState) { r.Fields["_extra"] = r.Fields["title"] }, false},
		{"fields at the limit plus the tombstone", func(r *RecordState) {
			r.Fields = many(MaxFieldsPerRecord)
			r.Fields[DeletedField] = FieldState{Value: json.RawMessage("false"), HLC: h, Origin: OriginUser}
		}, true},
		{"too many fields", func(r *RecordState) {
			r.Fields = many(MaxFieldsPerRecord + 2)
		}, false},
		{"too large", func(r *RecordState) {
			big := json.RawMessage(`"` + strings.Repeat("x", MaxRecordBytes) + `"`)
			r.Fields["title"] = FieldState{Value: big, HLC: h, Origin: OriginUser}
		}, false},
	}
	for _, tt := range tests {
		r := validRecordState()
		if tt.change != nil {
			tt.change(r)
		}
		if err := ValidateRecordState(r); (err == nil) != tt.ok {
			t.Errorf("%s: ValidateRecordState = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestOpAndOriginValid(t *testing.T) {
	for _, op := range []Op{OpPut, OpPatch, OpDelete, OpMerge} {
		if !op.Valid() {
			t.Errorf("%q not valid", op)
		}
	}
	for _, op := range []Op{"", "PUT", "insert"} {
		if op.Valid() {
			t.Errorf("%q valid", op)
		}
	}
	for _, o := range []Origin{OriginUser, OriginAgent, OriginSystem, OriginMigration, OriginServer} {
		if !o.Valid() {
			t.Errorf("%q not valid", o)
		}
	}
	for _, o := range []Origin{"", "User", "admin"} {
		if o.Valid() {
			t.Errorf("%q valid", o)
		}
	}
}

func fs(v string, wall int64, counter uint32, node string) FieldState {
	return FieldState{Value: json.RawMessage(v), HLC: HLC{Wall: wall, Counter: counter, Node: node}, Origin: OriginUser}
}

func TestWins(t *testing.T) {
	tests := []struct {
		name              string
		incoming, current FieldState
		want              bool
	}{
		{"newer wall", fs("1", 2, 0, "a"), fs("0", 1, 0, "a"), true},
		{"older wall", fs("1", 1, 0, "a"), fs("0", 2, 0, "a"), false},
		{"newer counter", fs("1", 1, 1, "a"), fs("0", 1, 0, "z"), true},
		{"node breaks ties", fs("1", 1, 0, "b"), fs("0", 1, 0, "a"), true},
		{"equal stamps keep current", fs("1", 1, 0, "a"), fs("0", 1, 0, "a"), false},
		{"anything beats never written", fs("null", 0, 0, "a"), FieldState{}, true},
		{"never written beats nothing", FieldState{}, FieldState{}, false},
	}
	for _, tt := range tests {
		if got := Wins(tt.incoming, tt.current); got != tt.want {
			t.Errorf("%s: Wins = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFieldsMergeTable(t *testing.T) {
	dst := Fields{"a": fs(`"old"`, 1, 0, "n"), "b": fs(`"keep"`, 5, 0, "n"), "c": fs(`"cur"`, 3, 0, "n")}
	src := Fields{"a": fs(`"new"`, 2, 0, "n"), "b": fs(`"stale"`, 4, 9, "z"), "c": fs(`"same stamp"`, 3, 0, "n"), "d": fs(`"added"`, 1, 0, "m")}
	changed := dst.Merge(src)
	slices.Sort(changed)
	if !slices.Equal(changed, []string{"a", "d"}) {
		t.Fatalf("changed = %v, want [a d]", changed)
	}
	want := map[string]string{"a": `"new"`, "b": `"keep"`, "c": `"cur"`, "d": `"added"`}
	for k, v := range want {
		if string(dst[k].Value) != v {
			t.Errorf("field %s = %s, want %s", k, dst[k].Value, v)
		}
	}
	if again := dst.Merge(src); len(again) != 0 {
		t.Fatalf("merging again changed %v", again)
	}
}

// randomFields draws field states from a small pool of names and stamps.
// Distinct writes never share a stamp (a stamp names one write), so the
// value is derived from the stamp.
func randomFields(r *rand.Rand) Fields {
	names := []string{"a", "b", "c", DeletedField}
	out := Fields{}
	for _, n := range names {
		if r.IntN(3) == 0 {
			continue
		}
		h := HLC{Wall: int64(r.IntN(4)), Counter: uint32(r.IntN(3)), Node: []string{"x", "y"}[r.IntN(2)]}
		v := fmt.Sprintf(`"%s@%s"`, n, h)
		if n == DeletedField {
			v = []string{"true", "false"}[h.Wall%2]
		}
		out[n] = FieldState{Value: json.RawMessage(v), HLC: h, Origin: OriginUser}
	}
	return out
}

func equalFields(a, b Fields) bool {
	return maps.EqualFunc(a, b, func(x, y FieldState) bool {
		return string(x.Value) == string(y.Value) && x.HLC == y.HLC && x.Origin == y.Origin
	})
}

func TestFieldsMergeProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	merged := func(parts ...Fields) Fields {
		out := Fields{}
		for _, p := range parts {
			out.Merge(p)
		}
		return out
	}
	for i := 0; i < 5000; i++ {
		a, b, c := randomFields(r), randomFields(r), randomFields(r)
		// Commutative.
		if ab, ba := merged(a, b), merged(b, a); !equalFields(ab, ba) {
			t.Fatalf("not commutative:\n a=%v\n b=%v\n ab=%v\n ba=%v", a, b, ab, ba)
		}
		// Associative.
		if x, y := merged(merged(a, b), c), merged(a, merged(b, c)); !equalFields(x, y) {
			t.Fatalf("not associative: %v vs %v", x, y)
		}
		// Idempotent: merging the same fields again changes nothing.
		ab := merged(a, b)
		before := maps.Clone(ab)
		if changed := ab.Merge(b); len(changed) != 0 || !equalFields(ab, before) {
			t.Fatalf("not idempotent: merging %v again changed %v", b, changed)
		}
		if changed := ab.Merge(ab); len(changed) != 0 {
			t.Fatalf("merging a state into itself changed %v", changed)
		}
		// The result holds the newest stamp of every field.
		for name, f := range ab {
			for _, p := range []Fields{a, b} {
				if g, ok := p[name]; ok && g.HLC.After(f.HLC) {
					t.Fatalf("field %s: merged stamp %v older than input %v", name, f.HLC, g.HLC)
				}
			}
		}
		if n := ab.Newest(); !n.IsZero() && !slices.ContainsFunc(slices.Collect(maps.Values(ab)), func(f FieldState) bool { return f.HLC == n }) {
			t.Fatalf("Newest %v is no field's stamp", n)
		}
	}
}

func TestFieldsMergeEqualStampKeepsCurrent(t *testing.T) {
	h := HLC{Wall: 7, Node: "n"}
	dst := Fields{"a": {Value: json.RawMessage(`"current"`), HLC: h, Origin: OriginUser}}
	changed := dst.Merge(Fields{"a": {Value: json.RawMessage(`"other"`), HLC: h, Origin: OriginServer}})
	if len(changed) != 0 || string(dst["a"].Value) != `"current"` || dst["a"].Origin != OriginUser {
		t.Fatalf("equal stamp replaced the current value: changed %v, now %v", changed, dst["a"])
	}
}

func TestFieldsLiveAndNewest(t *testing.T) {
	tests := []struct {
		name   string
		f      Fields
		live   bool
		newest HLC
	}{
		{"empty", Fields{}, false, HLC{}},
		{"no tombstone", Fields{"a": fs("1", 3, 0, "n")}, false, HLC{Wall: 3, Node: "n"}},
		{"live", Fields{DeletedField: fs("false", 1, 0, "n"), "a": fs("1", 3, 1, "m")}, true, HLC{Wall: 3, Counter: 1, Node: "m"}},
		{"deleted", Fields{DeletedField: fs("true", 9, 0, "n"), "a": fs("1", 3, 0, "n")}, false, HLC{Wall: 9, Node: "n"}},
	}
	for _, tt := range tests {
		if got := tt.f.Live(); got != tt.live {
			t.Errorf("%s: Live = %v", tt.name, got)
		}
		if got := tt.f.Newest(); got != tt.newest {
			t.Errorf("%s: Newest = %v, want %v", tt.name, got, tt.newest)
		}
	}
}

func TestMutationStates(t *testing.T) {
	m := validMutation(OpPut)
	st := m.States()
	if len(st) != len(m.Fields) {
		t.Fatalf("States has %d fields, want %d", len(st), len(m.Fields))
	}
	for name, f := range st {
		if string(f.Value) != string(m.Fields[name]) || f.HLC != m.HLC || f.Origin != m.Origin {
			t.Errorf("field %s: %+v", name, f)
		}
	}
	if !st.Live() {
		t.Error("a put's states are not live")
	}
}
