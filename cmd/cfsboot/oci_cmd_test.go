package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"cfsboot/gen/erofs"
	"cfsboot/gen/oci"
	"cfsboot/gen/tree"
	"cfsboot/verity"
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
	// With --store the import goes through the store: committed on
	// success, aborted (no image, no ref) on failure.
	fake := &fakeOCIStore{}
	openOCIStore = func(string) (ociStore, error) { return fake, nil }
	defer func() { openOCIStore = nil }()
	out, err = run("import", "--store", "S", "--ref", "r", "oci:"+dir)
	if err != nil || !strings.HasPrefix(out, want.String()) || fake.committed != "r" || fake.objects != 1 || fake.aborted {
		t.Errorf("--store: %v %q, store %+v", err, out, fake)
	}
	*fake = fakeOCIStore{}
	if _, err := run("import", "--store", "S", "--ref", "r", "--bootable", "oci:"+dir); err == nil || fake.committed != "" || !fake.aborted {
		t.Errorf("failed --store import: %v, store %+v", err, fake)
	}
	openOCIStore = nil
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "--store", t.TempDir(), "oci:" + dir}, "no object store import"},
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

type fakeOCIStore struct {
	objects   int
	committed string
	aborted   bool
}

func (f *fakeOCIStore) Put(r io.Reader) (verity.Digest, error) {
	f.objects++
	return verity.Compute(r)
}

func (f *fakeOCIStore) Commit(root *tree.Node, opts erofs.Options, ref string) (verity.Digest, error) {
	f.committed = ref
	d, _, err := oci.ImageDigest(root, opts)
	return d, err
}

func (f *fakeOCIStore) Abort() { f.aborted = true }
