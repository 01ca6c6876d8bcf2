package efivar

import (
	"errors"
	"os"
	"path/filepath"
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

// TestLoaderString reads systemd-boot's string variables from a directory
// laid out like efivarfs.
func TestLoaderString(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name+"-"+LoaderGUID), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v := Vars{Dir: dir}
	for _, nul := range []bool{true, false} {
		write(LoaderEntrySelected, efiString(6, "debian-2-0123456789ab.efi", nul))
		if s, err := v.LoaderString(LoaderEntrySelected); err != nil || s != "debian-2-0123456789ab.efi" {
			t.Errorf("nul=%v: %q, %v", nul, s, err)
		}
	}
	for _, bad := range [][]byte{{6, 0, 0}, {6, 0, 0, 0, 'a'}} {
		write(LoaderBootCountPath, bad)
		if _, err := v.LoaderString(LoaderBootCountPath); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
	if _, err := v.LoaderString("LoaderNothing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent variable: %v", err)
	}
}

func FuzzDecodeString(f *testing.F) {
	f.Add(efiString(6, "debian-2-0123456789ab.efi", true)[4:])
	f.Fuzz(func(t *testing.T, b []byte) { decodeString(b) })
}
