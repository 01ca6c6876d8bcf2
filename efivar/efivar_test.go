package efivar

import (
	"testing"
	"unicode/utf16"
)

func efiString(attrs uint32, s string, nul bool) []byte {
	b := []byte{byte(attrs), byte(attrs >> 8), byte(attrs >> 16), byte(attrs >> 24)}
	u := utf16.Encode([]rune(s))
	if nul {
		u = append(u, 0)
	}
	for _, c := range u {
		b = append(b, byte(c), byte(c>>8))
	}
	return b
}

func TestParseString(t *testing.T) {
	for _, nul := range []bool{true, false} {
		s, err := ParseString(efiString(6, "debian-2-0123456789ab.efi", nul))
		if err != nil || s != "debian-2-0123456789ab.efi" {
			t.Errorf("nul=%v: %q, %v", nul, s, err)
		}
	}
	for _, bad := range [][]byte{nil, {6, 0, 0}, {6, 0, 0, 0, 'a'}} {
		if _, err := ParseString(bad); err == nil {
			t.Errorf("ParseString(%x) accepted", bad)
		}
	}
}

func FuzzParseString(f *testing.F) {
	f.Add(efiString(6, "debian-2-0123456789ab.efi", true))
	f.Fuzz(func(t *testing.T, b []byte) { ParseString(b) })
}
