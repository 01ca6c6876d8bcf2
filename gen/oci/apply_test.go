package oci

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"
	"testing"

	"cfsboot/gen/erofs"
	"cfsboot/verity"
)

func twoLayerImage(t testing.TB) ([]byte, []byte) {
	big := strings.Repeat("busybox!", 16) // 128 bytes: stored as an object
	l1 := tarOf(t,
		dir("./"),
		dir("etc/"), file("etc/passwd", "root"),
		dir("usr/"), dir("usr/bin/"),
		ent{name: "usr/bin/busybox", typ: tar.TypeReg, mode: 0o4755, body: big},
		hardlink("usr/bin/sh", "usr/bin/busybox"),
		symlink("bin", "usr/bin"),
		dir("dev/"),
		ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		ent{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o600},
		dir("opt/"), file("opt/a", "a"), file("opt/b", "b"),
		dir("var/"), dir("var/keep/"), file("var/keep/x", "x"),
		file("data", "f"),
		dir("tree/"), dir("tree/sub/"), file("tree/sub/file", "deep"),
		ent{name: "caps", typ: tar.TypeReg, mode: 0o755, uid: 1000, gid: 100, body: "c",
			xattrs: map[string]string{"security.capability": "cap", "user.foo": "bar", "user.unset": ""}},
	)
	l2 := tarOf(t,
		whiteout("etc/.wh.passwd"), file("etc/passwd", "new"),
		whiteout("opt/.wh..wh..opq"), file("opt/c", "c"),
		whiteout("usr/bin/.wh.busybox"),
		dir("data/"), file("data/inner", "i"),
		file("tree", "now a file"),
		ent{name: "var/keep/", typ: tar.TypeDir, mode: 0o700},
		whiteout("nothing/.wh.here"), whiteout(".wh.absent"),
	)
	return l1, l2
}

func TestApplyLayers(t *testing.T) {
	l1, l2 := twoLayerImage(t)
	sink := &memorySink{}
	var progress []string
	res, err := Import(imageOfTars(t, l1, l2), Options{Sink: sink, Progress: func(p Progress) {
		progress = append(progress, fmt.Sprintf("%d/%d %d", p.Layer, p.Layers, p.Bytes))
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Layer 1 has 141 content bytes, layer 2 another 15.
	if got := strings.Join(progress, ", "); got != "1/2 141, 2/2 156" {
		t.Errorf("progress %q", got)
	}
	want := strings.Join([]string{
		"/ 40755 0:0",
		"/bin 120777 0:0 -> usr/bin",
		"/caps 100755 1000:100 n1 \"c\" security.capability=cap user.foo=bar",
		"/data 40755 0:0",
		"/data/inner 100644 0:0 n1 \"i\"",
		"/dev 40755 0:0",
		"/dev/fifo 10600 0:0",
		"/dev/null 20666 0:0 rdev 0x103",
		"/etc 40755 0:0",
		"/etc/passwd 100644 0:0 n1 \"new\"",
		"/opt 40755 0:0",
		"/opt/c 100644 0:0 n1 \"c\"",
		"/tree 100644 0:0 n1 \"now a file\"",
		"/usr 40755 0:0",
		"/usr/bin 40755 0:0",
		"/usr/bin/sh 104755 0:0 n1 \"<128 bytes>\"",
		"/var 40755 0:0",
		"/var/keep 40700 0:0",
		"/var/keep/x 100644 0:0 n1 \"x\"",
	}, "\n")
	if got := listing(res.Tree); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	sh := res.Tree.Lookup("usr").Lookup("bin").Lookup("sh")
	if sh.Digest == nil || sink.objects[*sh.Digest] == nil || sh.Payload != sh.Digest.String()[:2]+"/"+sh.Digest.String()[2:] {
		t.Errorf("/usr/bin/sh: digest %v payload %q, not in the sink", sh.Digest, sh.Payload)
	}
	if want := verity.ComputeBytes([]byte(strings.Repeat("busybox!", 16))); *sh.Digest != want {
		t.Errorf("/usr/bin/sh digest %s, want %s", sh.Digest, want)
	}
	if res.Layers != 2 || res.Stats.Files != 12 {
		t.Errorf("layers %d files %d, want 2 and 12", res.Layers, res.Stats.Files)
	}
	if res.Tree.MtimeSec != testTime.Unix() || res.Tree.MtimeNsec != uint32(testTime.Nanosecond()) {
		t.Errorf("root mtime %d.%d, want the ./ entry's", res.Tree.MtimeSec, res.Tree.MtimeNsec)
	}
	if _, _, err := ImageDigest(res.Tree, erofs.DefaultOptions()); err != nil {
		t.Errorf("image of the tree: %v", err)
	}
}

func TestHardLinksShareAnInode(t *testing.T) {
	img := imageOfTars(t,
		tarOf(t, file("a", strings.Repeat("x", 100)), hardlink("b", "a"), hardlink("c", "./b"), file("d", "d")),
		tarOf(t, hardlink("e", "d"), file("d", "new d")),
	)
	res, err := Import(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"/ 40755 0:0",
		"/a 100644 0:0 n3 \"<100 bytes>\"",
		"/b => /a",
		"/c => /a",
		"/d 100644 0:0 n1 \"new d\"",
		"/e 100644 0:0 n1 \"d\"",
	}, "\n")
	if got := listing(res.Tree); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
}

// OCI: a whiteout hides only lower layers' files, even when it comes after
// this layer's entry of the same name.
func TestWhiteoutAfterSameLayerEntry(t *testing.T) {
	img := imageOfTars(t,
		tarOf(t, file("-a", "old"), dir("-d/"), file("-d/old", "o"), dir("e/"), file("e/old", "o"), file("gone", "g")),
		tarOf(t, file("-a", "new"), whiteout(".wh.-a"), dir("-d/"), file("-d/new", "n"), whiteout(".wh.-d"),
			file("e/new", "n"), whiteout(".wh.e"), whiteout(".wh.gone")),
	)
	res, err := Import(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"/ 40755 0:0",
		"/-a 100644 0:0 n1 \"new\"",
		"/-d 40755 0:0",
		"/-d/new 100644 0:0 n1 \"n\"",
		"/e 40755 0:0",
		"/e/new 100644 0:0 n1 \"n\"",
	}, "\n")
	if got := listing(res.Tree); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
}

// Each hostile layer is rejected with an error naming the layer and the
// entry.
func TestHostileEntries(t *testing.T) {
	long := strings.Repeat("n", 256)
	for _, tc := range []struct {
		name    string
		lower   []ent // an earlier layer, if any
		entries []ent
		entry   string // the entry the error names
		reason  string
	}{
		{"absolute", nil, []ent{file("/etc/passwd", "x")}, "/etc/passwd", "absolute"},
		{"dotdot", nil, []ent{file("a/../../etc/passwd", "x")}, "a/../../etc/passwd", "climbs out"},
		{"dotdot first", nil, []ent{file("../x", "x")}, "../x", "climbs out"},
		{"symlink as dir", nil, []ent{symlink("a", "/etc"), file("a/passwd", "x")}, "a/passwd", "symlink"},
		{"symlink as dir, lower layer", []ent{symlink("a", "../../etc")}, []ent{file("a/passwd", "x")}, "a/passwd", "symlink"},
		{"relative symlink as dir", nil, []ent{dir("d/"), symlink("d/l", "."), file("d/l/x", "x")}, "d/l/x", "symlink"},
		{"file as dir", nil, []ent{file("f", "x"), file("f/x", "x")}, "f/x", "not a directory"},
		{"hard link to missing", nil, []ent{hardlink("l", "missing")}, "l", "no earlier entry"},
		{"hard link to later", nil, []ent{hardlink("l", "later"), file("later", "x")}, "l", "no earlier entry"},
		{"hard link to dir", nil, []ent{dir("d/"), hardlink("l", "d")}, "l", "directory"},
		{"hard link to root", nil, []ent{hardlink("l", "./")}, "l", "root"},
		{"hard link climbing out", nil, []ent{hardlink("l", "../etc/shadow")}, "l", "climbs out"},
		{"hard link through symlink", nil, []ent{dir("d/"), file("d/f", "x"), symlink("s", "d"), hardlink("l", "s/f")}, "l", "symlink"},
		{"duplicate file", nil, []ent{file("a", "1"), file("a", "2")}, "a", "duplicate"},
		{"duplicate dir", nil, []ent{dir("d/"), dir("d/")}, "d/", "duplicate"},
		{"duplicate root", nil, []ent{dir("./"), dir(".")}, ".", "duplicate"},
		{"file over a dir of the same layer", nil, []ent{file("a/b", "1"), file("a", "2")}, "a", "wrote into"},
		{"symlink over a dir of the same layer", []ent{dir("a/")}, []ent{file("a/b", "1"), symlink("a", "/etc")}, "a", "wrote into"},
		{"whiteout as dir", nil, []ent{file(".wh.a/b", "x")}, ".wh.a/b", "whiteout name"},
		{"whiteout dir entry", nil, []ent{dir(".wh.a/")}, ".wh.a/", "whiteout is not a regular file"},
		{"whiteout through symlink", nil, []ent{symlink("s", "/etc"), whiteout("s/.wh.passwd")}, "s/.wh.passwd", "symlink"},
		{"aufs metadata", nil, []ent{whiteout(".wh..wh.plnk")}, ".wh..wh.plnk", "AUFS"},
		{"root as file", nil, []ent{file(".", "x")}, ".", "root must be a directory"},
		{"long name", nil, []ent{file(long, "x")}, long, "longer than 255"},
		{"long path", nil, []ent{file(strings.Repeat("d/", 2100)+"f", "x")}, strings.Repeat("d/", 2100) + "f", "longer than 4096"},
		{"long symlink", nil, []ent{symlink("s", strings.Repeat("t", 4096))}, "s", "symlink target"},
		{"unknown type", nil, []ent{{name: "s", typ: 'Z', mode: 0o644}}, "s", "unsupported tar entry type"},
		{"xattr too big", nil, []ent{{name: "x", typ: tar.TypeReg, mode: 0o644, xattrs: map[string]string{"user.big": strings.Repeat("v", 65537)}}}, "x", "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tars := [][]byte{}
			layer := "layer 1"
			if tc.lower != nil {
				tars = append(tars, tarOf(t, tc.lower...))
				layer = "layer 2"
			}
			tars = append(tars, tarOf(t, tc.entries...))
			_, err := Import(imageOfTars(t, tars...), Options{})
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v, want an EntryError", err)
			}
			if !strings.HasPrefix(ee.Layer, layer+" (sha256:") || ee.Entry != tc.entry || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q (layer %q, entry %q), want %s, entry %q, %q", err, ee.Layer, ee.Entry, layer, tc.entry, tc.reason)
			}
		})
	}
}

// A PAX sparse file (GNU 1.0) whose holes expand to a terabyte is
// refused before any of it is read.
func TestSparseBomb(t *testing.T) {
	pax := ""
	for _, kv := range []string{"GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.name=big", "GNU.sparse.realsize=1099511627776"} {
		n := len(kv) + 3
		n += len(fmt.Sprint(n+len(kv)+3)) - 1
		rec := fmt.Sprintf("%d %s\n", n, kv)
		if len(rec) != n {
			rec = fmt.Sprintf("%d %s\n", len(rec), kv)
		}
		pax += rec
	}
	data := tarOf(t, ent{name: "pax", typ: tar.TypeReg, mode: 0o644, body: pax, mtime: 1700000000},
		ent{name: "GNUSparseFile.0/big", typ: tar.TypeReg, mode: 0o644, body: "1\n1099511627775\n1\n" + strings.Repeat("\x00", 494) + "x", mtime: 1700000000})
	data[156] = tar.TypeXHeader
	copy(data[148:156], "        ")
	sum := 0
	for _, c := range data[:512] {
		sum += int(c)
	}
	copy(data[148:156], fmt.Sprintf("%06o\x00 ", sum))
	_, err := Import(imageOfTars(t, data), Options{})
	if err == nil || !strings.Contains(err.Error(), "sparse files are not supported") {
		t.Errorf("error %v, want sparse files refused", err)
	}
}

// A PAX header bigger than archive/tar's 1 MiB bound is an error naming
// the layer.
func TestOversizedHeader(t *testing.T) {
	data := tarOf(t, ent{name: "pax", typ: tar.TypeReg, mode: 0o644, size: 2 << 20, mtime: 1700000000}, file("x", "x"))
	// Turn the first entry into a PAX extended header: type 'x', checksum
	// recomputed.
	data[156] = tar.TypeXHeader
	copy(data[148:156], "        ")
	sum := 0
	for _, c := range data[:512] {
		sum += int(c)
	}
	copy(data[148:156], fmt.Sprintf("%06o\x00 ", sum))
	_, err := Import(imageOfTars(t, data), Options{})
	if err == nil || !strings.Contains(err.Error(), "layer 1 (sha256:") || !strings.Contains(err.Error(), "reading tar after 0 entries") {
		t.Errorf("error %v, want the tar reader's, naming layer 1", err)
	}
}
