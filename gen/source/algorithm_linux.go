package source

import (
	"fmt"
	"runtime"

	"cfsboot/gen/tree"
	"cfsboot/internal/parallel"
	"cfsboot/verity"
)

// DigestAlgorithm is Digest with the fs-verity algorithm objects are named
// by: a SHA-512 store's files carry SHA-512 digests in their metacopy
// xattrs and object names.
func DigestAlgorithm(root *tree.Node, alg verity.Algorithm, progress func(bytes int64)) error {
	if alg == verity.SHA256 {
		return Digest(root, progress)
	}
	files, _ := Unread(root)
	return parallel.Each(files, runtime.GOMAXPROCS(0), func(n *tree.Node) error {
		if n.Size <= InlineMax {
			if err := digestFile(n); err != nil { // inlined: no object, no digest in the image
				return err
			}
		} else {
			d, err := alg.ComputeFile(n.Source)
			if err != nil {
				return fmt.Errorf("source: %w", err)
			}
			n.SetFileDigest(d)
		}
		if progress != nil {
			progress(int64(n.Size))
		}
		return nil
	})
}
