package verity

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// setMultiBuffer turns the lane kernels on or off for one test.
func setMultiBuffer(t testing.TB, on bool) {
	old := multiBuffer
	multiBuffer = on
	t.Cleanup(func() { multiBuffer = old })
}

// blockSums is the oracle for hashBlocks: each block (the last one
// zero-padded) hashed on its own by the standard library.
func blockSums(alg Algorithm, data []byte) []byte {
	var out []byte
	for off := 0; off < len(data); off += BlockSize {
		block := make([]byte, BlockSize)
		copy(block, data[off:])
		if alg == SHA512 {
			s := sha512.Sum512(block)
			out = append(out, s[:]...)
		} else {
			s := sha256.Sum256(block)
			out = append(out, s[:]...)
		}
	}
	return out
}

func checkHashBlocks(t *testing.T, alg Algorithm, data []byte) {
	t.Helper()
	want := blockSums(alg, data)
	got := make([]byte, len(want))
	var tail [BlockSize]byte
	hashBlocks(alg, alg.newHash(), data, got, &tail)
	if !bytes.Equal(got, want) {
		for i := 0; i < len(want); i += alg.Size() {
			if !bytes.Equal(got[i:i+alg.Size()], want[i:i+alg.Size()]) {
				t.Fatalf("%s, %d bytes: block %d digest %x, want %x", alg, len(data), i/alg.Size(), got[i:i+alg.Size()], want[i:i+alg.Size()])
			}
		}
	}
}

// hashBlocks gives every block's own digest for every count of blocks
// (whole lane groups, idle lanes, the one-block rest), with and without a
// short last block, with the lane kernels on and off.
func TestHashBlocks(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, on := range []bool{true, false} {
		setMultiBuffer(t, on)
		for _, alg := range Algorithms {
			for n := 0; n <= 40; n++ {
				for _, extra := range []int{0, 1, BlockSize - 1} {
					if n == 0 && extra == 0 {
						continue
					}
					data := make([]byte, n*BlockSize+extra)
					rng.Read(data)
					checkHashBlocks(t, alg, data)
				}
			}
			checkHashBlocks(t, alg, nil)
		}
	}
}

// Lanes that share a block, blocks that differ in one bit, and the
// patterns that catch byte order and lane mix-ups.
func TestHashBlocksPatterns(t *testing.T) {
	data := make([]byte, 16*BlockSize)
	for i := range 8 {
		data[(8+i)*BlockSize+i*513] = 1 << (i % 8)
	}
	for i := range data[:8*BlockSize] {
		data[i] = byte(i / BlockSize)
	}
	for _, alg := range Algorithms {
		checkHashBlocks(t, alg, data)
		checkHashBlocks(t, alg, make([]byte, 8*BlockSize))
		checkHashBlocks(t, alg, bytes.Repeat([]byte{0xff}, 11*BlockSize-5))
	}
}

// digestSizes covers lane groups and their rests, a read chunk and beyond,
// and several MiB for ComputeReaderAt's parallel path.
var digestSizes = []int{0, 1, 4095, 4096, 4097, 3 * 4096, 7*4096 + 1, 8 * 4096, 8*4096 + 1, 9*4096 - 1, 64 * 4096, 65*4096 + 7, 4 << 20, 5<<20 + 3}

// allDigests computes the digest of data by every API: Compute,
// ComputeBytes, ComputeReaderAt (parallel from 4 MiB) and a Hasher fed
// writes of odd sizes.
func allDigests(t *testing.T, alg Algorithm, data []byte, rng *rand.Rand) map[string]Sum {
	t.Helper()
	s, err := alg.Compute(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	ra, err := alg.ComputeReaderAt(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	h := alg.NewHasher()
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1+rng.Intn(20*BlockSize))
		h.Write(rest[:n])
		rest = rest[n:]
	}
	return map[string]Sum{"Compute": s, "ComputeBytes": alg.ComputeBytes(data), "ComputeReaderAt": ra, "Hasher": h.Sum()}
}

// Every API gives the same digest with the lane kernels as without them,
// and as fsverity-utils where it is installed.
func TestDigestsWithLanes(t *testing.T) {
	tool, _ := exec.LookPath("fsverity")
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(2))
	for _, alg := range Algorithms {
		for _, n := range digestSizes {
			data := pattern(n)
			setMultiBuffer(t, false)
			want := alg.ComputeBytes(data)
			if tool != "" {
				path := filepath.Join(dir, "f")
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(tool, "digest", "--compact", "--hash-alg="+alg.String(), path).Output()
				if err != nil {
					t.Fatalf("fsverity digest: %v", err)
				}
				if s := strings.TrimSpace(string(out)); s != want.String() {
					t.Fatalf("%s, %d bytes, one block at a time: %s, fsverity digest %s", alg, n, want, s)
				}
			}
			for _, on := range []bool{false, true} {
				setMultiBuffer(t, on)
				for name, got := range allDigests(t, alg, data, rng) {
					if got != want {
						t.Errorf("%s, %d bytes, lanes %v: %s = %s, want %s", alg, n, on, name, got, want)
					}
				}
			}
		}
	}
}

// FuzzHashBlocks checks hashBlocks against crypto/sha512 and crypto/sha256
// per block. The input is stretched to blocks%41 whole blocks plus tail
// bytes so that every lane group shape comes up.
func FuzzHashBlocks(f *testing.F) {
	f.Add([]byte("abc"), uint8(8), uint16(0))
	f.Add([]byte{0}, uint8(17), uint16(4095))
	f.Add([]byte("\x80\x00\x01"), uint8(3), uint16(1))
	f.Fuzz(func(t *testing.T, seed []byte, blocks uint8, tail uint16) {
		if len(seed) == 0 {
			seed = []byte{0}
		}
		data := make([]byte, int(blocks%41)*BlockSize+int(tail%BlockSize))
		for i := range data {
			data[i] = seed[i%len(seed)] ^ byte(i/len(seed))
		}
		for _, alg := range Algorithms {
			checkHashBlocks(t, alg, data)
		}
	})
}

// BenchmarkHashBlocks compares the lane kernels with one block at a time
// over 64 blocks (one read chunk).
func BenchmarkHashBlocks(b *testing.B) {
	data := pattern(readChunk)
	for _, alg := range Algorithms {
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/lanes=%v", alg, on), func(b *testing.B) {
				setMultiBuffer(b, on)
				h := alg.newHash()
				out := make([]byte, readChunk/BlockSize*alg.Size())
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					hashBlocks(alg, h, data, out, nil)
				}
			})
		}
	}
}
