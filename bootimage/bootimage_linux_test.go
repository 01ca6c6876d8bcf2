package bootimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"cfsboot/gen/tree"
	"cfsboot/secureboot"
	"cfsboot/uki"
	"cfsboot/verity"
)

const efiDir = "../.cache/debian/root/systemd-boot-efi/usr/lib/systemd/boot/efi/"

type tarEntry struct {
	name, link string
	data       []byte
}

// ociImage writes a one-layer OCI image layout of entries into dir and
// returns its reference.
func ociImage(t *testing.T, dir string, entries []tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var dirs []string
	for _, e := range entries {
		for d := filepath.Dir(e.name); d != "." && !slices.Contains(dirs, d); d = filepath.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs) // parents first
	for _, d := range dirs {
		tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h = &tar.Header{Name: e.name, Linkname: e.link, Typeflag: tar.TypeSymlink, Mode: 0o777}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.data)
	}
	tw.Close()
	layerFile := filepath.Join(dir, "layer.tar")
	if err := os.WriteFile(layerFile, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromFile(layerFile)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	lay, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lay.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "test"})); err != nil {
		t.Fatal(err)
	}
	return "oci:" + filepath.Join(dir, "layout") + ":test"
}

// TestBuilder imports an image carrying its kernel, modules, os-release
// (through /etc/os-release -> ../usr/lib/os-release) and systemd's EFI
// binaries, and checks the UKI and boot loader built from them against
// the image's bytes and the keys that signed them, then removes the image
// from the store.
func TestBuilder(t *testing.T) {
	stub, err := os.ReadFile(efiDir + "linuxx64.efi.stub")
	if err != nil {
		t.Skipf("needs Debian's systemd stub (make deps): %v", err)
	}
	sdboot, err := os.ReadFile(efiDir + "systemd-bootx64.efi")
	if err != nil {
		t.Skipf("needs Debian's systemd-boot (make deps): %v", err)
	}
	dir := t.TempDir()
	kernel := bytes.Repeat([]byte("vmlinuz "), 20000)
	// Long enough to be a store object rather than inline in the image.
	osRelease := []byte("NAME=\"Test OS\"\nID=\"testos\"\n" + strings.Repeat("# padding\n", 100))
	ref := ociImage(t, dir, []tarEntry{
		{name: "usr/lib/os-release", data: osRelease},
		{name: "etc/os-release", link: "../usr/lib/os-release"},
		{name: "usr/lib/modules/6.1.0-test/vmlinuz", data: kernel},
		{name: "usr/lib/modules/6.1.0-test/modules.builtin", data: []byte("kernel/fs/ext4/ext4.ko\n")},
		{name: "usr/lib/modules/6.1.0-test/build", link: "/usr/src/linux-headers-6.1.0-test"},
		{name: "usr/lib/systemd/boot/efi/linuxx64.efi.stub", data: stub},
		{name: "usr/lib/systemd/boot/efi/systemd-bootx64.efi", data: sdboot},
	})
	keysDir := filepath.Join(dir, "keys")
	keys, err := secureboot.CreateKeys(keysDir, "test")
	if err != nil {
		t.Fatal(err)
	}
	init := filepath.Join(dir, "init")
	os.WriteFile(init, []byte("#!/bin/true\n"), 0o755)
	var log strings.Builder
	b, err := New(Options{Keys: keysDir, Init: init, Modules: []string{}, Log: func(f string, a ...any) { log.WriteString(f + "\n") }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	root := filepath.Join(dir, "root")
	d, osID, err := b.Import(context.Background(), ref, filepath.Join(root, "composefs"))
	if err != nil {
		t.Fatal(err)
	}
	if osID != "testos" {
		t.Errorf("os-release ID %q, want testos", osID)
	}
	out := filepath.Join(dir, "uki.efi")
	cmdline := "composefs=" + d.String() + " root=PARTUUID=x rw"
	if err := b.BuildUKI(context.Background(), d, cmdline, out); err != nil {
		t.Fatal(err)
	}
	image, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := uki.Verify(image, keys.DB.Cert); err != nil {
		t.Errorf("UKI signature: %v", err)
	}
	info, err := uki.Inspect(image, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cmdline != cmdline || info.Uname != "6.1.0-test" || info.OSRelease != "Test OS" {
		t.Errorf("UKI cmdline %q, uname %q, os-release %q", info.Cmdline, info.Uname, info.OSRelease)
	}
	sum := sha256.Sum256(kernel)
	found := false
	for _, s := range info.Sections {
		if s.Name == ".linux" {
			found = s.SHA256 == hex.EncodeToString(sum[:])
		}
	}
	if !found {
		t.Error("the UKI's .linux is not the image's kernel")
	}
	loader, err := b.Bootloader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	signed, err := os.ReadFile(loader)
	if err != nil {
		t.Fatal(err)
	}
	if err := uki.Verify(signed, keys.DB.Cert); err != nil {
		t.Errorf("systemd-boot signature: %v", err)
	}
	// (Signing changes the header's checksum and certificate table only.)
	if len(signed) < len(sdboot) || !bytes.Equal(signed[1024:len(sdboot)], sdboot[1024:]) {
		t.Error("the boot loader is not the image's systemd-boot")
	}

	images, err := OpenImages(root, b)
	if err != nil {
		t.Fatal(err)
	}
	if ds, err := images.List(); err != nil || len(ds) != 1 || ds[0] != d {
		t.Fatalf("List = %v, %v; want [%s]", ds, err, d)
	}

	// The boot pieces come from what the import read, not from the store's
	// objects (which a host without fs-verity cannot read once sealed):
	// importing again over damaged objects still finds the right ones.
	for _, content := range [][]byte{kernel, osRelease} {
		obj := filepath.Join(root, "composefs", "objects", tree.ObjectPath(verity.ComputeBytes(content)))
		if err := os.WriteFile(obj, bytes.Repeat([]byte{'?'}, len(content)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	again, err := New(Options{Init: init, Modules: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if d2, osID, err := again.Import(context.Background(), ref, filepath.Join(root, "composefs")); err != nil || d2 != d || osID != "testos" {
		t.Fatalf("import over damaged objects: %s %q %v", d2, osID, err)
	}
	if err := again.BuildUKI(context.Background(), d, cmdline, out); err != nil {
		t.Fatal(err)
	}
	if image, err = os.ReadFile(out); err != nil {
		t.Fatal(err)
	}
	if info, err = uki.Inspect(image, nil); err != nil || !slices.ContainsFunc(info.Sections, func(s uki.SectionInfo) bool {
		return s.Name == ".linux" && s.SHA256 == hex.EncodeToString(sum[:])
	}) {
		t.Errorf("UKI built after importing over damaged objects: %v; its .linux is not the image's kernel", err)
	}
	if err := images.Remove(d); err != nil {
		t.Fatal(err)
	}
	if err := images.GC(); err != nil {
		t.Fatal(err)
	}
	if ds, err := images.List(); err != nil || len(ds) != 0 {
		t.Errorf("after Remove: List = %v, %v", ds, err)
	}
	objs, _ := filepath.Glob(filepath.Join(root, "composefs", "objects", "*", "*"))
	if len(objs) != 0 {
		t.Errorf("after Remove and GC the store still holds %v", objs)
	}

	// An image without a kernel cannot be booted.
	noKernel := ociImage(t, t.TempDir(), []tarEntry{{name: "etc/os-release", data: []byte("ID=x\n")}})
	if _, _, err := b.Import(context.Background(), noKernel, filepath.Join(root, "composefs")); err == nil || !strings.Contains(err.Error(), "no kernel") {
		t.Errorf("importing an image without a kernel: %v", err)
	}
}
