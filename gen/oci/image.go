package oci

import (
	"bytes"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"cfsboot/gen/erofs"
	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// Options control an import.
type Options struct {
	Sink   ObjectSink // where file contents go; nil means DigestOnly
	Limits Limits     // zero means DefaultLimits
	// Transform is what is done to the tree after the layers (see
	// Transform); the zero value is the plain OCI tree.
	Transform Transform
	// KeepUserXattrs keeps user.* xattrs in transformed trees
	// (composefs-rs's "keep-user-xattrs" filtering; its default strips them).
	KeepUserXattrs bool
	// Progress, when set, is called after each layer.
	Progress func(Progress)
}

// Progress reports one finished layer.
type Progress struct {
	Layer, Layers int
	Digest        v1.Hash
	Bytes         int64 // uncompressed file content bytes so far
	Elapsed       time.Duration
}

// Result is an imported image: its tree and what describes it.
type Result struct {
	Tree           *tree.Node
	ManifestDigest v1.Hash
	ConfigDigest   v1.Hash
	Layers         int
	Stats          Stats
	Artefacts      []BootArtefact // found before any bootable transformation
}

// Import applies img's layers in order and returns the tree. Every layer is
// checked against its manifest digest and its configuration diff ID; any
// error means the caller must not commit an image (objects the sink already
// stored are unreferenced and left to garbage collection).
func Import(img v1.Image, opts Options) (*Result, error) {
	if opts.Sink == nil {
		opts.Sink = DigestOnly{}
	}
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits()
	}
	res := &Result{}
	var err error
	if res.ManifestDigest, err = img.Digest(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	// Layouts and archives take digests from their index, not from the
	// blobs: check the manifest and the config themselves.
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", res.ManifestDigest, err)
	}
	if err := checkBlob("manifest", rawManifest, res.ManifestDigest); err != nil {
		return nil, err
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", res.ManifestDigest, err)
	}
	res.ConfigDigest = manifest.Config.Digest
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", res.ConfigDigest, err)
	}
	if err := checkBlob("config", rawConfig, res.ConfigDigest); err != nil {
		return nil, err
	}
	config, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", res.ConfigDigest, err)
	}
	diffIDs := config.RootFS.DiffIDs
	if len(diffIDs) != len(manifest.Layers) {
		return nil, fmt.Errorf("config %s lists %d diff IDs for %d manifest layers", res.ConfigDigest, len(diffIDs), len(manifest.Layers))
	}
	fs := newRootfs()
	var par *puts
	if ps, ok := opts.Sink.(ParallelSink); ok {
		par = newPuts(ps)
	}
	start := time.Now()
	for i, desc := range manifest.Layers {
		fs.layer = i
		name := fmt.Sprintf("layer %d (%s)", i+1, desc.Digest)
		if err := importLayer(fs, img, name, desc.Digest, diffIDs[i], opts, par, &res.Stats); err != nil {
			return nil, err
		}
		if opts.Progress != nil {
			opts.Progress(Progress{Layer: i + 1, Layers: len(manifest.Layers), Digest: desc.Digest, Bytes: res.Stats.Bytes, Elapsed: time.Since(start)})
		}
	}
	res.Layers = len(manifest.Layers)
	if res.Tree, err = fs.build(); err != nil {
		return nil, fmt.Errorf("image %s: %w", res.ManifestDigest, err)
	}
	res.Artefacts = FindBootArtefacts(res.Tree)
	if opts.Transform != TransformNone {
		if err := fs.transform(opts.Transform, opts.KeepUserXattrs); err != nil {
			return nil, fmt.Errorf("image %s: %w", res.ManifestDigest, err)
		}
		if res.Tree, err = fs.build(); err != nil {
			return nil, fmt.Errorf("image %s: %w", res.ManifestDigest, err)
		}
	}
	return res, nil
}

func importLayer(fs *rootfs, img v1.Image, name string, digest, diffID v1.Hash, opts Options, par *puts, st *Stats) error {
	layer, err := img.LayerByDigest(digest)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	blob, err := layer.Compressed()
	if err != nil {
		return fmt.Errorf("%s: opening blob: %w", name, err)
	}
	defer blob.Close()
	var applyErr error
	err = readLayer(blob, digest, diffID, opts.Limits, func(r io.Reader) error {
		applyErr = fs.applyTar(name, r, opts.Sink, par, st)
		return applyErr
	})
	if err != nil && err != applyErr {
		return fmt.Errorf("%s: %w", name, err)
	}
	return err
}

func checkBlob(what string, data []byte, want v1.Hash) error {
	h, err := hasher(want)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, want, err)
	}
	h.Write(data)
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != want.Hex {
		return fmt.Errorf("%s is %s:%s, expected %s: %w", what, want.Algorithm, got, want, ErrDigestMismatch)
	}
	return nil
}

// ImageDigest builds the composefs image of root and returns its fs-verity
// digest with the image bytes.
func ImageDigest(root *tree.Node, opts erofs.Options) (verity.Digest, []byte, error) {
	sum, img, err := ImageSum(root, opts, verity.SHA256)
	d, _ := sum.Digest()
	return d, img, err
}

// ImageSum is ImageDigest in the fs-verity algorithm alg.
func ImageSum(root *tree.Node, opts erofs.Options, alg verity.Algorithm) (verity.Sum, []byte, error) {
	img, err := erofs.Build(root, opts)
	if err != nil {
		return verity.Sum{}, nil, err
	}
	return alg.ComputeBytes(img), img, nil
}
