package oci

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"cfsboot/gen/erofs"
)

func zstdLayer(t testing.TB, tarData []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(string(tarData))), nil
	}, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func digestOf(t testing.TB, img v1.Image, opts Options) string {
	t.Helper()
	res, err := Import(img, opts)
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := ImageDigest(res.Tree, erofs.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// gzip, zstd and uncompressed layers of the same tars give the same image.
func TestCompressions(t *testing.T) {
	l1, l2 := twoLayerImage(t)
	gz := digestOf(t, imageOf(t, gzipLayer(t, l1), gzipLayer(t, l2)), Options{})
	zs := digestOf(t, imageOf(t, zstdLayer(t, l1), zstdLayer(t, l2)), Options{})
	raw := digestOf(t, imageOf(t, uncompressedLayer(l1), uncompressedLayer(l2)), Options{})
	if gz != zs || gz != raw {
		t.Errorf("gzip %s, zstd %s, uncompressed %s: want one digest", gz, zs, raw)
	}
	changed := digestOf(t, imageOf(t, gzipLayer(t, l1)), Options{})
	if changed == gz {
		t.Error("dropping a layer kept the digest")
	}
}

// lyingLayer claims a digest its content does not have.
type lyingLayer struct {
	v1.Layer
	digest v1.Hash
}

func (l lyingLayer) Digest() (v1.Hash, error) { return l.digest, nil }

func TestDigestMismatch(t *testing.T) {
	l1, _ := twoLayerImage(t)
	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	img := imageOf(t, gzipLayer(t, tarOf(t, file("ok", "ok"))), lyingLayer{gzipLayer(t, l1), wrong})
	_, err := Import(img, Options{})
	if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), "layer 2 ("+wrong.String()+")") {
		t.Errorf("error %v, want a digest mismatch of layer 2", err)
	}

	for _, img := range []v1.Image{imageOfTars(t, l1), imageOf(t, uncompressedLayer(l1))} {
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg = cfg.DeepCopy()
		cfg.RootFS.DiffIDs[0] = wrong
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			t.Fatal(err)
		}
		_, err = Import(img, Options{})
		if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), "diff ID") || !strings.Contains(err.Error(), "layer 1 (") {
			t.Errorf("error %v, want a diff ID mismatch of layer 1", err)
		}
	}

	img = imageOfTars(t, l1)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs = cfg.RootFS.DiffIDs[:0]
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err = Import(img, Options{}); err == nil || !strings.Contains(err.Error(), "0 diff IDs for 1 manifest layers") {
		t.Errorf("error %v, want a diff ID count mismatch", err)
	}
}

// A layer that expands past the ratio or the size limit is an error, for
// gzip, zstd and (size only) uncompressed layers.
func TestDecompressionBombs(t *testing.T) {
	bomb := tarOf(t, ent{name: "zeros", typ: '0', mode: 0o644, size: 8 << 20})
	ratio := Limits{MaxLayerBytes: 1 << 30, MaxRatio: 50, RatioGrace: 1 << 20}
	size := Limits{MaxLayerBytes: 4 << 20}
	for _, tc := range []struct {
		name   string
		layer  v1.Layer
		limits Limits
		want   string
	}{
		{"gzip ratio", gzipLayer(t, bomb), ratio, "ratio over 50"},
		{"zstd ratio", zstdLayer(t, bomb), ratio, "ratio over 50"},
		{"gzip size", gzipLayer(t, bomb), size, "more than 4194304 uncompressed bytes"},
		{"zstd size", zstdLayer(t, bomb), size, "more than 4194304 uncompressed bytes"},
		{"uncompressed size", uncompressedLayer(bomb), size, "more than 4194304 uncompressed bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Import(imageOf(t, tc.layer), Options{Limits: tc.limits})
			if !errors.Is(err, ErrBomb) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `layer 1 (sha256:`) || !strings.Contains(err.Error(), `entry "zeros"`) {
				t.Errorf("error %v, want %q naming layer 1 and the entry", err, tc.want)
			}
		})
	}
	// The default limits let the same layer through.
	if _, err := Import(imageOf(t, zstdLayer(t, bomb)), Options{}); err != nil {
		t.Errorf("default limits: %v", err)
	}
}

func TestMissingBlob(t *testing.T) {
	l1, l2 := twoLayerImage(t)
	img := imageOfTars(t, l1, l2)
	dir := writeLayout(t, img, "v1")
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "blobs", d.Algorithm, d.Hex)); err != nil {
		t.Fatal(err)
	}
	opened, closeFn, err := Open("oci:"+dir+":v1", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	_, err = Import(opened, Options{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "layer 2 ("+d.String()+")") {
		t.Errorf("error %v, want a missing blob of layer 2", err)
	}

	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "blobs", cfg.Algorithm, cfg.Hex)); err != nil {
		t.Fatal(err)
	}
	if _, err = Import(opened, Options{}); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "config "+cfg.String()) {
		t.Errorf("error %v, want a missing config blob", err)
	}
}

// A blob whose bytes changed in the layout (same name) is caught.
func TestTamperedLayoutBlob(t *testing.T) {
	l1, _ := twoLayerImage(t)
	img := imageOfTars(t, l1)
	dir := writeLayout(t, img, "")
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	other, err := gzipLayer(t, tarOf(t, file("evil", "x"))).Compressed()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(other)
	if err := os.WriteFile(filepath.Join(dir, "blobs", d.Algorithm, d.Hex), data, 0o644); err != nil {
		t.Fatal(err)
	}
	opened, closeFn, err := Open("oci:"+dir, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if _, err := Import(opened, Options{}); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("error %v, want a digest mismatch", err)
	}
}

// A layout whose manifest or config blob changed under its name is caught.
func TestTamperedManifestAndConfig(t *testing.T) {
	l1, _ := twoLayerImage(t)
	img := imageOfTars(t, l1)
	manifest, _ := img.Digest()
	config, _ := img.ConfigName()
	for what, d := range map[string]v1.Hash{"manifest": manifest, "config": config} {
		dir := writeLayout(t, img, "")
		blob := filepath.Join(dir, "blobs", d.Algorithm, d.Hex)
		data, err := os.ReadFile(blob)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blob, append(data, ' '), 0o644); err != nil {
			t.Fatal(err)
		}
		opened, closeFn, err := Open("oci:"+dir, SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Import(opened, Options{})
		closeFn()
		if !errors.Is(err, ErrDigestMismatch) || !strings.HasPrefix(err.Error(), what+" is sha256:") {
			t.Errorf("%s tampered: error %v, want a digest mismatch", what, err)
		}
	}
}
