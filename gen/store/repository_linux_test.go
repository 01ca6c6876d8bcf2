package store_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cfsboot/gen/erofs"
	"cfsboot/gen/repometa"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// createRepo makes a composefs-rs repository (meta.json) with alg.
func createRepo(t *testing.T, alg verity.Algorithm, formats repometa.Formats) *store.Store {
	t.Helper()
	meta, err := repometa.New(alg, formats)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Create(filepath.Join(t.TempDir(), "repo"), meta)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestSHA512Repository: a repository whose meta.json says
// fsverity-sha512-12 names objects and images by SHA-512 fs-verity
// digests, keeps each image as an object with images/<hex> a relative
// symlink to it (as composefs-rs does), writes metacopy xattrs of that
// length, and its fsck checks the SHA-512 digests of the contents.
func TestSHA512Repository(t *testing.T) {
	src, _, _ := fill(t)
	st := createRepo(t, verity.SHA512, repometa.Formats{Default: repometa.FormatV1})
	data, err := os.ReadFile(filepath.Join(st.Dir(), "meta.json"))
	if err != nil || !strings.Contains(string(data), `"algorithm": "fsverity-sha512-12"`) || !strings.Contains(string(data), `"v1_erofs"`) {
		t.Fatalf("meta.json %q %v", data, err)
	}
	if st.Algorithm() != verity.SHA512 || st.Meta() == nil {
		t.Fatal("store does not take meta.json's algorithm")
	}
	root, err := source.Walk(src, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, img, err := st.Commit(root, erofs.FormatV1.Options())
	if err != nil {
		t.Fatal(err)
	}
	if d.Algorithm() != verity.SHA512 || d != verity.SHA512.ComputeBytes(img) {
		t.Fatalf("image digest %s:%s", d.Algorithm(), d)
	}
	link, err := os.Readlink(st.ImagePath(d))
	if want := "../objects/" + tree.ObjectPathOf(d); err != nil || link != want {
		t.Fatalf("images/%s -> %q (%v), want %q", d, link, err, want)
	}
	// Every object is named by its content's SHA-512 digest, and every
	// external file of the image expects exactly that digest.
	for _, p := range objects(t, st) {
		name := filepath.Base(filepath.Dir(p)) + filepath.Base(p)
		want, err := verity.SHA512.ComputeFile(p)
		if err != nil || name != want.String() {
			t.Errorf("object %s has SHA-512 digest %s", p, want)
		}
	}
	back, err := erofs.Read(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	external := 0
	back.Walk(func(n *tree.Node) error {
		if n.Mode&tree.SIFMT == tree.SIFREG && n.Content == nil && n.Size > 0 {
			external++
			got, ok := n.FileDigest()
			want, err := verity.SHA512.ComputeFile(filepath.Join(src, n.Path()))
			if !ok || err != nil || got != want || n.Payload != tree.ObjectPathOf(want) {
				t.Errorf("%s: metacopy %s:%s, redirect %s; want %s", n.Path(), got.Algorithm(), got, n.Payload, want)
			}
		}
		return nil
	})
	if external == 0 {
		t.Fatal("no external files")
	}
	if problems, err := st.Fsck(); err != nil || len(problems) > 0 {
		t.Fatalf("fsck: %v %v", problems, err)
	}
	// gc keeps the image's own object (the symlink's target) and the
	// objects it references.
	st = reopen(t, st, store.Exclusive)
	if removed, _, err := st.GC(false); err != nil || len(removed) > 0 {
		t.Fatalf("gc removed %v: %v", removed, err)
	}
	// A changed SHA-512 object is found by its content.
	obj := objects(t, st)[0]
	os.WriteFile(obj, []byte("changed"), 0o644)
	problems, err := st.Fsck()
	if err != nil || !hasProblem(problems, obj, "content has fs-verity digest") {
		t.Fatalf("fsck after damage: %v %v", problems, err)
	}
	// An object named for SHA-256 is not this store's.
	foreign := filepath.Join(st.Dir(), "objects", "ab", strings.Repeat("c", 62))
	os.MkdirAll(filepath.Dir(foreign), 0o755)
	os.WriteFile(foreign, []byte("x"), 0o644)
	if problems, _ := st.Fsck(); !hasProblem(problems, foreign, "not named by a sha512 digest") {
		t.Fatalf("fsck of a SHA-256 name: %v", problems)
	}
}

func hasProblem(problems []store.Problem, path, reason string) bool {
	for _, p := range problems {
		if p.Path == path && strings.Contains(p.Reason, reason) {
			return true
		}
	}
	return false
}

// TestStoreWithoutMetaKeepsPlainImages: a store without meta.json is a
// SHA-256 store whose images are plain files, as before.
func TestStoreWithoutMetaKeepsPlainImages(t *testing.T) {
	_, st, img := fill(t)
	fi, err := os.Lstat(filepath.Join(st.Dir(), "images", img))
	if err != nil || !fi.Mode().IsRegular() || len(img) != 64 || st.Algorithm() != verity.SHA256 || st.Meta() != nil {
		t.Fatalf("image %s: %v %v", img, fi, err)
	}
}

// TestMetaRules: meta.json's version and feature rules, as composefs-rs
// applies them.
func TestMetaRules(t *testing.T) {
	write := func(t *testing.T, meta string) string {
		dir := filepath.Join(t.TempDir(), "repo")
		os.MkdirAll(filepath.Join(dir, "objects"), 0o755)
		os.MkdirAll(filepath.Join(dir, "images"), 0o755)
		os.WriteFile(filepath.Join(dir, "meta.json"), []byte(meta), 0o644)
		return dir
	}
	newer := write(t, `{"version":2,"algorithm":"fsverity-sha512-12"}`)
	if _, err := store.OpenExisting(newer, store.OpenOptions{}); err == nil || !strings.Contains(err.Error(), "unsupported repository format version 2") {
		t.Errorf("version 2: %v", err)
	}
	incompat := write(t, `{"version":1,"algorithm":"fsverity-sha512-12","features":{"incompatible":["zstd-objects"]}}`)
	if _, err := store.Open(incompat); err == nil || !strings.Contains(err.Error(), "zstd-objects") {
		t.Errorf("unknown incompatible feature: %v", err)
	}
	ro := write(t, `{"version":1,"algorithm":"fsverity-sha512-12","features":{"read-only-compatible":["new-index"]}}`)
	if _, err := store.Open(ro); err == nil || !strings.Contains(err.Error(), "read-only for this cfsboot") || !strings.Contains(err.Error(), "new-index") {
		t.Errorf("writing with an unknown read-only-compatible feature: %v", err)
	}
	if _, err := store.OpenExisting(ro, store.OpenOptions{Lock: store.Exclusive}); err == nil || !strings.Contains(err.Error(), "read-only for this cfsboot") {
		t.Errorf("gc with an unknown read-only-compatible feature: %v", err)
	}
	st, err := store.OpenExisting(ro, store.OpenOptions{})
	if err != nil {
		t.Fatalf("reading with an unknown read-only-compatible feature: %v", err)
	}
	if problems, err := st.Fsck(); err != nil || len(problems) > 0 {
		t.Errorf("fsck: %v %v", problems, err)
	}
	st.Close()
	compat := write(t, `{"version":1,"algorithm":"fsverity-sha256-12","features":{"compatible":["whatever"]}}`)
	if st, err := store.Open(compat); err != nil {
		t.Errorf("unknown compatible feature: %v", err)
	} else {
		st.Close()
	}
	meta, _ := repometa.New(verity.SHA512, repometa.Formats{Default: repometa.FormatV1})
	if _, err := store.Create(compat, meta); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Create over a repository: %v", err)
	}
}
