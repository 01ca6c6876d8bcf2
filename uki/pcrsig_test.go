package uki

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// startSwtpm runs a TCP swtpm for systemd-measure sign, which computes
// the policy digest with a TPM trial session.
func startSwtpm(t *testing.T) (device string) {
	t.Helper()
	if _, err := exec.LookPath("swtpm"); err != nil {
		t.Skip("needs swtpm")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
		"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
		"--flags", "not-need-init,startup-clear")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 50 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", port)
}

func writeRSAKey(t *testing.T, dir string) (*rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, path
}

// TestSignPCRPolicyAgainstSystemdMeasure: `systemd-measure sign` (systemd
// 252) with the same key and sections writes the same JSON, byte for byte
// (RSA PKCS#1 v1.5 signatures are deterministic).
func TestSignPCRPolicyAgainstSystemdMeasure(t *testing.T) {
	tool := "/usr/lib/systemd/systemd-measure"
	if _, err := os.Stat(tool); err != nil {
		t.Skip("systemd-measure not installed")
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libtss2-esys.so.0"); err != nil {
		t.Skip("systemd-measure sign needs libtss2-esys-3.0.2-0 and libtss2-tcti-swtpm0")
	}
	device := startSwtpm(t)
	dir, sections := writeSections(t)
	key, keyPath := writeRSAKey(t, dir)
	pub, err := pcrPublicKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	sections[".pcrpkey"] = pub
	if err := os.WriteFile(filepath.Join(dir, "pcrpkey"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	banks := []string{"sha1", "sha256", "sha384", "sha512"}
	args := []string{"sign", "--json=short", "--private-key=" + keyPath, "--tpm2-device=" + device}
	for name := range sections {
		args = append(args, fmt.Sprintf("--%s=%s", name[1:], filepath.Join(dir, name[1:])))
	}
	for _, b := range banks {
		args = append(args, "--bank="+b)
	}
	cmd := exec.Command(tool, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	want, err := cmd.Output()
	if err != nil {
		t.Fatalf("systemd-measure sign: %v\n%s", err, stderr.Bytes())
	}
	got, err := SignPCRPolicy(sections, key, banks)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.TrimSuffix(want, []byte("\n"))) {
		t.Errorf("ours:\n%s\nsystemd-measure sign:\n%s", got, want)
	}
}
