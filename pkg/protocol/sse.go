package protocol

import (
	"bufio"
	"io"
	"strings"
)

// ReadEvents parses a text/event-stream body, calling fn for each event
// (name "message" when none is given), until the body ends.
func ReadEvents(r io.Reader, fn func(event, data string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	event, data := "", []string(nil)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil || event != "" {
				if event == "" {
					event = "message"
				}
				fn(event, strings.Join(data, "\n"))
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
			// comment (keep-alive)
		default:
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
		}
	}
	return sc.Err()
}
