package protocol

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestHLCStringRoundTrip(t *testing.T) {
	tests := []struct {
		h    HLC
		text string
	}{
		{HLC{}, ""},
		{HLC{Wall: 0, Counter: 0, Node: "a"}, "0000000000000-000000-a"},
		{HLC{Wall: 1, Counter: 1, Node: "n"}, "0000000000001-000001-n"},
		{HLC{Wall: 1_700_000_000_000, Counter: 42, Node: "c0123abc"}, "1700000000000-000042-c0123abc"},
		{HLC{Wall: MaxWall, Counter: MaxCounter, Node: "server"}, "9999999999999-999999-server"},
		{HLC{Wall: 123, Counter: 0, Node: "A-z_0.9:x"}, "0000000000123-000000-A-z_0.9:x"},
		{HLC{Wall: 5, Counter: 7, Node: strings.Repeat("n", MaxNodeLen)}, "0000000000005-000007-" + strings.Repeat("n", MaxNodeLen)},
	}
	for _, tt := range tests {
		if got := tt.h.String(); got != tt.text {
			t.Errorf("%#v.String() = %q, want %q", tt.h, got, tt.text)
		}
		back, err := ParseHLC(tt.text)
		if err != nil {
			t.Errorf("ParseHLC(%q): %v", tt.text, err)
			continue
		}
		if back != tt.h {
			t.Errorf("ParseHLC(%q) = %#v, want %#v", tt.text, back, tt.h)
		}
		if tt.text != "" && len(tt.text) != hlcTextBase+len(tt.h.Node) {
			t.Errorf("%q: text is %d bytes, want the fixed-width prefix %d + node", tt.text, len(tt.text), hlcTextBase)
		}
	}
}

func TestHLCZero(t *testing.T) {
	var z HLC
	if !z.IsZero() || z.String() != "" {
		t.Fatalf("zero HLC: IsZero %v, String %q", z.IsZero(), z.String())
	}
	for _, h := range []HLC{{Node: "a"}, {Wall: 1}, {Counter: 1}} {
		if h.IsZero() {
			t.Errorf("%#v reports zero", h)
		}
	}
	// The zero stamp sorts before every real stamp, also in text form.
	for _, h := range []HLC{{Node: "a"}, {Wall: 1, Node: "a"}, {Counter: 1, Node: "a"}} {
		if !h.After(z) || z.Compare(h) != -1 || z.String() >= h.String() {
			t.Errorf("zero does not sort before %v", h)
		}
	}
	got, err := ParseHLC("")
	if err != nil || !got.IsZero() {
		t.Fatalf(`ParseHLC("") = %#v, %v`, got, err)
	}
}

func TestHLCCompare(t *testing.T) {
	tests := []struct {
		a, b HLC
		want int
	}{
		{HLC{Wall: 1, Node: "a"}, HLC{Wall: 2, Node: "a"}, -1},
		{HLC{Wall: 2, Node: "a"}, HLC{Wall: 1, Counter: 999, Node: "z"}, 1},
		{HLC{Wall: 1, Counter: 1, Node: "z"}, HLC{Wall: 1, Counter: 2, Node: "a"}, -1},
		{HLC{Wall: 1, Counter: 1, Node: "a"}, HLC{Wall: 1, Counter: 1, Node: "b"}, -1},
		{HLC{Wall: 1, Counter: 1, Node: "b"}, HLC{Wall: 1, Counter: 1, Node: "ab"}, 1},
		{HLC{Wall: 1, Counter: 1, Node: "a"}, HLC{Wall: 1, Counter: 1, Node: "a"}, 0},
		{HLC{Wall: 1, Counter: 1, Node: "a"}, HLC{Wall: 1, Counter: 1, Node: "a-"}, -1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Compare(tt.a); got != -tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
		if got := tt.a.After(tt.b); got != (tt.want > 0) {
			t.Errorf("%v.After(%v) = %v", tt.a, tt.b, got)
		}
		if got := strings.Compare(tt.a.String(), tt.b.String()); got != tt.want {
			t.Errorf("text order of %q, %q = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// randomHLC draws stamps that often share wall, counter or node prefix, so
// the tie-breaking parts of the order get exercised.
func randomHLC(r *rand.Rand) HLC {
	walls := []int64{0, 1, 9, 10, 99, 100, 1_700_000_000_000, 1_700_000_000_001, MaxWall - 1, MaxWall}
	counters := []uint32{0, 1, 9, 10, 99999, 100000, MaxCounter - 1, MaxCounter}
	nodes := []string{"a", "b", "ab", "a-", "a.", "A", "Z", "0", "9", "_", ":", "server", "c0", "c01", "c1"}
	h := HLC{Wall: walls[r.IntN(len(walls))], Counter: counters[r.IntN(len(counters))], Node: nodes[r.IntN(len(nodes))]}
	if r.IntN(2) == 0 {
		h.Wall = r.Int64N(MaxWall + 1)
	}
	if r.IntN(2) == 0 {
		h.Counter = uint32(r.IntN(int(MaxCounter) + 1))
	}
	if r.IntN(4) == 0 {
		const alphabet = "abcAB09_.:-"
		b := make([]byte, 1+r.IntN(MaxNodeLen))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		h.Node = string(b)
	}
	return h
}

func TestHLCTextOrderEqualsCompare(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50_000; i++ {
		a, b := randomHLC(r), randomHLC(r)
		if r.IntN(20) == 0 {
			a = HLC{}
		}
		as, bs := a.String(), b.String()
		if got, want := strings.Compare(as, bs), a.Compare(b); got != want {
			t.Fatalf("strings.Compare(%q, %q) = %d, HLC Compare = %d", as, bs, got, want)
		}
		if !a.IsZero() && len(as) != hlcTextBase+len(a.Node) {
			t.Fatalf("%q is not fixed width", as)
		}
		back, err := ParseHLC(as)
		if err != nil || back != a {
			t.Fatalf("ParseHLC(%q) = %#v, %v; want %#v", as, back, err, a)
		}
	}
	// Sorting text forms and sorting stamps give the same order.
	hs := make([]HLC, 2000)
	for i := range hs {
		hs[i] = randomHLC(r)
	}
	byStamp := slices.Clone(hs)
	slices.SortFunc(byStamp, HLC.Compare)
	texts := make([]string, len(hs))
	for i, h := range hs {
		texts[i] = h.String()
	}
	slices.Sort(texts)
	for i := range texts {
		if texts[i] != byStamp[i].String() {
			t.Fatalf("position %d: text sort %q, stamp sort %q", i, texts[i], byStamp[i])
		}
	}
}

func TestParseHLCRejectsMalformed(t *testing.T) {
	bad := []string{
		"x",
		"0",
		"0000000000001-000001-",     // empty node
		"0000000000001-000001",      // no node separator
		"000000000001-000001-a",     // 12-digit wall
		"00000000000001-000001-a",   // 14-digit wall
		"0000000000001-00001-a",     // 5-digit counter
		"0000000000001-0000001-a",   // 7-digit counter
		"0000000000001_000001-a",    // wrong separator
		"0000000000001-000001_a",    // wrong separator
		"-000000000001-000001-a",    // sign
		"+000000000001-000001-a",    // sign
		"000000000000a-000001-a",    // hex digit
		"0000000000001-00000x-a",    // letter in counter
		"0000000000001- 00001-a",    // space
		" 0000000000001-000001-a",   // leading space
		"0000000000001-000001-a b",  // space in node
		"0000000000001-000001-a/b",  // slash in node
		"0000000000001-000001-é",    // non-ASCII node
		"0000000000001-000001-\x00", // NUL in node
		"0000000000001-000001-" + strings.Repeat("n", MaxNodeLen+1), // node too long
		"１７００000000000-000001-a",                                    // full-width digits
	}
	for _, s := range bad {
		if h, err := ParseHLC(s); err == nil {
			t.Errorf("ParseHLC(%q) = %#v, want an error", s, h)
		}
		var h HLC
		if err := h.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", s)
		}
	}
}

func TestHLCJSON(t *testing.T) {
	in := struct {
		A HLC `json:"a"`
		Z HLC `json:"z"`
	}{A: HLC{Wall: 1_700_000_000_000, Counter: 3, Node: "c1"}}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"a":"1700000000000-000003-c1","z":""}` {
		t.Fatalf("json = %s", raw)
	}
	out := in
	out.A = HLC{}
	if err := json.Unmarshal(raw, &out); err != nil || out != in {
		t.Fatalf("unmarshal = %#v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"a":"yesterday"}`), &out); err == nil {
		t.Fatal("a malformed stamp decoded")
	}
}

// fakeWall is a wall clock the test sets by hand.
type fakeWall struct{ ms int64 }

func (w *fakeWall) now() int64 { return w.ms }

func TestClockNowStrictlyIncreasing(t *testing.T) {
	tests := []struct {
		name  string
		walls []int64 // the wall clock before each Now
	}{
		{"advancing", []int64{100, 101, 102, 200}},
		{"standing still", []int64{100, 100, 100, 100, 100}},
		{"going backwards", []int64{1000, 999, 500, 0, 1000, 1001}},
		{"jumping around", []int64{50, 5000, 10, 5000, 5000, 4999, 6000, 1}},
		{"before 1970", []int64{-5, -5, -10, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &fakeWall{}
			c := NewClock("n1", w.now)
			var prev HLC
			for i, ms := range tt.walls {
				w.ms = ms
				h := c.Now()
				if !h.After(prev) {
					t.Fatalf("step %d (wall %d): %v is not after %v", i, ms, h, prev)
				}
				if h.Node != "n1" {
					t.Fatalf("stamp node %q", h.Node)
				}
				if ms > prev.Wall && h.Wall != ms {
					t.Fatalf("step %d: wall ahead of the clock (%d) but stamp wall is %d", i, ms, h.Wall)
				}
				if _, err := ParseHLC(h.String()); err != nil {
					t.Fatalf("step %d: issued an unparsable stamp %q: %v", i, h, err)
				}
				if c.Last() != h {
					t.Fatalf("Last() = %v, want %v", c.Last(), h)
				}
				prev = h
			}
		})
	}
}

func TestClockCounterOverflowAdvancesWall(t *testing.T) {
	w := &fakeWall{ms: 1000}
	c := NewClock("n", w.now)
	c.Observe(HLC{Wall: 1000, Counter: MaxCounter - 1, Node: "other"})
	h := c.Now()
	if h != (HLC{Wall: 1000, Counter: MaxCounter, Node: "n"}) {
		t.Fatalf("before overflow: %v", h)
	}
	h2 := c.Now()
	if h2 != (HLC{Wall: 1001, Counter: 0, Node: "n"}) {
		t.Fatalf("at overflow: got %v, want wall 1001 counter 0", h2)
	}
	if !h2.After(h) || h2.String() <= h.String() {
		t.Fatalf("%v not after %v", h2, h)
	}
	// The wall clock catching up later is fine: still increasing.
	w.ms = 1001
	if h3 := c.Now(); h3 != (HLC{Wall: 1001, Counter: 1, Node: "n"}) {
		t.Fatalf("after overflow: %v", h3)
	}
}

// At the very end of the representable range the clock must keep issuing
// stamps that parse (a stamp that does not parse would corrupt every store
// that saved it); it saturates instead of overflowing the fixed width.
func TestClockNeverIssuesUnparsableStamps(t *testing.T) {
	for _, tt := range []struct {
		name     string
		wall     int64
		observed HLC
	}{
		{"observed the last stamp", 1000, HLC{Wall: MaxWall, Counter: MaxCounter, Node: "evil"}},
		{"observed the last wall", 1000, HLC{Wall: MaxWall, Counter: MaxCounter - 1, Node: "evil"}},
		{"wall clock past the range", MaxWall + 12345, HLC{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &fakeWall{ms: tt.wall}
			c := NewClock("n", w.now)
			c.Observe(tt.observed)
			var prev HLC
			for i := 0; i < 3; i++ {
				h := c.Now()
				if _, err := ParseHLC(h.String()); err != nil {
					t.Fatalf("Now #%d issued %q, which does not parse: %v", i, h, err)
				}
				if h.Compare(prev) < 0 {
					t.Fatalf("Now #%d went backwards: %v after %v", i, h, prev)
				}
				prev = h
			}
		})
	}
}

func TestClockObserve(t *testing.T) {
	tests := []struct {
		name     string
		wall     int64
		observed HLC
	}{
		{"remote ahead", 1000, HLC{Wall: 5000, Counter: 3, Node: "r"}},
		{"remote same ms higher counter", 1000, HLC{Wall: 1000, Counter: 77, Node: "r"}},
		{"remote same ms, node sorts after ours", 1000, HLC{Wall: 1000, Counter: 0, Node: "zzz"}},
		{"remote behind", 1000, HLC{Wall: 10, Counter: 999, Node: "r"}},
		{"remote at counter max", 1000, HLC{Wall: 4000, Counter: MaxCounter, Node: "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &fakeWall{ms: tt.wall}
			c := NewClock("a", w.now)
			first := c.Now()
			c.Observe(tt.observed)
			h := c.Now()
			if !h.After(tt.observed) {
				t.Fatalf("after observing %v, Now = %v (not newer)", tt.observed, h)
			}
			if !h.After(first) {
				t.Fatalf("Now = %v not after the earlier %v", h, first)
			}
			if h.Node != "a" {
				t.Fatalf("Now stamped node %q", h.Node)
			}
			// Observing an older stamp never moves the clock back.
			last := c.Last()
			c.Observe(HLC{Wall: 1, Node: "old"})
			if c.Last() != last {
				t.Fatalf("observing an old stamp moved Last from %v to %v", last, c.Last())
			}
		})
	}
}

func TestClockConcurrentNowIsUnique(t *testing.T) {
	w := &fakeWall{ms: 1000}
	c := NewClock("n", w.now)
	const goroutines, each = 8, 500
	out := make([][]HLC, goroutines)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				out[g] = append(out[g], c.Now())
			}
		}()
	}
	wg.Wait()
	seen := map[HLC]bool{}
	for g := range out {
		for i, h := range out[g] {
			if seen[h] {
				t.Fatalf("stamp %v issued twice", h)
			}
			seen[h] = true
			if i > 0 && !h.After(out[g][i-1]) {
				t.Fatalf("goroutine %d: %v not after %v", g, h, out[g][i-1])
			}
		}
	}
}

func TestValidateNode(t *testing.T) {
	for _, ok := range []string{"a", "server", "c0123456789abcdef", "A_b.c:d-e", strings.Repeat("x", MaxNodeLen)} {
		if err := ValidateNode(ok); err != nil {
			t.Errorf("ValidateNode(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxNodeLen+1), "a b", "a/b", "é", "a\n", "a\x00"} {
		if err := ValidateNode(bad); err == nil {
			t.Errorf("ValidateNode(%q) accepted", bad)
		}
	}
}

// FuzzParseHLC: ParseHLC never panics, and whatever it accepts is in the
// canonical form: it re-encodes to exactly the same text.
func FuzzParseHLC(f *testing.F) {
	for _, s := range []string{
		"",
		"0000000000000-000000-a",
		"1700000000000-000042-c0123abc",
		"9999999999999-999999-server",
		"0000000000123-000000-A-z_0.9:x",
		"0000000000001-000001-" + strings.Repeat("n", MaxNodeLen),
		"0000000000001-000001-" + strings.Repeat("n", MaxNodeLen+1),
		"0000000000001-000001-",
		"000000000001-000001-a",
		"-000000000001-000001-a",
		"0000000000001-00000x-a",
		"0000000000001-000001-a b",
		"0000000000001-000001-é",
		"x",
		"\xff\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHLC(s)
		if err != nil {
			return
		}
		if got := h.String(); got != s {
			t.Fatalf("ParseHLC(%q) = %#v, which encodes as %q", s, h, got)
		}
		if h.Wall < 0 || h.Wall > MaxWall || h.Counter > MaxCounter {
			t.Fatalf("ParseHLC(%q) = %#v: out of range", s, h)
		}
		var u HLC
		if err := u.UnmarshalText([]byte(s)); err != nil || u != h {
			t.Fatalf("UnmarshalText(%q) = %#v, %v; ParseHLC gave %#v", s, u, err, h)
		}
		if s != "" && ValidateNode(h.Node) != nil {
			t.Fatalf("ParseHLC(%q) accepted node %q", s, h.Node)
		}
	})
}
