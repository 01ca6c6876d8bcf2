package secureboot

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestGUID(t *testing.T) {
	g, err := ParseGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c}
	if !bytes.Equal(g[:], want) || g.String() != "8be4df61-93ca-11d2-aa0d-00e098032b8c" {
		t.Errorf("%x %s", g[:], g)
	}
	for _, bad := range []string{"", "8be4df61-93ca-11d2-aa0d", "8be4df61-93ca-11d2-aa0d-00e098032b8z"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestCreateLoadKeys(t *testing.T) {
	dir := t.TempDir()
	k, err := CreateKeys(dir, "cfsboot test")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"GUID", "keys/PK/PK.key", "keys/PK/PK.pem", "keys/KEK/KEK.key", "keys/KEK/KEK.pem", "keys/db/db.key", "keys/db/db.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("sbctl layout: %v", err)
		}
	}
	if k.Owner[7]>>4 != 4 {
		t.Errorf("owner GUID %s is not a version 4 UUID", k.Owner)
	}
	l, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Owner != k.Owner || !l.DB.Cert.Equal(k.DB.Cert) || !l.PK.Key.Equal(k.PK.Key) || l.KEK.Cert.Subject.CommonName != "cfsboot test KEK" {
		t.Error("loaded keys differ from the created ones")
	}
	if _, err := CreateKeys(dir, "again"); err == nil {
		t.Error("CreateKeys overwrote existing keys")
	}
}

// TestVariablesAgainstEfitools: cert-to-efi-sig-list and sign-efi-sig-list
// with the same certificate, owner GUID, signing key and timestamp write
// the same .esl and .auth bytes.
func TestVariablesAgainstEfitools(t *testing.T) {
	c2e, err1 := exec.LookPath("cert-to-efi-sig-list")
	sign, err2 := exec.LookPath("sign-efi-sig-list")
	if err1 != nil || err2 != nil {
		t.Skip("needs efitools")
	}
	dir := t.TempDir()
	k, err := CreateKeys(dir, "cfsboot test")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 25, 23, 4, 5, 0, time.UTC)
	vars, err := k.Variables(ts)
	if err != nil {
		t.Fatal(err)
	}
	signer := map[string]string{"db": "KEK", "KEK": "PK", "PK": "PK"}
	for i, v := range vars {
		if v.Name != keyNames[i] {
			t.Fatalf("variable %d is %s, want %s", i, v.Name, keyNames[i])
		}
		_, cert := keyPaths(dir, v.Name)
		esl := filepath.Join(t.TempDir(), v.Name+".esl")
		if out, err := exec.Command(c2e, "-g", k.Owner.String(), cert, esl).CombinedOutput(); err != nil {
			t.Fatalf("cert-to-efi-sig-list: %v\n%s", err, out)
		}
		if want, _ := os.ReadFile(esl); !bytes.Equal(v.ESL, want) {
			t.Errorf("%s.esl differs from cert-to-efi-sig-list's", v.Name)
		}
		signKey, signCert := keyPaths(dir, signer[v.Name])
		auth := filepath.Join(t.TempDir(), v.Name+".auth")
		if out, err := exec.Command(sign, "-t", ts.Format("2006-01-02 15:04:05"), "-c", signCert, "-k", signKey, v.Name, esl, auth).CombinedOutput(); err != nil {
			t.Fatalf("sign-efi-sig-list: %v\n%s", err, out)
		}
		if want, _ := os.ReadFile(auth); !bytes.Equal(v.Auth, want) {
			t.Errorf("%s.auth differs from sign-efi-sig-list's (%d and %d bytes)", v.Name, len(v.Auth), len(want))
		}
		certs, err := ParseSignatureLists(v.ESL)
		if err != nil || len(certs) != 1 || certs[0].Owner != k.Owner || !certs[0].Cert.Equal(k.pair(v.Name).Cert) {
			t.Errorf("%s.esl reads back as %+v, %v", v.Name, certs, err)
		}
	}
}
