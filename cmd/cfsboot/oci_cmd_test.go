package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
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
		{Name: "usr/lib/modules/6.1/vmlinuz", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3},
	} {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("krn"))
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
