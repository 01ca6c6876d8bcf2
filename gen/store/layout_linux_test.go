package store_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// splitstream is a composefs-rs splitstream with the given stream and
// object references (SHA-256, the repr(C) layout) and nothing inline.
func splitstream(streams, objects []verity.Sum) []byte {
	le := binary.LittleEndian
	rng := func(b []byte, start, end int) { le.PutUint64(b, uint64(start)); le.PutUint64(b[8:], uint64(end)) }
	hdr, info := make([]byte, 32), make([]byte, 80)
	sr := 32 + 80
	or := sr + 32*len(streams)
	end := or + 32*len(objects)
	copy(hdr, "SplitStream")
	hdr[14], hdr[15] = 1, 12
	rng(hdr[16:], 32, sr)
	rng(info[0:], sr, or)
	rng(info[16:], or, end)
	rng(info[32:], end, end)
	rng(info[48:], end, end)
	var b bytes.Buffer
	b.Write(hdr)
	b.Write(info)
	for _, d := range append(streams, objects...) {
		b.Write(d.Bytes())
	}
	return b.Bytes()
}

func put(t *testing.T, st *store.Store, data []byte) verity.Sum {
	t.Helper()
	b := st.NewBatch()
	d, err := b.AddObject(func(w io.Writer) error { _, err := w.Write(data); return err })
	if err == nil {
		err = b.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// A store laid out by composefs-rs: images as symlinks into objects/, refs,
// and splitstreams naming objects and other streams. gc removes only what
// none of them reaches.
func TestGCKeepsWhatComposefsRsReferences(t *testing.T) {
	_, st, _ := fill(t)
	dir := st.Dir()
	layerObj := put(t, st, []byte("a file inside a layer"))
	deepObj := put(t, st, []byte("a file of a stream named only by another stream"))
	inner := put(t, st, splitstream(nil, []verity.Sum{deepObj}))
	layer := put(t, st, splitstream([]verity.Sum{inner}, []verity.Sum{layerObj}))
	symlink(t, "../"+filepath.Join("objects", tree.ObjectPathOf(layer)), filepath.Join(dir, "streams", "oci-layer-sha256:0a"))
	symlink(t, "../../oci-layer-sha256:0a", filepath.Join(dir, "streams", "refs", "mytar"))

	// An image kept as an object, images/<hex> a symlink to it.
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "only-here"), bytes.Repeat([]byte("z"), 9000), 0o644)
	root, err := source.Walk(src, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := st.NewBatch()
	n := root.Lookup("only-here")
	d, err := b.AddObject(func(w io.Writer) error { return source.CopyContent(n, w) })
	if err != nil || b.Flush() != nil {
		t.Fatal(err)
	}
	n.SetFileDigest(d)
	img, err := erofs.Build(root, erofs.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	imgObj := put(t, st, img)
	symlink(t, "../objects/"+tree.ObjectPathOf(imgObj), filepath.Join(dir, "images", imgObj.String()))
	symlink(t, "../"+imgObj.String(), filepath.Join(dir, "images", "refs", "rs-image"))

	orphan := addOrphan(t, st, "nobody needs this")
	ex := reopen(t, st, store.Exclusive)
	removed, _, err := ex.GC(false)
	if err != nil || len(removed) != 1 || removed[0] != ex.ObjectPath(orphan) {
		t.Fatalf("gc removed %v (%v), want only %s", removed, err, ex.ObjectPath(orphan))
	}
	if problems, err := ex.Fsck(); err != nil || len(problems) != 0 {
		t.Fatalf("fsck: %v %v", problems, err)
	}
	// A symlinked image must point to the object its name gives.
	wrong := filepath.Join(dir, "images", strings.Repeat("ab", 32))
	symlink(t, "../objects/"+tree.ObjectPathOf(imgObj), wrong)
	if problems, _ := ex.Fsck(); len(problems) != 1 || problems[0].Path != wrong || !strings.Contains(problems[0].Reason, "not the one its name gives") {
		t.Errorf("fsck of a misdirected image: %v", problems)
	}
	os.Remove(wrong)
	// A stream gc cannot read stops it: what it keeps alive is unknown.
	bad := put(t, ex, []byte("not a splitstream"))
	symlink(t, "../objects/"+tree.ObjectPathOf(bad), filepath.Join(dir, "streams", "broken"))
	if _, _, err := ex.GC(false); err == nil {
		t.Fatal("gc ran past an unreadable stream")
	}
}
