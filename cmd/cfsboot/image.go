package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"cfsboot/gen/dump"
	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/gen/tree"
	"cfsboot/internal/progress"
	"cfsboot/verity"
)

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Create, dump and digest composefs images",
	}
	cmd.AddCommand(newImageCreateCmd(), newImageDumpCmd(), newImageDigestCmd())
	return cmd
}

// imageCreated is the JSON schema of `image create --json`.
type imageCreated struct {
	Digest    string `json:"digest"`           // fs-verity digest of the image (64 or 128 hex)
	Algorithm string `json:"algorithm"`        // sha256 or sha512
	Format    string `json:"format,omitempty"` // v0, v1 or v2 when chosen by --format or the store
	Output    string `json:"output,omitempty"` // -o file, if any
	Store     string `json:"store,omitempty"`  // store the image and objects went into, if any
	Image     string `json:"image,omitempty"`  // the image's path in the store
	// Extra are the same tree's images in the other formats the store's
	// meta.json asks for (erofs_formats extra).
	Extra []extraImage `json:"extra,omitempty"`
}

type extraImage struct {
	Format string `json:"format"`
	Digest string `json:"digest"`
}

func newImageCreateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create (SRC_DIR | --from-dump FILE)",
		Short: "Make a composefs image from a directory or a composefs-dump(5) file",
		Long: `Make a composefs (EROFS) image and print its composefs digest: the fs-verity
digest of the image, the value of composefs= on the kernel command line.

From a directory every regular file's fs-verity digest is computed (on all
cores); files of at most 64 bytes are inlined and the others are referenced as
XX/<62 hex>, exactly as mkcomposefs 1.0.8 does, so both tools write the same
bytes. --hash sha512 names objects by their SHA-512 fs-verity digests (and
the metacopy xattrs carry them), and the image's digest is SHA-512 too.

With --store the file contents are copied (reflinked where possible) into
DIR/objects and the image lands in DIR/images/<digest>, with fs-verity
enabled where the file system supports it (a warning says when it does not).
A store with meta.json ("store init") decides the algorithm, stores the image
as an object with images/<digest> a symlink to it, and, unless --format is
given, writes the image formats its erofs_formats name: the default one
(printed, and named by --ref) and each extra one as its own image.
A composefs-dump(5) input needs no file contents.

JSON schema (--json): {"digest", "algorithm", "format", "output", "store",
"image", "extra": [{"format", "digest"}]}.`,
		Example: `  cfsboot image create rootfs/ --store /var/lib/cfsboot
  cfsboot image create --from-dump tree.dump -o tree.img`,
	}
	f := cmd.Flags()
	fromDump := f.String("from-dump", "", "read the tree from a composefs-dump(5) `FILE` instead of a directory")
	storeDir := f.String("store", "", "object store `DIR`: copy contents into objects/ and the image to images/<digest>")
	out := f.StringP("output", "o", "", "also write the image to this `FILE`")
	minV := f.Int("min-version", 0, "composefs format version to write")
	maxV := f.Int("max-version", 1, "highest format version to raise to when the tree needs it")
	var format erofs.Format
	f.Var(&format, "format", "image format as composefs-rs names it: v0 (mkcomposefs' default), v1 (--min-version=1) or v2 (composefs-rs' legacy layout)")
	cmd.MarkFlagsMutuallyExclusive("format", "min-version")
	cmd.MarkFlagsMutuallyExclusive("format", "max-version")
	alg := verity.SHA256
	f.Var(&alg, "hash", "fs-verity algorithm naming objects and the image (with --store: the store's)")
	useEpoch := f.Bool("use-epoch", false, "set every mtime to 0 (directory input)")
	strict := f.Bool("strict", false, "parse the dump strictly, as CFS_PARSE_STRICT does")
	asJSON := jsonFlag(f)
	cmd.Args = func(_ *cobra.Command, args []string) error {
		if (*fromDump != "") == (len(args) == 1) || len(args) > 1 {
			return usageErrorf("give either one SRC_DIR or --from-dump FILE")
		}
		return nil
	}
	retry := f.Bool("retry", false, "read a file again (up to 3 times) when it changes while being read, instead of failing")
	ref := f.String("ref", "", "with --store, also name the image images/refs/`NAME`")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts := erofs.Options{MinVersion: *minV, MaxVersion: *maxV}
		res := imageCreated{Output: *out, Store: *storeDir}
		if cmd.Flags().Changed("format") {
			opts, res.Format = format.Options(), format.String()
		}
		versionFlags := cmd.Flags().Changed("format") || cmd.Flags().Changed("min-version") || cmd.Flags().Changed("max-version")
		if *ref != "" && *storeDir == "" {
			return usageErrorf("--ref needs --store")
		}
		var root *tree.Node
		var err error
		if *fromDump != "" {
			if root, err = parseDumpFile(*fromDump, dump.Options{Strict: *strict}); err != nil {
				return err
			}
		} else if root, err = source.Walk(args[0], source.Options{UseEpoch: *useEpoch}); err != nil {
			return err
		}
		files, bytes := source.Unread(root)
		what := "hashing"
		if *storeDir != "" {
			what = "storing"
		}
		bar := progress.New(cmd.ErrOrStderr(), quiet, what, len(files), bytes)
		done := func(n int64) { bar.Add(1, n) }
		var img []byte
		var digest verity.Sum
		if *storeDir != "" {
			st, err := store.Open(*storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			if cmd.Flags().Changed("hash") && alg != st.Algorithm() {
				return usageErrorf("--hash %s: the store %s names objects by %s", alg, *storeDir, st.Algorithm())
			}
			if !st.Protected() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: %v\n", *storeDir, store.ErrUnprotected)
			}
			formats := st.Formats()
			if versionFlags {
				formats = nil
			} else if len(formats) > 0 {
				opts, res.Format = formats[0].Options(), formats[0].String()
			}
			digest, img, err = st.CommitTree(root, store.CommitOptions{Erofs: opts, Retry: *retry, Ref: *ref, Progress: done})
			bar.Finish()
			if err != nil {
				return err
			}
			res.Image = st.ImagePath(digest)
			if len(formats) > 1 {
				extra, err := st.AddImages(root, formats[1:])
				if err != nil {
					return err
				}
				for i, d := range extra {
					res.Extra = append(res.Extra, extraImage{Format: formats[1+i].String(), Digest: d.String()})
				}
			}
		} else {
			err := source.DigestAlgorithm(root, alg, done)
			bar.Finish()
			if err != nil {
				return err
			}
			if digest, err = writeImage(root, opts, alg, *out); err != nil {
				return err
			}
		}
		if *out != "" && img != nil {
			if err := os.WriteFile(*out, img, 0o644); err != nil {
				return err
			}
		}
		res.Digest, res.Algorithm = digest.String(), digest.Algorithm().String()
		if *asJSON {
			return printJSON(cmd, res)
		}
		fmt.Fprintln(cmd.OutOrStdout(), res.Digest)
		for _, e := range res.Extra {
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", e.Digest, e.Format)
		}
		return nil
	}
	return cmd
}

// writeImage streams root's image into its fs-verity hash and, when out
// is set, into that file: the image is never whole in memory, and root's
// nodes are freed as they are copied (root is not used afterwards). A
// failed write leaves no output file.
func writeImage(root *tree.Node, opts erofs.Options, alg verity.Algorithm, out string) (verity.Sum, error) {
	h := alg.NewHasher()
	if out == "" {
		_, err := erofs.WriteImageConsuming(h, root, opts)
		return h.Sum(), err
	}
	f, err := os.Create(out)
	if err != nil {
		return verity.Sum{}, err
	}
	_, err = erofs.WriteImageConsuming(io.MultiWriter(h, f), root, opts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return verity.Sum{}, err
	}
	return h.Sum(), nil
}

func parseDumpFile(path string, opts dump.Options) (*tree.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	root, err := dump.Parse(f, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return root, nil
}

func newImageDumpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dump IMAGE",
		Short: "Print a composefs image as composefs-dump(5) text",
		Long: `Print a composefs image as composefs-dump(5) text, one line per path, as
composefs-dump does. The output fed to "image create --from-dump" gives the
same image back.`,
		Example: "  cfsboot image dump /var/lib/cfsboot/images/<digest>",
		Args:    exactArgs("IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			root, err := erofs.Read(f, st.Size())
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return dump.Write(cmd.OutOrStdout(), root)
		},
	}
}

// fileDigest is one element of the JSON schema of `image digest --json`.
type fileDigest struct {
	Path      string `json:"path"`
	Algorithm string `json:"algorithm"` // "sha256" or "sha512"
	Digest    string `json:"digest"`    // hex
}

func newImageDigestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "digest FILE...",
		Short: "Print the fs-verity digest of files, as `fsverity digest` does",
		Long: `Print the fs-verity digest (4096-byte blocks, no salt; SHA-256 unless --hash
says otherwise) of each file in the format of "fsverity digest":
<algorithm>:<hex> <path>. For a composefs image this is its composefs digest.

JSON schema (--json): [{"path", "algorithm", "digest"}].`,
		Example: "  cfsboot image digest image.erofs\n  cfsboot image digest --hash sha512 image.erofs",
		Args:    minArgs(1, "FILE"),
	}
	alg := verity.SHA256
	cmd.Flags().Var(&alg, "hash", "fs-verity hash algorithm")
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		sums := make([]verity.Sum, len(args))
		if err := alg.ComputeFiles(args, sums); err != nil {
			return err
		}
		var res []fileDigest
		for i, p := range args {
			res = append(res, fileDigest{Path: p, Algorithm: alg.String(), Digest: sums[i].String()})
		}
		if *asJSON {
			return printJSON(cmd, res)
		}
		for _, r := range res {
			fmt.Fprintf(cmd.OutOrStdout(), "%s:%s %s\n", r.Algorithm, r.Digest, r.Path)
		}
		return nil
	}
	return cmd
}
