package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A pull page of 10,000 records is a few megabytes of JSON; decoding it
// with encoding/json scans it three times byte by byte (validate, find the
// value, decode) and builds it by reflection. DecodePullResponse reads it
// in one pass with the scanner of the Fields codec.

// DecodePullResponse decodes a pull page, accepting what json.Unmarshal
// accepts for a PullResponse (unknown keys are ignored, keys match
// case-insensitively). The field values alias one private copy of data.
func DecodePullResponse(data []byte) (*PullResponse, error) {
	s := scanner{b: bytes.Clone(data)}
	var p PullResponse
	err := s.object(func(key string) error {
		switch matchKey(key, "changes", "cursor", "hasMore") {
		case "changes":
			return s.recordStates(&p.Changes)
		case "cursor":
			return s.stringInto(&p.Cursor)
		case "hasMore":
			switch {
			case s.literal("true"):
				p.HasMore = true
			case s.literal("false"):
				p.HasMore = false
			case s.literal("null"):
			default:
				return s.fail("hasMore: want a boolean")
			}
			return nil
		default:
			return s.skipValue()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("pull page: %w", err)
	}
	if err := s.end(); err != nil {
		return nil, fmt.Errorf("pull page: %w", err)
	}
	return &p, nil
}

// Unmarshal decodes data into v as json.Unmarshal does, with the one-pass
// decoder for a *PullResponse.
func Unmarshal(data []byte, v any) error {
	if p, ok := v.(*PullResponse); ok {
		got, err := DecodePullResponse(data)
		if err != nil {
			return err
		}
		*p = *got
		return nil
	}
	return json.Unmarshal(data, v)
}

func (s *scanner) recordStates(into *[]RecordState) error {
	s.space()
	if s.literal("null") {
		*into = nil
		return nil
	}
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		return s.fail("changes: want an array")
	}
	s.i++
	out := (*into)[:0]
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		if out == nil {
			out = []RecordState{}
		}
		*into = out
		return nil
	}
	for {
		s.space()
		var rs RecordState
		if err := s.recordState(&rs); err != nil {
			return fmt.Errorf("change %d: %w", len(out), err)
		}
		out = append(out, rs)
		s.space()
		if s.i >= len(s.b) {
			return s.fail("unterminated array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			*into = out
			return nil
		default:
			return s.fail("want ',' or ']'")
		}
	}
}

func (s *scanner) recordState(rs *RecordState) error {
	if s.literal("null") {
		return nil
	}
	return s.object(func(key string) error {
		switch matchKey(key, "collection", "id", "fields") {
		case "collection":
			return s.stringInto(&rs.Collection)
		case "id":
			return s.stringInto(&rs.ID)
		case "fields":
			if s.literal("null") {
				rs.Fields = nil
				return nil
			}
			f, err := s.fields()
			rs.Fields = f
			return err
		default:
			return s.skipValue()
		}
	})
}

// stringInto reads a string (or null, which leaves *into alone).
func (s *scanner) stringInto(into *string) error {
	if s.literal("null") {
		return nil
	}
	raw, err := s.str()
	if err != nil {
		return err
	}
	*into = string(raw)
	return nil
}

// matchKey returns the name key stands for, matching case-insensitively as
// encoding/json does; "" when it is none of them.
func matchKey(key string, names ...string) string {
	for _, n := range names {
		if key == n || strings.EqualFold(key, n) {
			return n
		}
	}
	return ""
}

// WalkObject checks that data is one JSON object and calls member with
// each key (in order, duplicates included) and its value's bytes (aliasing
// data). It stops at member's first error and returns it.
func WalkObject(data []byte, member func(key string, value []byte) error) error {
	s := scanner{b: data}
	s.space()
	if s.i < len(s.b) && s.b[s.i] != '{' {
		return errors.New("not a JSON object")
	}
	err := s.object(func(key string) error {
		v, err := s.value()
		if err != nil {
			return err
		}
		return member(key, v)
	})
	if err != nil {
		return err
	}
	return s.end()
}
