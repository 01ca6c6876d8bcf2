package oci

import (
	"crypto/sha256"
	"fmt"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"cfsboot/gen/erofs"
)

// FuzzLayer feeds arbitrary blobs (tar, gzip or zstd) through the layer
// reader, on top of a lower layer: it must never panic, and whatever tree
// it accepts must make a valid image.
func FuzzLayer(f *testing.F) {
	l1, l2 := twoLayerImage(f)
	for _, layer := range []v1.Layer{gzipLayer(f, l2), zstdLayer(f, l2), uncompressedLayer(l2), gzipLayer(f, tarOf(f, hardlink("x", "etc/passwd")))} {
		rc, err := layer.Compressed()
		if err != nil {
			f.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		f.Add(data)
	}
	f.Add(tarOf(f, symlink("a", "/etc"), file("a/passwd", "x")))
	f.Add(tarOf(f, file("a", "1"), whiteout(".wh.a"), whiteout("opt/.wh..wh..opq")))
	f.Add([]byte{})
	limits := Limits{MaxLayerBytes: 16 << 20, MaxRatio: 100, RatioGrace: 1 << 20}
	f.Fuzz(func(t *testing.T, blob []byte) {
		fs := newRootfs()
		var st Stats
		if err := fs.applyTar("lower", bytesReader(l1), DigestOnly{}, nil, &st); err != nil {
			t.Fatal(err)
		}
		fs.layer = 1
		blobDigest := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(blob))}
		diffID := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(nil))}
		err := readLayer(bytesReader(blob), blobDigest, diffID, limits, func(r io.Reader) error {
			return fs.applyTar("fuzz", r, DigestOnly{}, newPuts(DigestOnly{}), &st)
		})
		if err == nil {
			t.Skip("the diff ID cannot match")
		}
		root, err := fs.build()
		if err != nil {
			t.Fatalf("build after apply: %v", err)
		}
		if _, _, err := ImageDigest(root, erofs.DefaultOptions()); err != nil {
			t.Fatalf("image of an accepted tree: %v", err)
		}
	})
}

// FuzzSELinuxPolicy parses arbitrary file_contexts and .subs text: it must
// never panic, and a parsed policy must answer lookups.
func FuzzSELinuxPolicy(f *testing.F) {
	f.Add([]byte("/usr(/.*)?\tsystem_u:object_r:usr_t:s0\n/tmp\t-d\t<<none>>\n"), []byte("/var/home /home\n"))
	f.Add([]byte("/x(?=y)\tx_t\n"), []byte(""))
	f.Add([]byte("/a|/b\t-l\tctx\n/\\\\\ty\n"), []byte("# c\n/a /b\n"))
	f.Add([]byte("/usr/bin/x\t--\ta\n/usr/b\\.?in/x\tb\n/tm+p\t-d\tc\n/v(ar)?/home/x\td\n"), []byte(""))
	f.Fuzz(func(t *testing.T, specs, subs []byte) {
		p := &selinuxPolicy{aliases: map[string]string{}}
		if p.addSpecs(specs) != nil || p.addAliases(subs) != nil {
			return
		}
		for _, path := range []string{"/", "/usr/bin/x", "/tmp", "/a", "/var/home/x"} {
			for _, typ := range []byte("-dlcbps") {
				label, ok := p.lookup(path, typ)
				// The prefix index must not change the answer of trying
				// every spec, last first.
				wantLabel, wantOK := "", false
				for i := len(p.specs) - 1; i >= 0; i-- {
					if p.specs[i].re.MatchString(path + string(typ)) {
						wantLabel, wantOK = p.specs[i].context, p.specs[i].context != "<<none>>"
						if !wantOK {
							wantLabel = ""
						}
						break
					}
				}
				if label != wantLabel || ok != wantOK {
					t.Fatalf("lookup(%q, %c) = %q %v, every spec says %q %v", path, typ, label, ok, wantLabel, wantOK)
				}
			}
		}
	})
}
