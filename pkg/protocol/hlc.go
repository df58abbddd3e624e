package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// HLC is a hybrid-logical-clock stamp: wall time in Unix milliseconds, a
// logical counter that orders stamps within one millisecond, and the node
// (client id, or "server") that issued it. Stamps are totally ordered by
// (Wall, Counter, Node). The zero HLC means "never written" and sorts before
// every real stamp.
type HLC struct {
	Wall    int64
	Counter uint32
	Node    string
}

// Bounds of an HLC's parts. Wall is capped at 13 decimal digits (the year
// 2286) and Counter at 6, so the text form has a fixed-width prefix and
// byte-wise string comparison equals HLC order.
const (
	MaxWall     int64  = 9_999_999_999_999
	MaxCounter  uint32 = 999_999
	MaxNodeLen         = 64
	hlcTextBase        = 13 + 1 + 6 + 1 // "wall-counter-" before the node
)

// IsZero reports whether h is the zero stamp ("never written").
func (h HLC) IsZero() bool { return h.Wall == 0 && h.Counter == 0 && h.Node == "" }

// Compare returns -1, 0 or +1 as h sorts before, equal to or after o.
func (h HLC) Compare(o HLC) int {
	switch {
	case h.Wall != o.Wall:
		return cmp(h.Wall < o.Wall)
	case h.Counter != o.Counter:
		return cmp(h.Counter < o.Counter)
	default:
		return strings.Compare(h.Node, o.Node)
	}
}

func cmp(less bool) int {
	if less {
		return -1
	}
	return 1
}

// After reports whether h is strictly newer than o.
func (h HLC) After(o HLC) bool { return h.Compare(o) > 0 }

// String returns the canonical text form "WWWWWWWWWWWWW-CCCCCC-node"; text
// forms compare byte-wise in the same order as Compare. The zero HLC is "".
func (h HLC) String() string {
	var b [hlcTextBase + MaxNodeLen]byte
	return string(h.AppendText(b[:0]))
}

// AppendText appends the canonical text form (String) to dst.
func (h HLC) AppendText(dst []byte) []byte {
	if h.IsZero() {
		return dst
	}
	base := len(dst)
	dst = strconv.AppendInt(dst, h.Wall, 10)
	dst = padLeft(dst, base, 13)
	dst = append(dst, '-')
	start := len(dst)
	dst = strconv.AppendUint(dst, uint64(h.Counter), 10)
	dst = padLeft(dst, start, 6)
	dst = append(dst, '-')
	return append(dst, h.Node...)
}

// padLeft left-pads b[start:] with zeros to width digits.
func padLeft(b []byte, start, width int) []byte {
	n := len(b) - start
	if n >= width {
		return b
	}
	pad := width - n
	b = append(b, make([]byte, pad)...)
	copy(b[start+pad:], b[start:start+n])
	for i := start; i < start+pad; i++ {
		b[i] = '0'
	}
	return b
}

// ParseHLC parses the canonical text form. The empty string parses to the
// zero HLC. It fails on anything that String would not have produced.
func ParseHLC(s string) (HLC, error) {
	if s == "" {
		return HLC{}, nil
	}
	if len(s) < hlcTextBase+1 || s[13] != '-' || s[20] != '-' {
		return HLC{}, fmt.Errorf("hlc %q: want WWWWWWWWWWWWW-CCCCCC-node", truncate(s))
	}
	wall, err := parseDigits(s[:13])
	if err != nil {
		return HLC{}, fmt.Errorf("hlc %q: wall: %w", truncate(s), err)
	}
	counter, err := parseDigits(s[14:20])
	if err != nil {
		return HLC{}, fmt.Errorf("hlc %q: counter: %w", truncate(s), err)
	}
	node := s[21:]
	if err := ValidateNode(node); err != nil {
		return HLC{}, fmt.Errorf("hlc %q: %w", truncate(s), err)
	}
	return HLC{Wall: wall, Counter: uint32(counter), Node: node}, nil
}

func parseDigits(s string) (int64, error) {
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a decimal digit at %d", i)
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// ValidateNode checks a node id: 1 to 64 characters of [A-Za-z0-9_.:-].
func ValidateNode(node string) error {
	if node == "" || len(node) > MaxNodeLen {
		return fmt.Errorf("node id must be 1 to %d characters", MaxNodeLen)
	}
	for i := 0; i < len(node); i++ {
		c := node[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return fmt.Errorf("node id has a character outside [A-Za-z0-9_.:-]")
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// MarshalText encodes the canonical text form, so an HLC is a JSON string.
func (h HLC) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses the canonical text form.
func (h *HLC) UnmarshalText(b []byte) error {
	v, err := ParseHLC(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// Clock issues HLC stamps for one node. Every stamp it issues is newer than
// every stamp it issued or observed before, whatever the wall clock does.
// A Clock is safe for concurrent use.
type Clock struct {
	mu   sync.Mutex
	node string
	now  func() int64
	last HLC
}

// NewClock returns a clock for node that reads wall time (Unix ms) from now.
func NewClock(node string, now func() int64) *Clock {
	return &Clock{node: node, now: now}
}

// Now returns a fresh stamp, strictly newer than any stamp issued or
// observed so far (except at MaxWall/MaxCounter, where it saturates).
func (c *Clock) Now() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Stamps stay within MaxWall/MaxCounter: a stamp outside them has no
	// fixed-width text form, does not parse, and would corrupt every store
	// that saved it. At the very end of the range (reachable only by
	// observing a stamp dated there) the clock saturates instead.
	wall := min(c.now(), MaxWall)
	next := HLC{Node: c.node}
	switch {
	case wall > c.last.Wall:
		next.Wall = wall
	case c.last.Counter < MaxCounter:
		next.Wall, next.Counter = c.last.Wall, c.last.Counter+1
	case c.last.Wall < MaxWall:
		next.Wall = c.last.Wall + 1
	default:
		next.Wall, next.Counter = MaxWall, MaxCounter
	}
	c.last = next
	return next
}

// Observe advances the clock past h, so the next stamp issued sorts after it.
func (c *Clock) Observe(h HLC) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.Wall > c.last.Wall || h.Wall == c.last.Wall && h.Counter > c.last.Counter {
		c.last = HLC{Wall: h.Wall, Counter: h.Counter, Node: c.node}
	}
}

// Last returns the newest stamp issued or observed (for persistence).
func (c *Clock) Last() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Node returns the node id the clock stamps with.
func (c *Clock) Node() string { return c.node }
