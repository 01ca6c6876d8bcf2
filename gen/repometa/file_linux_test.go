package repometa

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"cfsboot/verity"
)

func TestLoadSave(t *testing.T) {
	dir := t.TempDir()
	if m, secure, err := Load(dir); m != nil || secure || err != nil {
		t.Fatalf("no meta.json: %v %v %v", m, secure, err)
	}
	m, _ := New(verity.SHA512, Formats{Default: FormatV1, Extra: []int{2}})
	if err := Save(dir, m, false); err != nil {
		t.Fatal(err)
	}
	back, secure, err := Load(dir)
	if err != nil || secure || back.Algorithm != verity.SHA512 || !reflect.DeepEqual(back.EROFSFormats().All(), []int{1, 2}) {
		t.Fatalf("Load: %+v %v %v", back, secure, err)
	}
	if err := Save(dir, m, false); !errors.Is(err, os.ErrExist) {
		t.Errorf("second Save: %v, want it refused (meta.json exists)", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("leftover files: %v", entries)
	}
	// The host kernel has no fs-verity: sealing must fail, never pass unsealed.
	other := t.TempDir()
	if err := Save(other, m, true); err == nil {
		if _, secure, err := Load(other); err != nil || !secure {
			t.Errorf("sealed meta.json loads as secure=%v, %v", secure, err)
		}
	} else if !errors.Is(err, verity.ErrNotSupported) {
		t.Errorf("Save sealed: %v", err)
	} else if _, err := os.Stat(filepath.Join(other, FileName)); !os.IsNotExist(err) {
		t.Errorf("a failed sealed Save left meta.json: %v", err)
	}
	if err := os.WriteFile(filepath.Join(other, FileName), []byte(`{"version":7,"algorithm":"fsverity-sha256-12"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(other); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("Load of version 7: %v", err)
	}
}
