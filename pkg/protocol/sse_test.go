package protocol

import (
	"strings"
	"testing"
)

func TestReadEventsParsesServerSentEvents(t *testing.T) {
	stream := ": ping\n\n" +
		"event: poke\ndata: {\"cursor\":\"7\"}\n\n" +
		"data: first\ndata: second\n\n" +
		"event: poke\r\ndata:{\"cursor\":\"8\"}\r\n\r\n" +
		"id: 3\nretry: 100\nevent: other\n\n" +
		"event: poke\ndata: unterminated"
	type ev struct{ name, data string }
	var got []ev
	if err := ReadEvents(strings.NewReader(stream), func(name, data string) { got = append(got, ev{name, data}) }); err != nil {
		t.Fatal(err)
	}
	want := []ev{{"poke", `{"cursor":"7"}`}, {"message", "first\nsecond"}, {"poke", `{"cursor":"8"}`}, {"other", ""}}
	if len(got) != len(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d = %q, want %q", i, got[i], want[i])
		}
	}
}
