package secureboot

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeEfivars makes an efivarfs-like directory with SetupMode and
// SecureBoot set.
func fakeEfivars(t *testing.T, setupMode, secureBoot byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, v := range map[string]byte{"SetupMode": setupMode, "SecureBoot": secureBoot} {
		if err := os.WriteFile(varPath(dir, name, GlobalVariable), []byte{6, 0, 0, 0, v}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestEnrollAndStatus(t *testing.T) {
	k, err := CreateKeys(t.TempDir(), "cfsboot test")
	if err != nil {
		t.Fatal(err)
	}
	vars, err := k.Variables(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := fakeEfivars(t, 1, 0)
	s, err := ReadStatus(dir)
	if err != nil || !s.SetupMode || s.SecureBoot || len(s.PK)+len(s.KEK)+len(s.DB) != 0 {
		t.Fatalf("status before enrolling: %+v, %v", s, err)
	}
	if err := Enroll(dir, vars); err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		data, err := os.ReadFile(varPath(dir, v.Name, v.Vendor))
		if err != nil {
			t.Fatal(err)
		}
		if binary.LittleEndian.Uint32(data) != 0x27 || !bytes.Equal(data[4:], v.Auth) {
			t.Errorf("%s: written %d bytes, attributes %#x", v.Name, len(data), binary.LittleEndian.Uint32(data))
		}
	}
	// A firmware would now hold the signature lists themselves: emulate it.
	for _, v := range vars {
		if err := os.WriteFile(varPath(dir, v.Name, v.Vendor), append([]byte{0x27, 0, 0, 0}, v.ESL...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err = ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.PK) != 1 || s.PK[0].Cert.Subject.CommonName != "cfsboot test PK" || len(s.KEK) != 1 || len(s.DB) != 1 || s.DB[0].Owner != k.Owner {
		t.Errorf("status after enrolling: %+v", s)
	}

	user := fakeEfivars(t, 0, 1)
	if err := Enroll(user, vars); err == nil || !strings.Contains(err.Error(), "not in setup mode") {
		t.Errorf("enrolling in user mode: %v", err)
	}
	if entries, _ := os.ReadDir(user); len(entries) != 2 {
		t.Errorf("enrolling in user mode wrote %d files", len(entries)-2)
	}
	if err := Enroll(t.TempDir(), vars); err == nil {
		t.Error("enrolled without a SetupMode variable")
	}
	if _, err := ReadStatus(filepath.Join(dir, "missing")); err == nil {
		t.Error("status without efivarfs")
	}
}

// FuzzParseSignatureLists: the signature list parser never panics.
func FuzzParseSignatureLists(f *testing.F) {
	f.Add(SignatureList(GlobalVariable, []byte("not a certificate")))
	f.Add(make([]byte, eslHeaderSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseSignatureLists(data)
	})
}
