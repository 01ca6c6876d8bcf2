package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"cfsboot/mount"
)

// sourceFiles writes a tree with inline and external files.
func sourceFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{"etc/tiny": []byte("t\n")}
	for i, size := range []int{65, 4096, 70001, 1 << 20} {
		data := make([]byte, size)
		rand.New(rand.NewSource(int64(i))).Read(data)
		files[fmt.Sprintf("usr/f%d", i)] = data
	}
	for name, data := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// TestStoreInitAndSHA512Images: "store init" writes meta.json as
// composefs-rs does; image create into it names everything by SHA-512,
// symlinks the image, writes each erofs_formats format, and agrees with
// image create --hash sha512 without a store; a mismatching --hash is a
// usage error.
func TestStoreInitAndSHA512Images(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	sourceFiles(t, src)
	repo := filepath.Join(dir, "repo")
	code, out, errOut := cli("store", "init", "--store", repo, "--extra-format", "v2", "--json")
	var rep storeInitReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Algorithm != "fsverity-sha512-12" || fmt.Sprint(rep.Formats) != "[1 2]" {
		t.Fatalf("store init: %d %q %q", code, out, errOut)
	}
	meta, _ := os.ReadFile(filepath.Join(repo, "meta.json"))
	want := "{\n  \"version\": 1,\n  \"algorithm\": \"fsverity-sha512-12\",\n  \"features\": {\n    \"compatible\": [],\n    \"read-only-compatible\": [\n      \"v1_erofs\"\n    ],\n    \"incompatible\": []\n  },\n  \"erofs_formats\": {\n    \"default\": 1,\n    \"extra\": [\n      2\n    ]\n  }\n}\n"
	if string(meta) != want {
		t.Errorf("meta.json:\n%s\nwant\n%s", meta, want)
	}
	if code, _, errOut := cli("store", "init", "--store", repo); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Errorf("store init over a repository: %d %q", code, errOut)
	}
	code, out, errOut = cli("image", "create", src, "--store", repo, "--use-epoch", "--json")
	var created imageCreated
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil {
		t.Fatalf("image create --store: %d %q %q", code, out, errOut)
	}
	if created.Algorithm != "sha512" || len(created.Digest) != 128 || created.Format != "v1" || len(created.Extra) != 1 || created.Extra[0].Format != "v2" {
		t.Fatalf("image create --store: %+v", created)
	}
	for _, d := range []string{created.Digest, created.Extra[0].Digest} {
		if link, err := os.Readlink(filepath.Join(repo, "images", d)); err != nil || link != "../objects/"+d[:2]+"/"+d[2:] {
			t.Errorf("images/%s -> %q %v", d, link, err)
		}
	}
	img := filepath.Join(dir, "img")
	code, out, errOut = cli("image", "create", src, "--hash", "sha512", "--format", "v1", "--use-epoch", "-o", img)
	if code != 0 || strings.TrimSpace(out) != created.Digest {
		t.Fatalf("image create --hash sha512: %q, want the store's %s (%s)", out, created.Digest, errOut)
	}
	if code, out, _ := cli("image", "digest", "--hash", "sha512", img); code != 0 || out != "sha512:"+created.Digest+" "+img+"\n" {
		t.Fatalf("image digest: %q", out)
	}
	if code, out, _ := cli("store", "fsck", "--store", repo); code != 0 || !strings.Contains(out, ": ok") {
		t.Fatalf("fsck: %q %d", out, code)
	}
	if code, _, errOut := cli("image", "create", src, "--store", repo, "--hash", "sha256"); code != exitUsage || !strings.Contains(errOut, "names objects by sha512") {
		t.Errorf("--hash sha256 into a SHA-512 store: %d %q", code, errOut)
	}
}

// TestSHA512ImageMountsOnHost: an image made with image create --hash
// sha512 and its objects, mounted through the kernel (EROFS and overlayfs,
// verity=off: this host has no fs-verity), reads back identical, and
// getfattr on the EROFS mount shows every external file's metacopy xattr
// carrying the SHA-512 fs-verity digest fsverity-utils computes for it.
func TestSHA512ImageMountsOnHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts EROFS and overlayfs")
	}
	for _, tool := range []string{"getfattr", "fsverity"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (packages attr, fsverity)", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := sourceFiles(t, src)
	repo := filepath.Join(dir, "repo")
	if code, _, errOut := cli("store", "init", "--store", repo); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut := cli("image", "create", src, "--store", repo)
	if code != 0 {
		t.Fatal(errOut)
	}
	f, err := os.Open(filepath.Join(repo, "images", strings.TrimSpace(out)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lower, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "merged")
	os.Mkdir(lower, 0o755)
	os.Mkdir(merged, 0o755)
	if err := mount.EROFS(int(f.Fd()), lower); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(lower, unix.MNT_DETACH)
	ov := mount.Overlay{Lower: []string{lower}, Data: []string{filepath.Join(repo, "objects")}, Composefs: true, Verity: mount.VerityOff}
	if err := ov.Mount(merged); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	for name, want := range files {
		if got, err := os.ReadFile(filepath.Join(merged, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s through the overlay: %d bytes %v, want %d", name, len(got), err, len(want))
		}
		if len(want) <= 64 {
			continue // inline: no object, no metacopy
		}
		dumped, err := exec.Command("getfattr", "--absolute-names", "-e", "hex", "-n", "trusted.overlay.metacopy", filepath.Join(lower, name)).Output()
		if err != nil {
			t.Fatalf("getfattr %s: %v", name, err)
		}
		_, attr, _ := strings.Cut(string(dumped), "trusted.overlay.metacopy=")
		oracle, err := exec.Command("fsverity", "digest", "--hash-alg=sha512", "--compact", filepath.Join(src, name)).Output()
		if err != nil {
			t.Fatalf("fsverity digest %s: %v", name, err)
		}
		// struct ovl_metacopy: version 0, length 4+64, flags 0, algorithm 2.
		if wantAttr := "0x00440002" + strings.TrimSpace(string(oracle)); strings.TrimSpace(attr) != wantAttr {
			t.Errorf("%s: metacopy %s, want %s", name, attr, wantAttr)
		}
	}
}

// TestPredictSHA512Composefs: pcr predict takes a 128-hex digest and
// predicts the event composefs:<128 hex>.
func TestPredictSHA512Composefs(t *testing.T) {
	d := strings.Repeat("ab", 64)
	code, out, errOut := cli("pcr", "predict", "--composefs", d, "--banks", "sha256", "--json")
	sum := sha256.Sum256([]byte("composefs:" + d))
	want := sha256.Sum256(append(make([]byte, 32), sum[:]...))
	if code != 0 || !strings.Contains(out, hex.EncodeToString(want[:])) {
		t.Fatalf("pcr predict: %d %q %q, want %x", code, out, errOut, want)
	}
}
