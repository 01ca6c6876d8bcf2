package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"cfsboot/gen/erofs"
	"cfsboot/gen/oci"
)

func TestOCIImportCmd(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "usr/lib/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "usr/lib/modules/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "usr/lib/modules/6.1/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "usr/lib/modules/6.1/vmlinuz", Typeflag: tar.TypeReg, Mode: 0o644, Size: 100},
	} {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("k"), 100))
		}
	}
	tw.Close()
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(b.Bytes(), types.OCIUncompressedLayer))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	res, err := oci.Import(img, oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := oci.ImageDigest(res.Tree, erofs.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, error) {
		cmd := newOCICmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("import", "oci:"+dir)
	if err != nil || !strings.HasPrefix(out, want.String()+"\nkernel /usr/lib/modules/6.1/vmlinuz 6.1\n") {
		t.Errorf("import: %v, output %q, want digest %s", err, out, want)
	}
	out, err = run("import", "--json", "oci:"+dir)
	var got ociImported
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.Digest != want.String() || got.Layers != 1 || got.Files != 1 || len(got.Artefacts) != 1 {
		t.Errorf("import --json: %v, %q", err, out)
	}
	// With --store the import goes through the store: committed (image,
	// ref, objects) on success; on failure no image and no ref.
	storeDir := t.TempDir()
	out, err = run("import", "--store", storeDir, "--ref", "r", "oci:"+dir)
	if err != nil || !strings.HasPrefix(out, want.String()) {
		t.Errorf("--store: %v %q", err, out)
	}
	if target, err := os.Readlink(filepath.Join(storeDir, "images", "refs", "r")); err != nil || !strings.HasSuffix(target, want.String()) {
		t.Errorf("ref r: %q %v", target, err)
	}
	if code, out, _ := cli("store", "fsck", "--store", storeDir); code != 0 {
		t.Errorf("fsck after import: %s", out)
	}
	// The same image again: the same digest, and nothing new in the store.
	before := storeFiles(t, storeDir)
	if out, err := run("import", "--store", storeDir, "oci:"+dir); err != nil || !strings.HasPrefix(out, want.String()) {
		t.Errorf("second import: %v %q", err, out)
	}
	if after := storeFiles(t, storeDir); !slices.Equal(before, after) {
		t.Errorf("a second import of the same image changed the store:\n%v\n%v", before, after)
	}
	// One changed byte in the layer: another digest.
	changedLayer := bytes.Replace(b.Bytes(), bytes.Repeat([]byte("k"), 100), append(bytes.Repeat([]byte("k"), 99), 'K'), 1)
	img2, err := mutate.AppendLayers(empty.Image, static.NewLayer(changedLayer, types.OCIUncompressedLayer))
	if err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	p2, err := layout.Write(dir2, empty.Index)
	if err != nil || p2.AppendImage(img2) != nil {
		t.Fatal(err)
	}
	if out, err := run("import", "oci:"+dir2); err != nil || strings.HasPrefix(out, want.String()) {
		t.Errorf("a changed layer kept the digest: %v %q", err, out)
	}
	// SHA-512: the digest-only import and one into a SHA-512 repository agree.
	sha512Store := filepath.Join(t.TempDir(), "repo")
	if code, _, errOut := cli("store", "init", "--store", sha512Store, "--hash", "sha512"); code != 0 {
		t.Fatal(errOut)
	}
	only, err := run("import", "--hash", "sha512", "--format", "v1", "oci:"+dir) // v1: the repository's default format
	if err != nil || len(strings.Fields(only)[0]) != 128 {
		t.Errorf("import --hash sha512: %v %q", err, only)
	}
	if stored, err := run("import", "--store", sha512Store, "oci:"+dir); err != nil || strings.Fields(stored)[0] != strings.Fields(only)[0] {
		t.Errorf("import into a SHA-512 repository: %v %q, digest-only %q", err, stored, only)
	}
	if _, err := run("import", "--store", sha512Store, "--hash", "sha256", "oci:"+dir); err == nil || !strings.Contains(err.Error(), "names objects by sha512") {
		t.Errorf("--hash against the store's algorithm: %v", err)
	}
	failed := t.TempDir()
	if _, err := run("import", "--store", failed, "--ref", "r", "--bootable", "oci:"+dir); err == nil {
		t.Error("a failing --store import succeeded")
	}
	left, _ := filepath.Glob(filepath.Join(failed, "images", "*"))
	refs, _ := filepath.Glob(filepath.Join(failed, "images", "refs", "*"))
	if len(refs) != 0 || len(left) > 1 || len(left) == 1 && filepath.Base(left[0]) != "refs" {
		t.Errorf("a failed import left images or refs: %v %v", left, refs)
	}
	if tmp, _ := filepath.Glob(filepath.Join(failed, "objects", ".tmp*")); len(tmp) != 0 {
		t.Errorf("a failed import left temporary objects: %v", tmp)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "--ref", "x", "oci:" + dir}, "--ref needs --store"},
		{[]string{"import", "--format", "v9", "oci:" + dir}, "--format"},
		{[]string{"import", "--bootable", "oci:" + dir}, "no /boot"},
		{[]string{"import"}, "accepts 1 arg"},
		{[]string{"import", "--max-layer-size", "100", "oci:" + dir}, "more than 100 uncompressed bytes"},
		{[]string{"import", "--max-ratio", "0", "oci:" + dir}, "must be positive"},
	} {
		if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// storeFiles lists every file in a store (not directories: a temporary
// object created and dropped changes their mtime) with its size and mtime.
func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d %d", p, info.Size(), info.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
