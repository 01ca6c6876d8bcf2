package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"cfsboot/gen/erofs"
	"cfsboot/gen/oci"
	"cfsboot/gen/store"
	"cfsboot/verity"
)

// ociImported is the JSON schema of `oci import --json`.
type ociImported struct {
	Digest    string             `json:"digest"`          // composefs digest of the image (64 hex)
	Manifest  string             `json:"manifest_digest"` // OCI manifest digest
	Config    string             `json:"config_digest"`   // OCI config digest
	Layers    int                `json:"layers"`
	Files     int                `json:"files"` // regular file entries applied
	Bytes     int64              `json:"bytes"` // regular file content bytes
	Store     string             `json:"store,omitempty"`
	Ref       string             `json:"ref,omitempty"`
	Bootable  bool               `json:"bootable"`
	Artefacts []oci.BootArtefact `json:"boot_artefacts"`
}

func newOCICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "oci",
		Short: "Import OCI container images as composefs images",
	}
	cmd.AddCommand(newOCIImportCmd())
	return cmd
}

func newOCIImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import SOURCE",
		Short: "Apply an OCI image's layers and make its composefs image",
		Long: `Read an OCI image, apply its layers in order as the OCI image spec says
(whiteouts, opaque directories, hard links, replacements) and print the
composefs digest of the resulting tree. Every layer is checked against its
manifest digest and its diff ID; hostile entries (absolute or climbing names,
writes through symlinks, bad hard links, duplicates, decompression bombs) stop
the import and no image is made.

SOURCE is one of
  oci:DIR[:TAG]           an OCI image layout
  oci-archive:FILE[:TAG]  a tar of an OCI image layout
  docker-archive:FILE     a docker save tarball
  docker://HOST/REPO:TAG or docker://HOST/REPO@DIGEST   a registry
Registry credentials come from ~/.docker/config.json, $DOCKER_CONFIG or
$REGISTRY_AUTH_FILE.

Without --store only digests are computed. --bootable applies what bootc and
composefs-rs do before computing a boot digest: the root takes /usr's
metadata, /run, /boot and /sysroot are emptied, only security.capability
xattrs stay, and files get the SELinux labels of the image's own policy
when it has one.

JSON schema (--json): {"digest", "manifest_digest", "config_digest", "layers",
"files", "bytes", "store", "ref", "bootable", "boot_artefacts": [{"kind",
"path", "version", "size", "digest"}]}.`,
		Example: `  cfsboot oci import oci:./layout:latest
  cfsboot oci import docker://quay.io/fedora/fedora-bootc:42 --bootable --store /var/lib/cfsboot --ref fedora`,
		Args: cobra.ExactArgs(1),
	}
	f := cmd.Flags()
	storeDir := f.String("store", "", "object store `DIR` for the file contents and the image")
	alg := verity.SHA256
	f.Var(&alg, "hash", "fs-verity algorithm naming objects and the image (with --store: the store's)")
	ref := f.String("ref", "", "also name the image images/refs/`NAME` in the store")
	bootable := f.Bool("bootable", false, "apply bootc's boot-image transformations")
	platform := f.String("platform", "linux/amd64", "`OS/ARCH[/VARIANT]` to pick from multi-platform images")
	insecure := f.Bool("insecure-registry", false, "allow plain HTTP and unverified TLS to the registry")
	var format erofs.Format
	f.Var(&format, "format", "composefs image format: v0 (mkcomposefs' default), v1 (composefs-rs' default) or v2")
	limits := oci.DefaultLimits()
	f.Int64Var(&limits.MaxLayerBytes, "max-layer-size", limits.MaxLayerBytes, "refuse layers expanding past this many `BYTES`")
	f.Int64Var(&limits.MaxRatio, "max-ratio", limits.MaxRatio, "refuse layers expanding more than `N` times their compressed size")
	asJSON := jsonFlag(f)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *ref != "" && *storeDir == "" {
			return usageErrorf("--ref needs --store")
		}
		plat, err := v1.ParsePlatform(*platform)
		if err != nil {
			return usageErrorf("--platform %q: %w", *platform, err)
		}
		erofsOpts := format.Options()
		if limits.MaxLayerBytes <= 0 || limits.MaxRatio <= 0 {
			return usageErrorf("--max-layer-size and --max-ratio must be positive")
		}
		opts := oci.Options{Limits: limits, Progress: progressPrinter(cmd.ErrOrStderr())}
		if *bootable {
			opts.Transform = oci.TransformBoot
		}
		opts.Sink = oci.DigestOnly{Algorithm: alg}
		var batch *store.Batch
		var st *store.Store
		var formats []erofs.Format // a repository's erofs_formats, when --format leaves it to the store
		if *storeDir != "" {
			if st, err = store.Open(*storeDir); err != nil {
				return err
			}
			defer st.Close()
			if cmd.Flags().Changed("hash") && alg != st.Algorithm() {
				return usageErrorf("--hash %s: the store %s names objects by %s", alg, *storeDir, st.Algorithm())
			}
			if formats = st.Formats(); len(formats) > 0 && !cmd.Flags().Changed("format") {
				erofsOpts = formats[0].Options()
			} else {
				formats = nil
			}
			batch = st.NewBatch()
			defer batch.Abort() // what a failed import streamed in is not kept
			opts.Sink = batch
		}
		digest, res, err := ociImport(args[0], oci.SourceOptions{Platform: *plat, InsecureRegistry: *insecure}, opts, batch, erofsOpts, alg, *ref)
		if err != nil {
			return err
		}
		if len(formats) > 1 {
			// Each extra format is its own image of the same tree.
			if _, err := st.AddImages(res.Tree, formats[1:]); err != nil {
				return err
			}
		}
		out := ociImported{
			Digest: digest.String(), Manifest: res.ManifestDigest.String(), Config: res.ConfigDigest.String(),
			Layers: res.Layers, Files: res.Stats.Files, Bytes: res.Stats.Bytes,
			Store: *storeDir, Ref: *ref, Bootable: *bootable, Artefacts: res.Artefacts,
		}
		if out.Artefacts == nil {
			out.Artefacts = []oci.BootArtefact{}
		}
		w := cmd.OutOrStdout()
		if *asJSON {
			return printJSON(cmd, out)
		}
		fmt.Fprintln(w, out.Digest)
		for _, a := range out.Artefacts {
			fmt.Fprintf(w, "%s %s %s\n", a.Kind, a.Path, a.Version)
		}
		return nil
	}
	return cmd
}

// ociImport imports src and commits it through the store batch b, or only
// computes the digest when b is nil.
func ociImport(src string, srcOpts oci.SourceOptions, opts oci.Options, b *store.Batch, erofsOpts erofs.Options, alg verity.Algorithm, ref string) (verity.Sum, *oci.Result, error) {
	img, closeSource, err := oci.Open(src, srcOpts)
	if err != nil {
		return verity.Sum{}, nil, err
	}
	defer closeSource()
	res, err := oci.Import(img, opts)
	if err != nil {
		return verity.Sum{}, nil, err
	}
	if b != nil {
		digest, _, err := b.Commit(res.Tree, erofsOpts, ref)
		return digest, res, err
	}
	digest, _, err := oci.ImageSum(res.Tree, erofsOpts, alg)
	return digest, res, err
}

// progressPrinter reports finished layers, bytes and rate on a terminal,
// and nothing elsewhere.
func progressPrinter(w io.Writer) func(oci.Progress) {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return func(p oci.Progress) {
		rate := float64(p.Bytes) / max(p.Elapsed.Seconds(), 1e-3) / (1 << 20)
		end := ""
		if p.Layer == p.Layers {
			end = "\n"
		}
		fmt.Fprintf(f, "\r\x1b[Klayer %d/%d %s: %d MiB, %.1f MiB/s, %s%s", p.Layer, p.Layers,
			strings.TrimPrefix(p.Digest.String(), "sha256:")[:12], p.Bytes>>20, rate, p.Elapsed.Round(time.Second), end)
	}
}
