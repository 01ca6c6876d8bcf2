package main

import (
	"fmt"
	"sync"

	"github.com/spf13/cobra"

	"cfsboot/gen/erofs"
	"cfsboot/gen/repometa"
	"cfsboot/gen/store"
	"cfsboot/internal/progress"
	"cfsboot/verity"
)

// newStoreCmd is the `store` group: checking and collecting a store, with
// composefs-rs's lock protocol so that cfsboot and cfsctl can share it.
func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Make, check, repair and garbage-collect a composefs object store",
		Long: `A store (a composefs-rs repository) holds file contents in objects/XX/<rest>
named by their fs-verity digest, images in images/<digest>, named images in
images/refs/ and composefs-rs splitstreams in streams/.

A store made with "store init" has composefs-rs' meta.json: its algorithm
(fsverity-sha512-12 by default) names objects and images, images/<digest>
are symlinks to ../objects/XX/<rest>, and its erofs_formats choose the image
formats every commit writes; cfsctl and bootc open it. A store without
meta.json (made by a first "image create --store") is a SHA-256 store with
plain image files. The init boots both.

Processes share a store with composefs-rs's lock protocol: flock on the store
directory, shared while reading or adding (image create, oci import, fsck),
exclusive while deleting (gc, fsck --repair). Commands that delete wait for
the writers to finish, so a gc never removes what a writer is adding.`,
	}
	dir := cmd.PersistentFlags().String("store", "", "the store `DIR`ectory (must already be a store, except for init)")
	cmd.MarkPersistentFlagRequired("store")
	cmd.AddCommand(newStoreInitCmd(dir), newStoreFsckCmd(dir), newStoreGCCmd(dir))
	return cmd
}

// storeInitReport is the JSON schema of `store init --json`.
type storeInitReport struct {
	Store     string `json:"store"`
	Algorithm string `json:"algorithm"` // as meta.json names it: fsverity-sha512-12
	Formats   []int  `json:"erofs_formats"`
	Secure    bool   `json:"secure"` // meta.json sealed with fs-verity
}

func newStoreInitCmd(dir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init --store DIR [--hash sha512|sha256] [--format v1] [--extra-format v2]",
		Short: "Make a new store as composefs-rs lays out a repository (meta.json)",
		Long: `Make a new, empty store with meta.json as composefs-rs (cfsctl init) writes it:
format version 1, the fs-verity algorithm that names objects and images
(fsverity-sha512-12 unless --hash says sha256), and erofs_formats: the image
format every commit is written in (--format, v1 by default, as composefs-rs)
plus the extra formats each commit is also written in, each its own image.
On a filesystem with fs-verity meta.json is sealed, which marks the
repository secure (composefs-rs then requires fs-verity on every file).

JSON schema (--json): {"store", "algorithm", "erofs_formats", "secure"}.`,
		Example: `  cfsboot store init --store /sysroot/composefs
  cfsboot store init --store ./repo --hash sha256 --format v1 --extra-format v2`,
		Args: cobra.NoArgs,
	}
	alg := verity.SHA512
	cmd.Flags().Var(&alg, "hash", "fs-verity algorithm naming objects and images")
	format := erofs.FormatV1
	cmd.Flags().Var(&format, "format", "the default image format (v0, v1 or v2)")
	extra := cmd.Flags().StringSlice("extra-format", nil, "formats each commit is also written in")
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		formats := repometa.Formats{Default: int(format)}
		for _, e := range *extra {
			f, err := erofs.ParseFormat(e)
			if err != nil {
				return usageErrorf("--extra-format %s: %w", e, err)
			}
			formats.Extra = append(formats.Extra, int(f))
		}
		meta, err := repometa.New(alg, formats)
		if err != nil {
			return err
		}
		st, err := store.Create(*dir, meta)
		if err != nil {
			return err
		}
		defer st.Close()
		rep := storeInitReport{Store: st.Dir(), Algorithm: repometa.AlgorithmName(alg), Formats: st.Meta().EROFSFormats().All(), Secure: st.Secure()}
		if !st.Secure() {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: %v\n", st.Dir(), store.ErrUnprotected)
		}
		if *asJSON {
			return printJSON(cmd, rep)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, image formats %v, secure: %v\n", rep.Store, rep.Algorithm, rep.Formats, rep.Secure)
		return nil
	}
	return cmd
}

// storeFsckReport is the JSON schema of `store fsck --json`.
type storeFsckReport struct {
	Store    string          `json:"store"`
	OK       bool            `json:"ok"`
	Problems []store.Problem `json:"problems"`
	Removed  []string        `json:"removed,omitempty"`
}

func newStoreFsckCmd(dir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fsck --store DIR [--repair] [--json]",
		Short: "Check that every image and object is complete and named by its digest",
		Long: `Check the store without writing to it (it works on a full or read-only
filesystem): every image is named by its fs-verity digest and readable, every
object an image or stream references exists with the digest the image
expects, every object is named by its digest, every ref names an image, and
either every file is sealed with fs-verity or none is. One line per problem,
exit status 1 if there is any.

--repair takes the exclusive lock (waiting for writers) and removes what is
provably garbage: temporary files of interrupted writes and objects whose
content does not match their name. It reports the images it cannot repair
(those needing a removed or missing object): make them again.

JSON schema (--json): {"store", "ok", "problems": [{"path", "reason",
"garbage"}], "removed": [paths]}.`,
		Example: `  cfsboot store fsck --store /sysroot/composefs
  cfsboot store fsck --store /sysroot/composefs --repair
  cfsboot store fsck --store ./store --json`,
		Args: cobra.NoArgs,
	}
	repair := cmd.Flags().Bool("repair", false, "remove temporary files and misnamed objects (takes the exclusive lock)")
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		lock := store.Shared
		if *repair {
			lock = store.Exclusive
		}
		st, err := store.OpenExisting(*dir, store.OpenOptions{Lock: lock, Waiting: waitingNotice(cmd, *dir)})
		if err != nil {
			return err
		}
		defer st.Close()
		rep := storeFsckReport{Store: st.Dir()}
		if *repair {
			rep.Removed, rep.Problems, err = st.Repair()
		} else {
			var bar *progress.Bar
			var once sync.Once
			rep.Problems, err = st.FsckProgress(func(done, total int) {
				once.Do(func() { bar = progress.New(cmd.ErrOrStderr(), quiet, "checking", total, 0) })
				bar.Add(1, 0)
			})
			bar.Finish()
		}
		if err != nil {
			return err
		}
		rep.OK = len(rep.Problems) == 0
		if rep.Problems == nil {
			rep.Problems = []store.Problem{}
		}
		out := cmd.OutOrStdout()
		if *asJSON {
			if err := printJSON(cmd, rep); err != nil {
				return err
			}
		} else {
			for _, p := range rep.Removed {
				fmt.Fprintln(out, "removed", p)
			}
			for _, p := range rep.Problems {
				fmt.Fprintln(out, p)
			}
			if rep.OK {
				fmt.Fprintf(out, "%s: ok\n", st.Dir())
			}
		}
		if !rep.OK {
			return fmt.Errorf("%d problem(s) in %s", len(rep.Problems), st.Dir())
		}
		return nil
	}
	return cmd
}

// storeGCReport is the JSON schema of `store gc --json`.
type storeGCReport struct {
	Store   string   `json:"store"`
	DryRun  bool     `json:"dry_run"`
	Removed []string `json:"removed"`
	Bytes   int64    `json:"bytes"`
}

func newStoreGCCmd(dir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gc --store DIR [--wait|--no-wait] [--dry-run] [--json]",
		Short: "Remove objects that no image, ref or stream references",
		Long: `Remove the objects that no image (images/, including composefs-rs's symlinked
images), ref (images/refs/) or splitstream (streams/) references, and the
temporary files of interrupted writes. Images, refs and streams are never
removed. An image or stream that cannot be read stops gc: what it keeps
alive is unknown.

gc takes the store's exclusive lock. While another process holds the store
(an image create, an OCI import, cfsctl), gc waits (--wait, the default) and
says who it waits for; with --no-wait it fails at once, naming the process.

JSON schema (--json): {"store", "dry_run", "removed": [paths], "bytes"}.`,
		Example: `  cfsboot store gc --store /sysroot/composefs
  cfsboot store gc --store /sysroot/composefs --dry-run
  cfsboot store gc --store ./store --no-wait --json`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().Bool("wait", true, "wait for the processes holding the store")
	noWait := cmd.Flags().Bool("no-wait", false, "fail, naming the holders, instead of waiting")
	cmd.MarkFlagsMutuallyExclusive("wait", "no-wait")
	dryRun := cmd.Flags().Bool("dry-run", false, "only list what would be removed")
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		st, err := store.OpenExisting(*dir, store.OpenOptions{Lock: store.Exclusive, NoWait: *noWait, Waiting: waitingNotice(cmd, *dir)})
		if err != nil {
			return err
		}
		defer st.Close()
		removed, freed, err := st.GC(*dryRun)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if *asJSON {
			if removed == nil {
				removed = []string{}
			}
			return printJSON(cmd, storeGCReport{Store: st.Dir(), DryRun: *dryRun, Removed: removed, Bytes: freed})
		}
		for _, p := range removed {
			fmt.Fprintln(out, p)
		}
		verb := "removed"
		if *dryRun {
			verb = "would remove"
		}
		fmt.Fprintf(out, "%s %d file(s), %d bytes\n", verb, len(removed), freed)
		return nil
	}
	return cmd
}

// waitingNotice tells the user, on stderr, whom a command waits for.
func waitingNotice(cmd *cobra.Command, dir string) func([]store.Holder) {
	return func(holders []store.Holder) {
		fmt.Fprintf(cmd.ErrOrStderr(), "store %s: waiting for the lock held by", dir)
		for _, h := range holders {
			fmt.Fprintf(cmd.ErrOrStderr(), " %s", h)
		}
		fmt.Fprintln(cmd.ErrOrStderr())
	}
}
