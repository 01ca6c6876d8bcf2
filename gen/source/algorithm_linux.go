package source

import (
	"fmt"
	"runtime"

	"cfsboot/gen/tree"
	"cfsboot/internal/parallel"
	"cfsboot/verity"
)

// digestBatch is how many files a worker digests in one
// verity.ComputeFiles call, which hashes the blocks of small files
// together: 32 files of the usual few blocks fill the lanes of its hash
// kernels.
const digestBatch = 32

// DigestAlgorithm is Digest with the fs-verity algorithm objects are named
// by: a SHA-512 store's files carry SHA-512 digests in their metacopy
// xattrs and object names.
func DigestAlgorithm(root *tree.Node, alg verity.Algorithm, progress func(bytes int64)) error {
	files, _ := Unread(root)
	var batches [][]*tree.Node
	for len(files) > 0 {
		n := min(len(files), digestBatch)
		batches = append(batches, files[:n])
		files = files[n:]
	}
	return parallel.Each(batches, runtime.GOMAXPROCS(0), func(batch []*tree.Node) error {
		var paths []string
		for _, n := range batch {
			if n.Size <= InlineMax {
				if err := digestFile(n); err != nil { // inlined: no object, no digest in the image
					return err
				}
			} else {
				paths = append(paths, n.Source)
			}
		}
		sums := make([]verity.Sum, len(paths))
		if err := alg.ComputeFiles(paths, sums); err != nil {
			return fmt.Errorf("source: %w", err)
		}
		for _, n := range batch {
			if n.Size > InlineMax {
				n.SetFileDigest(sums[0])
				sums = sums[1:]
			}
			if progress != nil {
				progress(int64(n.Size))
			}
		}
		return nil
	})
}
