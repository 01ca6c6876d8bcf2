package uki

import (
	"bytes"
	"debug/pe"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ukifyPath is systemd's ukify from trixie's systemd-ukify package (the
// stub's version, 257), fetched like the stub; it needs python3-pefile.
const ukifyPath = "../.cache/debian/root/systemd-ukify/usr/lib/systemd/ukify"

// TestBuildAgainstUkify: ukify 257 and Build make the same bytes from the
// same stub and parts.
func TestBuildAgainstUkify(t *testing.T) {
	ukify := ukifyPath
	if p := os.Getenv("CFSBOOT_UKIFY"); p != "" {
		ukify = p
	}
	if _, err := os.Stat(ukify); err != nil {
		t.Skipf("needs ukify (trixie's systemd-ukify, fetched by make deps): %v", err)
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import pefile").Run(); err != nil {
		t.Skip("needs python3-pefile")
	}
	stub := readStub(t)
	parts := testParts()
	sbat := []byte(sbatHeader + "cfsboot,1,cfsboot,cfsboot,1,https://example.org/\n")
	for name, p := range map[string]Parts{
		"all":     parts,
		"minimal": {Linux: parts.Linux, Cmdline: parts.Cmdline, OSRelease: parts.OSRelease, Uname: parts.Uname},
		"sbat":    {Linux: parts.Linux, Initrd: parts.Initrd, OSRelease: parts.OSRelease, Uname: parts.Uname, SBAT: sbat},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(name string, data []byte) string {
				path := filepath.Join(dir, name)
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				return path
			}
			// ukify reads the host's os-release and the kernel's version
			// unless told: always give both.
			args := []string{ukify, "build", "--stub", stubPath, "--linux", write("vmlinuz", p.Linux),
				"--os-release", "@" + write("os-release", p.OSRelease), "--uname", string(p.Uname), "--output", filepath.Join(dir, "ukify.efi")}
			if p.Initrd != nil {
				args = append(args, "--initrd", write("initrd", p.Initrd))
			}
			if p.Cmdline != nil {
				args = append(args, "--cmdline", string(p.Cmdline))
			}
			if p.Splash != nil {
				args = append(args, "--splash", write("splash.bmp", p.Splash))
			}
			if p.SBAT != nil {
				args = append(args, "--sbat", "@"+write("sbat.csv", p.SBAT))
			}
			if out, err := exec.Command("/usr/bin/python3", args...).CombinedOutput(); err != nil {
				t.Fatalf("ukify: %v\n%s", err, out)
			}
			want, err := os.ReadFile(filepath.Join(dir, "ukify.efi"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Build(stub, p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Build differs from ukify: %s", peDiff(got, want))
			}
		})
	}
}

// peDiff names the first difference between two PE images.
func peDiff(a, b []byte) string {
	fa, err1 := pe.NewFile(bytes.NewReader(a))
	fb, err2 := pe.NewFile(bytes.NewReader(b))
	if err1 != nil || err2 != nil {
		return fmt.Sprintf("unreadable: %v, %v", err1, err2)
	}
	if fmt.Sprint(fa.FileHeader) != fmt.Sprint(fb.FileHeader) {
		return fmt.Sprintf("file header %+v, ukify %+v", fa.FileHeader, fb.FileHeader)
	}
	if fmt.Sprint(fa.OptionalHeader) != fmt.Sprint(fb.OptionalHeader) {
		return fmt.Sprintf("optional header %+v, ukify %+v", fa.OptionalHeader, fb.OptionalHeader)
	}
	for i := range min(len(fa.Sections), len(fb.Sections)) {
		if fa.Sections[i].SectionHeader != fb.Sections[i].SectionHeader {
			return fmt.Sprintf("section %d: %+v, ukify %+v", i, fa.Sections[i].SectionHeader, fb.Sections[i].SectionHeader)
		}
		da, _ := fa.Sections[i].Data()
		db, _ := fb.Sections[i].Data()
		if !bytes.Equal(da, db) {
			return fmt.Sprintf("section %s data: %q, ukify %q", fa.Sections[i].Name, da[:min(len(da), 400)], db[:min(len(db), 400)])
		}
	}
	return fmt.Sprintf("%d sections and %d bytes, ukify %d sections and %d bytes", len(fa.Sections), len(a), len(fb.Sections), len(b))
}
