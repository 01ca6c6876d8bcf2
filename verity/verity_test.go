package verity

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

var sizes = []int{0, 1, 4095, 4096, 4097, readChunk - 1, readChunk, readChunk + 1, 4096 * 128, 4096*128 + 1, 4096*129 + 7, 1<<20 + 1, 9<<20 + 12345}

// TestAgainstFsverityTool checks every code path (stream, bytes, parallel
// file) of both algorithms, and the SHA-256 Digest API over them, against the
// fsverity-utils oracle.
func TestAgainstFsverityTool(t *testing.T) {
	tool, err := exec.LookPath("fsverity")
	if err != nil {
		t.Skip("fsverity (Debian package fsverity) not installed: no oracle")
	}
	dir := t.TempDir()
	for _, n := range sizes {
		data := pattern(n)
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, alg := range Algorithms {
			out, err := exec.Command(tool, "digest", "--compact", "--hash-alg="+alg.String(), path).Output()
			if err != nil {
				t.Fatalf("fsverity digest: %v", err)
			}
			want := strings.TrimSpace(string(out))
			s, err := alg.Compute(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			f, err := alg.ComputeFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string]Sum{"Compute": s, "ComputeBytes": alg.ComputeBytes(data), "ComputeFile": f} {
				if got.String() != want || got.Algorithm() != alg {
					t.Errorf("size %d: %s.%s = %s %s, fsverity digest = %s", n, alg, name, got.Algorithm(), got, want)
				}
			}
			if alg != SHA256 {
				continue
			}
			d, err := ComputeFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string]Digest{"Compute": mustDigest(Compute(bytes.NewReader(data))), "ComputeBytes": ComputeBytes(data), "ComputeFile": d} {
				if got.String() != want {
					t.Errorf("size %d: %s = %s, fsverity digest = %s", n, name, got, want)
				}
			}
		}
	}
}

func mustDigest(d Digest, err error) Digest {
	if err != nil {
		panic(err)
	}
	return d
}

// TestKnownAnswers holds where the fsverity tool is absent; the values were
// computed with `fsverity digest` (fsverity-utils 1.5).
func TestKnownAnswers(t *testing.T) {
	for _, c := range []struct {
		alg  Algorithm
		data []byte
		want string
	}{
		{SHA256, nil, "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"},
		{SHA256, []byte("hello\n"), "9c76eecc7b76fcb46199cb27b90cf59a660e10575bb0412128905129d5b1c2aa"},
		{SHA256, make([]byte, 1<<20+1), "5ceb20530731a1a1cea6a4badc2fabecc8b9f15481657e1eb8fab82d8b2f2268"},
		{SHA512, nil, "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d10adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf"},
		{SHA512, []byte("hello\n"), "21fe275216d7dafb8afa8f8257ae96215b74c1dad980238e6fdbbd0c41a44adb8d3e1f95c7e3dad3e25037369d1c87dd107ceb7eb9c9c868eb2b18b57ddd4125"},
		{SHA512, make([]byte, 1<<20+1), "7ffd0fffb514d4ecb064c9ad2fd83fe651cbaca6baad420e015c7061d53fe1fac7fc78c116620152963af985bf28f0309b94bdb365af164a825dfca9625fdc6a"},
	} {
		if got := c.alg.ComputeBytes(c.data).String(); got != c.want {
			t.Errorf("%s of %d bytes: %s, want %s", c.alg, len(c.data), got, c.want)
		}
	}
}

func TestSum(t *testing.T) {
	for _, alg := range Algorithms {
		s := alg.ComputeBytes([]byte("x"))
		back, err := ParseSum(strings.ToUpper(s.String()))
		if err != nil || back != s {
			t.Fatalf("%s round trip: %v %v", alg, back, err)
		}
		if len(s.Bytes()) != alg.Size() || len(s.String()) != 2*alg.Size() {
			t.Errorf("%s: %d bytes, %d hex digits", alg, len(s.Bytes()), len(s.String()))
		}
		again, err := NewSum(alg, s.Bytes())
		if err != nil || again != s {
			t.Errorf("%s NewSum: %v %v", alg, again, err)
		}
		if spec, err := ParseSpec(alg.Spec()); err != nil || spec != alg {
			t.Errorf("%s spec %q: %v %v", alg, alg.Spec(), spec, err)
		}
	}
	d := ComputeBytes([]byte("x"))
	if d.Sum() != SHA256.ComputeBytes([]byte("x")) {
		t.Error("Digest.Sum differs from the SHA-256 Sum")
	}
	if back, ok := d.Sum().Digest(); !ok || back != d {
		t.Error("Sum.Digest does not give the SHA-256 digest back")
	}
	if _, ok := SHA512.ComputeBytes(nil).Digest(); ok {
		t.Error("Sum.Digest converted a SHA-512 digest")
	}
	// Same bytes, other algorithm: never equal.
	short, _ := NewSum(SHA256, make([]byte, 32))
	long, _ := NewSum(SHA512, make([]byte, 64))
	if short == long || short.IsZero() || !(Sum{}).IsZero() {
		t.Error("Sum equality ignores the algorithm")
	}
	if _, err := ParseSumAlgorithm(SHA512, d.String()); err == nil {
		t.Error("a sha256-length digest parsed as sha512")
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("a", 63), strings.Repeat("a", 96), strings.Repeat("a", 127), strings.Repeat("a", 129), strings.Repeat("z", 128)} {
		if _, err := ParseSum(bad); err == nil {
			t.Errorf("ParseSum(%q) accepted", bad)
		}
	}
	if _, err := NewSum(SHA512, make([]byte, 32)); err == nil {
		t.Error("NewSum accepted a short sha512")
	}
	if _, err := NewSum(3, make([]byte, 32)); err == nil {
		t.Error("NewSum accepted algorithm 3")
	}
	for _, bad := range []string{"sha512", "sha512-13", "sha1-12", "sha256-012", "-12", "sha256-12-"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		}
	}
}

func FuzzParseSum(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add(strings.Repeat("CD", 64))
	f.Add("xyz")
	f.Fuzz(func(t *testing.T, s string) {
		sum, err := ParseSum(s)
		if err != nil {
			return
		}
		if !strings.EqualFold(sum.String(), s) || sum.Algorithm().Size()*2 != len(s) {
			t.Fatalf("ParseSum(%q) = %s %s", s, sum.Algorithm(), sum)
		}
	})
}

func TestParseDigest(t *testing.T) {
	d := ComputeBytes([]byte("x"))
	back, err := ParseDigest(strings.ToUpper(d.String()))
	if err != nil || back != d {
		t.Fatalf("round trip: %v %v", back, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("a", 63), strings.Repeat("a", 65)} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) accepted", bad)
		}
	}
}

func TestComputeFileErrors(t *testing.T) {
	if _, err := ComputeFile(filepath.Join(t.TempDir(), "missing")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ComputeFile(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

func BenchmarkComputeFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big")
	data := pattern(256 << 20)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ComputeFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHasherMatchesComputeBytes(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, size := range []int{0, 1, BlockSize - 1, BlockSize, BlockSize + 1, 129 * BlockSize, 129*BlockSize + 17} {
		data := make([]byte, size)
		rng.Read(data)
		h := NewHasher()
		// Uneven writes cross block boundaries in every way.
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+rng.Intn(3*BlockSize))
			h.Write(rest[:n])
			rest = rest[n:]
		}
		if got, want := h.Digest(), ComputeBytes(data); got != want || h.Size() != uint64(size) {
			t.Errorf("size %d: Hasher %s (%d bytes), ComputeBytes %s", size, got, h.Size(), want)
		}
	}
}

// A Hasher reset after a large input (a tree of several levels) digests
// the next input as a new one does, in both algorithms.
func TestHasherReset(t *testing.T) {
	big := bytes.Repeat([]byte("abc"), 300*BlockSize)
	for _, alg := range Algorithms {
		h := alg.NewHasher()
		h.Write(big)
		h.Sum()
		for _, data := range [][]byte{nil, []byte("x"), big[:5*BlockSize+3]} {
			h.Reset()
			h.Write(data)
			if got, want := h.Sum(), alg.ComputeBytes(data); got != want || h.Size() != uint64(len(data)) {
				t.Errorf("%s, %d bytes after a reset: %s, want %s", alg, len(data), got, want)
			}
		}
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("device went away")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

// Compute's pooled state carries nothing from one input to the next: not
// a deeper tree's levels, nor a failed read's partial blocks.
func TestComputeStateReuse(t *testing.T) {
	for _, alg := range Algorithms {
		for _, n := range []int{9<<20 + 12345, 1, 0, 4096*129 + 7, 4097} {
			if _, err := alg.Compute(&failingReader{n: 3 * readChunk / 2}); err == nil {
				t.Fatal("a failing reader's error was lost")
			}
			data := pattern(n)
			got, err := alg.Compute(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if want := alg.ComputeBytes(data); got != want {
				t.Errorf("%s, %d bytes after other inputs: %s, want %s", alg, n, got, want)
			}
		}
	}
}

// The parallel path over several windows, twice (pooled state reused),
// agrees with the serial one.
func TestComputeReaderAtWindows(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one CPU: ComputeReaderAt takes the serial path")
	}
	// Two windows and a partial one; exactly one window (no partial hash
	// block at the end).
	for _, data := range [][]byte{pattern(2*windowBlocks*BlockSize + 12345), pattern(windowBlocks * BlockSize)} {
		for _, alg := range Algorithms {
			want := alg.ComputeBytes(data)
			for i := 0; i < 2; i++ {
				got, err := alg.ComputeReaderAt(bytes.NewReader(data), int64(len(data)))
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s, %d bytes, run %d: ComputeReaderAt %s, ComputeBytes %s", alg, len(data), i, got, want)
				}
			}
		}
	}
}
