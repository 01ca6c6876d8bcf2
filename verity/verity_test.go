package verity

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

var sizes = []int{0, 1, 4095, 4096, 4097, 4096 * 128, 4096*128 + 1, 4096*129 + 7, 1<<20 + 1, 9<<20 + 12345}

// TestAgainstFsverityTool checks every code path (stream, bytes, parallel
// file) against the fsverity-utils oracle.
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
		out, err := exec.Command(tool, "digest", "--compact", path).Output()
		if err != nil {
			t.Fatalf("fsverity digest: %v", err)
		}
		want := strings.TrimSpace(string(out))
		s, err := Compute(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		f, err := ComputeFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string]Digest{"Compute": s, "ComputeBytes": ComputeBytes(data), "ComputeFile": f} {
			if got.String() != want {
				t.Errorf("size %d: %s = %s, fsverity digest = %s", n, name, got, want)
			}
		}
	}
}

// TestKnownAnswers holds where the fsverity tool is absent; the values were
// computed with `fsverity digest` (fsverity-utils 1.5).
func TestKnownAnswers(t *testing.T) {
	for _, c := range []struct {
		data []byte
		want string
	}{
		{nil, "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"},
		{[]byte("hello\n"), "9c76eecc7b76fcb46199cb27b90cf59a660e10575bb0412128905129d5b1c2aa"},
		{make([]byte, 1<<20+1), "5ceb20530731a1a1cea6a4badc2fabecc8b9f15481657e1eb8fab82d8b2f2268"},
	} {
		if got := ComputeBytes(c.data).String(); got != c.want {
			t.Errorf("%d bytes: %s, want %s", len(c.data), got, c.want)
		}
	}
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
