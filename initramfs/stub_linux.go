package initramfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// systemd-stub hands the initrd files in /.extra (cpio archives it appends):
// the PCR signature and public key from the UKI's .pcrsig and .pcrpkey, its
// os-release and profile, and credentials from the ESP. In a systemd initrd,
// tmpfiles (20-systemd-stub.conf) and PID 1's credential import copy them
// below /run before the initramfs is deleted; cfsboot-init does the same,
// so the booted system finds them where systemd looks.
var stubFiles = []struct{ from, to string }{
	{"tpm2-pcr-signature.json", "systemd/tpm2-pcr-signature.json"},
	{"tpm2-pcr-public-key.pem", "systemd/tpm2-pcr-public-key.pem"},
	{"os-release", "systemd/stub/os-release"},
	{"profile", "systemd/stub/profile"},
}

// Credentials (*.cred) come from the ESP, unauthenticated: systemd keeps
// them apart from trusted ones, in @encrypted, and finds them there through
// $ENCRYPTED_CREDENTIALS_DIRECTORY.
var credentialDirs = []string{"credentials", "global_credentials"}

const (
	encryptedCredentials = "credentials/@encrypted"
	maxStubFile          = 1 << 20 // per file, as systemd's CREDENTIAL_SIZE_MAX
	maxCredentialsTotal  = 16 << 20
)

// handOffStub copies what systemd-stub left in extra into run and returns
// the environment entries the root's init needs to find it. Problems with
// single files are returned as notes: they are the stub's extras, not part
// of the verified root, and never stop the boot.
func handOffStub(extra, run string) (env, notes []string) {
	for _, f := range stubFiles {
		err := copyBounded(filepath.Join(extra, f.from), filepath.Join(run, f.to), 0o444, maxStubFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			notes = append(notes, err.Error())
		}
	}
	total, n := int64(0), 0
	for _, dir := range credentialDirs {
		entries, err := os.ReadDir(filepath.Join(extra, dir)) // sorted by name
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				notes = append(notes, err.Error())
			}
			continue
		}
		for _, e := range entries {
			name, ok := strings.CutSuffix(e.Name(), ".cred")
			if !ok {
				continue
			}
			if !validCredentialName(name) {
				notes = append(notes, fmt.Sprintf("credential %q: invalid name, not passed on", e.Name()))
				continue
			}
			dst := filepath.Join(run, encryptedCredentials, name)
			if _, err := os.Lstat(dst); err == nil {
				continue // the first one wins, as in systemd
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				notes = append(notes, err.Error())
				continue
			}
			err := copyBounded(filepath.Join(extra, dir, e.Name()), dst, 0o400, min(maxStubFile, maxCredentialsTotal-total))
			if err != nil {
				notes = append(notes, err.Error())
				continue
			}
			if st, err := os.Stat(dst); err == nil {
				total += st.Size()
			}
			n++
		}
	}
	if n > 0 {
		env = append(env, "ENCRYPTED_CREDENTIALS_DIRECTORY=/run/"+encryptedCredentials)
	}
	return env, notes
}

// validCredentialName is systemd's rule: a file name, not . or ..
func validCredentialName(n string) bool {
	return n != "" && n != "." && n != ".." && !strings.ContainsAny(n, "/\x00") && len(n) <= 255
}

// copyBounded copies the regular file src (never through a symlink) to a
// new file dst of at most max bytes.
func copyBounded(src, dst string, mode os.FileMode, max int64) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file, not passed on", src)
	}
	if st.Size() > max {
		return fmt.Errorf("%s: %d bytes, more than the %d allowed, not passed on", src, st.Size(), max)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.LimitReader(in, max))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}
