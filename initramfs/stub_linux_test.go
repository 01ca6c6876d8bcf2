package initramfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHandOffStub: what systemd-stub leaves in /.extra lands where the
// booted systemd looks for it; links, oversized files and bad names do not.
func TestHandOffStub(t *testing.T) {
	extra, run := t.TempDir(), t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(extra, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tpm2-pcr-signature.json", `{"sha256":[]}`)
	write("os-release", "ID=test\n")
	write("credentials/passwd.hashed-password.root.cred", "secret")
	write("global_credentials/passwd.hashed-password.root.cred", "other") // the first wins
	write("global_credentials/firstboot.locale.cred", "C.UTF-8")
	write("global_credentials/notacred.txt", "ignored")
	write("credentials/big.cred", strings.Repeat("x", maxStubFile+1))
	os.Symlink("/etc/shadow", filepath.Join(extra, "tpm2-pcr-public-key.pem"))

	env, notes := handOffStub(extra, run)
	if !slices.Equal(env, []string{"ENCRYPTED_CREDENTIALS_DIRECTORY=/run/credentials/@encrypted"}) {
		t.Errorf("env %v", env)
	}
	for rel, want := range map[string]string{
		"systemd/tpm2-pcr-signature.json":                    `{"sha256":[]}`,
		"systemd/stub/os-release":                            "ID=test\n",
		"credentials/@encrypted/passwd.hashed-password.root": "secret",
		"credentials/@encrypted/firstboot.locale":            "C.UTF-8",
	} {
		if got, err := os.ReadFile(filepath.Join(run, rel)); err != nil || string(got) != want {
			t.Errorf("%s: %q %v, want %q", rel, got, err, want)
		}
	}
	for _, rel := range []string{"systemd/tpm2-pcr-public-key.pem", "credentials/@encrypted/big", "credentials/@encrypted/notacred.txt"} {
		if _, err := os.Lstat(filepath.Join(run, rel)); err == nil {
			t.Errorf("%s was passed on", rel)
		}
	}
	if len(notes) != 2 || !strings.Contains(notes[0]+notes[1], "tpm2-pcr-public-key.pem") || !strings.Contains(notes[0]+notes[1], "big.cred") {
		t.Errorf("notes %q", notes)
	}
	if st, err := os.Stat(filepath.Join(run, "credentials/@encrypted/firstboot.locale")); err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("credential mode: %v %v", st.Mode(), err)
	}
	// Nothing from the stub: nothing to pass on.
	if env, notes := handOffStub(t.TempDir(), t.TempDir()); env != nil || notes != nil {
		t.Errorf("empty /.extra: %v %v", env, notes)
	}
}
