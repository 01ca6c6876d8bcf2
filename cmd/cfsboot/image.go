package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"cfsboot/gen/dump"
	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/gen/tree"
	"cfsboot/verity"
)

func init() {
	register("image", "create, dump and digest composefs images", func(args []string) error {
		return subcommands("image", map[string]func([]string) error{
			"create": imageCreate,
			"dump":   imageDump,
			"digest": imageDigest,
		}, args)
	})
}

// imageCreate: cfsboot image create (SRC_DIR | --from-dump FILE) [--store DIR]
// [-o IMAGE] [--min-version N] [--max-version N] [--use-epoch]
func imageCreate(args []string) error {
	fs := flag.NewFlagSet("image create", flag.ContinueOnError)
	fromDump := fs.String("from-dump", "", "read the tree from a composefs-dump(5) file instead of a directory")
	storeDir := fs.String("store", "", "put file contents in this object store and the image at images/<digest>")
	out := fs.String("o", "", "write the image to this file")
	minV := fs.Int("min-version", 0, "composefs format version to write")
	maxV := fs.Int("max-version", 1, "highest format version to raise to when needed")
	useEpoch := fs.Bool("use-epoch", false, "set every mtime to 0 (directory input)")
	strict := fs.Bool("strict", false, "parse dumps strictly (as CFS_PARSE_STRICT)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var root *tree.Node
	switch {
	case *fromDump != "" && len(pos) == 0:
		f, err := os.Open(*fromDump)
		if err != nil {
			return err
		}
		defer f.Close()
		if root, err = dump.Parse(f, dump.Options{Strict: *strict}); err != nil {
			return fmt.Errorf("%s: %w", *fromDump, err)
		}
	case *fromDump == "" && len(pos) == 1:
		if root, err = source.Dir(pos[0], source.Options{UseEpoch: *useEpoch}); err != nil {
			return err
		}
	default:
		return errors.New("usage: cfsboot image create (SRC_DIR | --from-dump FILE) [--store DIR] [-o IMAGE] [--min-version N] [--max-version N] [--use-epoch]")
	}
	opts := erofs.Options{MinVersion: *minV, MaxVersion: *maxV}
	var img []byte
	var digest verity.Digest
	if *storeDir != "" {
		st, err := store.Open(*storeDir)
		if err != nil {
			return err
		}
		if !st.Protected() {
			fmt.Fprintf(os.Stderr, "warning: %s: %v\n", *storeDir, store.ErrUnprotected)
		}
		if digest, img, err = st.Commit(root, opts); err != nil {
			return err
		}
	} else {
		if img, err = erofs.Build(root, opts); err != nil {
			return err
		}
		digest = verity.ComputeBytes(img)
	}
	if *out != "" {
		if err := os.WriteFile(*out, img, 0o644); err != nil {
			return err
		}
	}
	fmt.Println(digest)
	return nil
}

func imageDump(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: cfsboot image dump IMAGE")
	}
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
	return dump.Write(os.Stdout, root)
}

// imageDigest prints fs-verity digests as `fsverity digest` does.
func imageDigest(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: cfsboot image digest FILE...")
	}
	for _, p := range args {
		d, err := verity.ComputeFile(p)
		if err != nil {
			return err
		}
		fmt.Printf("sha256:%s %s\n", d, p)
	}
	return nil
}
