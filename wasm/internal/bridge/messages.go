package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// request is one message from the page: an id (echoed in the answer), an
// op name and its arguments.
type request struct {
	ID   json.RawMessage `json:"id"`
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args"`
}

// answer is the reply to one request: result or error, never both.
type answer struct {
	ID     json.RawMessage `json:"id"`
	Result any             `json:"result,omitempty"`
	Error  *errorBody      `json:"error,omitempty"`
}

// event is a message the page did not ask for.
type event struct {
	Event string `json:"event"`
	Data  any    `json:"data"`
}

// errorBody is the typed error the JS client turns into an Error with .code.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// maxMessageBytes bounds one message from the page (a record is at most
// 1 MiB; imports and migrations carry many).
const maxMessageBytes = 64 << 20

// decodeRequest parses the envelope of a page message. It fails on
// anything but a JSON object with a numeric or string id, a string op and
// an optional object of arguments.
func decodeRequest(msg string) (request, error) {
	var r request
	if msg == "" {
		// The worker's main passes "" for a message that is not a string.
		return r, errors.New("empty message, or not a string: post one JSON string {\"id\", \"op\", \"args\"} per request")
	}
	if len(msg) > maxMessageBytes {
		return r, fmt.Errorf("message is %d bytes, the limit is %d", len(msg), maxMessageBytes)
	}
	// One pass over the message (it can carry megabytes: an import, a
	// pull page), leaving args raw for the op to decode.
	err := protocol.WalkObject([]byte(msg), func(key string, value []byte) error {
		switch key {
		case "id":
			r.ID = json.RawMessage(value)
		case "op":
			r.Op = ""
			if string(value) != "null" {
				if err := json.Unmarshal(value, &r.Op); err != nil {
					return errors.New("op must be a string")
				}
			}
		case "args":
			r.Args = json.RawMessage(value)
		default:
			return fmt.Errorf("unknown key %s", quote(key))
		}
		return nil
	})
	if !validID(r.ID) {
		// An id the page could not match an answer to (an object, true,
		// null): the failure is posted as an error event instead.
		bad := len(r.ID) > 0
		r.ID = nil
		if err == nil {
			if bad {
				err = errors.New("request id must be a number or a string")
			} else {
				err = errors.New("request has no id (a number or a string)")
			}
		}
	}
	if err != nil {
		return r, fmt.Errorf("not a request message (one JSON string {\"id\", \"op\", \"args\"}): %v", err)
	}
	if r.Op == "" {
		return r, errors.New("request has no op")
	}
	if len(r.Args) == 0 || string(r.Args) == "null" {
		r.Args = json.RawMessage("{}")
	}
	if r.Args[0] != '{' {
		return r, errors.New("request args must be an object")
	}
	return r, nil
}

// validID reports whether id (raw JSON) is a number or a string.
func validID(id json.RawMessage) bool {
	return len(id) > 0 && (id[0] == '"' || id[0] == '-' || id[0] >= '0' && id[0] <= '9')
}

// decodeArgs decodes an op's arguments strictly: unknown keys are refused
// (a typo must not be ignored), numbers stay json.Number so integers are
// exact.
func decodeArgs(raw json.RawMessage, into any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("bad arguments: %v", err)
	}
	return nil
}
