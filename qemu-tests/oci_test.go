//go:build qemu

package qemutests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestDebianFromOCI: the Debian root as a bootable container would ship
// it, an OCI image layout (mmdebstrap's tarball as the base layer, the
// kernel, modules and test service as a second layer), goes into the store
// with `cfsboot oci import` and boots from the imported image.
func TestDebianFromOCI(t *testing.T) {
	t.Parallel()
	Debian(t) // the same Debian root; its fixture also fetches the tarball
	dir := t.TempDir()
	ref := debianOCI(t, dir, nil)

	staging := filepath.Join(dir, "staging")
	out := run(t, fx.CfsbootBin, "oci", "import", ref, "--store", filepath.Join(staging, "provision"), "--json")
	var imported struct {
		Digest    string `json:"digest"`
		Layers    int    `json:"layers"`
		Artefacts []struct {
			Kind, Path string
		} `json:"boot_artefacts"`
	}
	if err := json.Unmarshal([]byte(out), &imported); err != nil {
		t.Fatalf("oci import output %q: %v", out, err)
	}
	if imported.Layers != 2 || len(imported.Artefacts) == 0 || !strings.HasSuffix(imported.Artefacts[0].Path, "/vmlinuz") {
		t.Errorf("oci import: %s", out)
	}
	disk := filepath.Join(dir, "disk.img")
	if err := fx.provisionDisk(t, staging, disk, "1G", ""); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(staging)
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: disk, TPM: true, Append: cmdline(imported.Digest)})
	vm.WaitFor(`cfsboot: composefs image ` + imported.Digest + ` verified`)
	state := vm.WaitFor(`CHECK state: `)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	if !strings.HasSuffix(state, "running") {
		t.Errorf("systemd in the imported image says %q", state)
	}
}

// debianOCI writes the Debian root as a bootable container would ship it
// into an OCI image layout in dir: mmdebstrap's tarball as the base layer,
// the kernel, modules and test service (addDebianExtras, then more when
// given) as a second layer. It returns the image's reference.
func debianOCI(t *testing.T, dir string, more func(root string)) string {
	t.Helper()
	base, err := debianTarball()
	if err != nil {
		t.Fatal(err)
	}
	extras := filepath.Join(dir, "extras")
	if err := addDebianExtras(t, extras); err != nil {
		t.Fatal(err)
	}
	if more != nil {
		more(extras)
	}
	top := layerTar(t, extras, filepath.Join(dir, "extras.tar"))
	return writeOCILayout(t, filepath.Join(dir, "layout"), "debian", base, top)
}

// writeFiles writes files (a path under root: its content) with mode 0755,
// making their directories.
func writeFiles(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// layerTar packs the tree at root into the layer tarball out, every file
// owned by root, and returns out.
func layerTar(t testing.TB, root, out string) string {
	t.Helper()
	run(t, "tar", "--numeric-owner", "--owner=0", "--group=0", "-C", root, "-cf", out, ".")
	return out
}

// writeOCILayout writes an image of the layer tarballs (in order) as name
// into the OCI image layout dir (made when missing) and returns its
// reference.
func writeOCILayout(t *testing.T, dir, name string, tars ...string) string {
	t.Helper()
	var layers []v1.Layer
	for _, p := range tars {
		l, err := tarball.LayerFromFile(p)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg.OS, cfg.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	lay, err := layout.FromPath(dir)
	if err != nil { // a new layout
		lay, err = layout.Write(dir, empty.Index)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := lay.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": name})); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir + ":" + name
}
