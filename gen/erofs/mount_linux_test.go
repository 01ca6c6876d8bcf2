package erofs_test

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"cfsboot/gen/erofs"
	"cfsboot/gen/tree"
	"cfsboot/mount"
	"cfsboot/verity"
)

// TestKernelMountsAllFormats: the host kernel mounts every format, and for
// objects named by SHA-512 and SHA-256 digests the overlay reads each file
// back byte for byte while the EROFS mount (the kernel's parser, not our
// reader) shows a metacopy xattr carrying the object's fs-verity digest as
// fsverity-utils computes it, with its algorithm byte. verity=off: the host
// kernel has no fs-verity.
func TestKernelMountsAllFormats(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts EROFS and overlayfs through the kernel")
	}
	for _, alg := range verity.Algorithms {
		objects := t.TempDir()
		root := &tree.Node{Mode: tree.SIFDIR | 0o755}
		sub := &tree.Node{Name: "sub", Mode: tree.SIFDIR | 0o750}
		if err := root.AddChild(sub); err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		for i, size := range []int{1, 4096, 70001, 1 << 20} {
			data := make([]byte, size)
			rand.New(rand.NewSource(int64(i))).Read(data)
			d := alg.ComputeBytes(data)
			obj := tree.ObjectPathOf(d)
			if err := os.MkdirAll(filepath.Join(objects, filepath.Dir(obj)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(objects, obj), data, 0o644); err != nil {
				t.Fatal(err)
			}
			n := &tree.Node{Name: "f" + string(rune('a'+i)), Mode: tree.SIFREG | 0o644, Nlink: 1, Size: uint64(size), Verity: d, Payload: obj}
			if err := sub.AddChild(n); err != nil {
				t.Fatal(err)
			}
			files["sub/"+n.Name] = data
		}
		for _, f := range erofs.Formats {
			t.Run(alg.String()+"-"+f.String(), func(t *testing.T) {
				img, err := erofs.Build(root, f.Options())
				if err != nil {
					t.Fatal(err)
				}
				lower, merged := mountImage(t, img, objects)
				for name, want := range files {
					got, err := os.ReadFile(filepath.Join(merged, name))
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("%s through the overlay: %d bytes, %v; want %d bytes", name, len(got), err, len(want))
					}
					meta := make([]byte, 256)
					n, err := unix.Lgetxattr(filepath.Join(lower, name), "trusted.overlay.metacopy", meta)
					if err != nil {
						t.Fatalf("%s: metacopy xattr: %v", name, err)
					}
					wantMeta := append([]byte{0, byte(4 + alg.Size()), 0, byte(alg)}, oracleDigest(t, alg, want)...)
					if !bytes.Equal(meta[:n], wantMeta) {
						t.Errorf("%s: metacopy %x, want %x", name, meta[:n], wantMeta)
					}
				}
			})
		}
	}
}

// oracleDigest is the fs-verity digest of data from fsverity-utils when
// installed, else from this repository's verity package.
func oracleDigest(t *testing.T, alg verity.Algorithm, data []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("fsverity"); err != nil {
		return alg.ComputeBytes(data).Bytes()
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("fsverity", "digest", "--compact", "--hash-alg="+alg.String(), path).Output()
	if err != nil {
		t.Fatal(err)
	}
	s, err := verity.ParseSumAlgorithm(alg, strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return s.Bytes()
}

// mountImage mounts img (EROFS) and an overlay of it over objects; both
// are unmounted when the test ends.
func mountImage(t *testing.T, img []byte, objects string) (lower, merged string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lower, merged = t.TempDir(), t.TempDir()
	if err := mount.EROFS(int(f.Fd()), lower); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(lower, unix.MNT_DETACH) })
	ov := mount.Overlay{Lower: []string{lower}, Data: []string{objects}, Composefs: true, Verity: mount.VerityOff}
	if err := ov.Mount(merged); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	return lower, merged
}
