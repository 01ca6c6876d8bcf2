package verity

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A batch's digests equal ComputeBytes' for inputs of every shape (empty,
// one block, several, exactly batchMaxBlocks), also across flushes forced by
// the input count and by the data size, and for inputs that came up short.
func TestBatch(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	var inputs [][]byte
	for _, n := range []int{0, 1, 4095, 4096, 4097, 2 * 4096, 8*4096 + 1, batchMaxBlocks * BlockSize, 0, 17} {
		inputs = append(inputs, pattern(n))
	}
	for range 3 * batchInputs {
		inputs = append(inputs, pattern(rng.Intn(20*BlockSize)))
	}
	for _, on := range []bool{true, false} {
		setMultiBuffer(t, on)
		for _, alg := range Algorithms {
			b := getBatch(alg)
			sums := make([]Sum, len(inputs))
			for i, data := range inputs {
				reserve := len(data)
				if i%7 == 3 { // came up short: reserved more than it had
					reserve = min(len(data)+1+rng.Intn(3*BlockSize), batchMaxBlocks*BlockSize)
				}
				b.setSize(copy(b.add(reserve, i, sums), data))
			}
			b.flush(sums)
			for i, data := range inputs {
				if want := alg.ComputeBytes(data); sums[i] != want {
					t.Errorf("%s, lanes %v, input %d (%d bytes): %s, want %s", alg, on, i, len(data), sums[i], want)
				}
			}
		}
	}
}

// ComputeFiles agrees with ComputeFile over small files (batched), files
// just over the batch limit and a multi-MiB one (digested on their own),
// in any order.
func TestComputeFiles(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(4))
	var paths []string
	sizes := []int{0, 1, 4096, batchMaxBlocks * BlockSize, batchMaxBlocks*BlockSize + 1, 65*4096 + 7, 5<<20 + 3}
	for range 100 {
		sizes = append(sizes, rng.Intn(40<<10))
	}
	rng.Shuffle(len(sizes), func(i, j int) { sizes[i], sizes[j] = sizes[j], sizes[i] })
	for i, n := range sizes {
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(p, pattern(n), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	for _, alg := range Algorithms {
		sums := make([]Sum, len(paths))
		if err := alg.ComputeFiles(paths, sums); err != nil {
			t.Fatal(err)
		}
		for i, p := range paths {
			want, err := alg.ComputeFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if sums[i] != want {
				t.Errorf("%s, %d bytes: ComputeFiles %s, ComputeFile %s", alg, sizes[i], sums[i], want)
			}
		}
	}
}

func TestComputeFilesErrors(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		paths []string
		want  string
	}{
		{[]string{ok, missing, ok}, missing + ": no such file"},
		{[]string{ok, dir}, dir + ": not a regular file"},
	} {
		err := SHA512.ComputeFiles(c.paths, make([]Sum, len(c.paths)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.paths, err, c.want)
		}
	}
	if err := SHA256.ComputeFiles([]string{ok}, nil); err == nil {
		t.Error("no room for the digest, no error")
	}
	// The pooled batch holds nothing of the failed calls.
	sums := make([]Sum, 1)
	if err := SHA512.ComputeFiles([]string{ok}, sums); err != nil || sums[0] != SHA512.ComputeBytes([]byte("data")) {
		t.Errorf("after errors: %s %v", sums[0], err)
	}
}

// BenchmarkComputeFiles digests 1,000 small files (0 to 41 KB) through
// ComputeFiles, against ComputeFile one by one.
func BenchmarkComputeFiles(b *testing.B) {
	dir := b.TempDir()
	var paths []string
	var total int64
	for i := range 1000 {
		p := filepath.Join(dir, strconv.Itoa(i))
		data := pattern(i * 41)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
		total += int64(len(data))
	}
	for _, alg := range Algorithms {
		b.Run(fmt.Sprintf("%s/batched", alg), func(b *testing.B) {
			sums := make([]Sum, len(paths))
			b.SetBytes(total)
			for b.Loop() {
				if err := alg.ComputeFiles(paths, sums); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%s/one-by-one", alg), func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				for _, p := range paths {
					if _, err := alg.ComputeFile(p); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
