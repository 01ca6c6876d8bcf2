package tpm

import (
	"strconv"
	"unicode/utf8"
)

// appendJSON appends r as encoding/json would marshal it, byte for byte.
// The init writes records with this instead of encoding/json, whose
// reflection machinery would be a tenth of PID 1; encoding/json still
// reads the log (ParseLog) and is the oracle in the tests.
func (r Record) appendJSON(b []byte) []byte {
	b = append(b, `{"pcr":`...)
	b = strconv.AppendInt(b, int64(r.PCR), 10)
	b = append(b, `,"digests":`...)
	if r.Digests == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, d := range r.Digests {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"hashAlg":`...)
			b = appendJSONString(b, d.HashAlg)
			b = append(b, `,"digest":`...)
			b = appendJSONString(b, d.Digest)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"content_type":`...)
	b = appendJSONString(b, r.ContentType)
	b = append(b, `,"content":{`...)
	sep := ""
	field := func(name string) {
		b = append(b, sep+`"`+name+`":`...)
		sep = ","
	}
	c := r.Content
	if c.String != "" {
		field("string")
		b = appendJSONString(b, c.String)
	}
	if c.BootID != "" {
		field("bootId")
		b = appendJSONString(b, c.BootID)
	}
	if c.Timestamp != 0 {
		field("timestamp")
		b = strconv.AppendUint(b, c.Timestamp, 10)
	}
	if c.EventType != "" {
		field("eventType")
		b = appendJSONString(b, c.EventType)
	}
	return append(b, "}}"...)
}

// appendJSONString quotes s with encoding/json's escapes (HTML-safe, invalid
// UTF-8 replaced, U+2028/U+2029 escaped).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\b':
				b = append(b, `\b`...)
			case c == '\f':
				b = append(b, `\f`...)
			case c == '\n':
				b = append(b, `\n`...)
			case c == '\r':
				b = append(b, `\r`...)
			case c == '\t':
				b = append(b, `\t`...)
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
