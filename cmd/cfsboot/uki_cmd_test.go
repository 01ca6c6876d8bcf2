package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func runCmd(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestUKIAndKeysCommands: create keys, build a UKI, sign it with the db
// key, verify and inspect it, export and enroll the keys into a fake
// efivarfs, read the status.
func TestUKIAndKeysCommands(t *testing.T) {
	stub := "../../.cache/debian/root/systemd-boot-efi/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	if _, err := os.Stat(stub); err != nil {
		t.Skip("needs Debian's systemd stub (make deps)")
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if out, err := runCmd(t, newKeysCmd(), "create", "--dir", keys, "--name", "cli test"); err != nil {
		t.Fatalf("keys create: %v\n%s", err, out)
	}
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	os.WriteFile(kernel, bytes.Repeat([]byte("kernel"), 1000), 0o644)
	os.WriteFile(initrd, bytes.Repeat([]byte("initrd"), 1000), 0o644)
	unsigned, signed := filepath.Join(dir, "uki.efi"), filepath.Join(dir, "uki.signed.efi")
	dbKey, dbCert := filepath.Join(keys, "keys/db/db.key"), filepath.Join(keys, "keys/db/db.pem")
	if out, err := runCmd(t, newUKICmd(), "build", "--stub", stub, "--kernel", kernel, "--initrd", initrd,
		"--cmdline", "composefs=00 root=LABEL=x", "--uname", "6.12-test", "--pcr-key", dbKey, "-o", unsigned); err != nil {
		t.Fatalf("uki build: %v\n%s", err, out)
	}
	if out, err := runCmd(t, newUKICmd(), "sign", "--key", dbKey, "--cert", dbCert, unsigned, "-o", signed); err != nil {
		t.Fatalf("uki sign: %v\n%s", err, out)
	}
	if out, err := runCmd(t, newUKICmd(), "verify", "--cert", dbCert, signed); err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("uki verify: %v\n%s", err, out)
	}
	if out, err := runCmd(t, newUKICmd(), "verify", "--cert", filepath.Join(keys, "keys/PK/PK.pem"), signed); err == nil {
		t.Errorf("uki verify with the PK certificate succeeded:\n%s", out)
	}
	out, err := runCmd(t, newUKICmd(), "inspect", "--json", signed)
	if err != nil {
		t.Fatalf("uki inspect: %v\n%s", err, out)
	}
	var info struct {
		Cmdline    string `json:"cmdline"`
		Signatures []struct {
			Subject string `json:"subject"`
		} `json:"signatures"`
		Sections []struct {
			Name string `json:"name"`
		} `json:"sections"`
		PCR11 []struct{ Phase string } `json:"pcr11"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	names := ""
	for _, s := range info.Sections {
		names += s.Name + " "
	}
	if info.Cmdline != "composefs=00 root=LABEL=x" || len(info.Signatures) != 1 || info.Signatures[0].Subject != "CN=cli test db" ||
		!strings.Contains(names, ".pcrsig") || !strings.Contains(names, ".pcrpkey") || len(info.PCR11) != 4 {
		t.Errorf("inspect: %s", out)
	}

	export := filepath.Join(dir, "export")
	if out, err := runCmd(t, newKeysCmd(), "enroll", "--dir", keys, "--export", export); err != nil {
		t.Fatalf("keys enroll --export: %v\n%s", err, out)
	}
	for _, f := range []string{"db.esl", "db.auth", "KEK.esl", "KEK.auth", "PK.esl", "PK.auth"} {
		if _, err := os.Stat(filepath.Join(export, f)); err != nil {
			t.Error(err)
		}
	}
	efivars := filepath.Join(dir, "efivars")
	os.Mkdir(efivars, 0o755)
	global := "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	os.WriteFile(filepath.Join(efivars, "SetupMode-"+global), []byte{6, 0, 0, 0, 1}, 0o644)
	os.WriteFile(filepath.Join(efivars, "SecureBoot-"+global), []byte{6, 0, 0, 0, 0}, 0o644)
	if out, err := runCmd(t, newKeysCmd(), "status", "--json", "--efivars", efivars); err != nil || !strings.Contains(out, `"setup_mode": true`) {
		t.Errorf("keys status: %v\n%s", err, out)
	}
	if out, err := runCmd(t, newKeysCmd(), "enroll", "--dir", keys, "--efivars", efivars); err != nil {
		t.Fatalf("keys enroll: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(efivars, "PK-"+global)); err != nil {
		t.Error(err)
	}
}
