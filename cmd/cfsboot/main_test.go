package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc/big"), []byte(strings.Repeat("x", 5000)), 0o644)
	store := filepath.Join(dir, "store")
	img := filepath.Join(dir, "img")
	bin := filepath.Join(t.TempDir(), "cfsboot")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	out, err := run("image", "create", src, "--store", store, "-o", img, "--use-epoch")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	digest := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	if _, err := os.Stat(filepath.Join(store, "images", digest)); err != nil {
		t.Fatalf("image not in store: %s", out)
	}
	if out, err := run("image", "digest", img); err != nil || out != "sha256:"+digest+" "+img+"\n" {
		t.Fatalf("image digest: %q %v", out, err)
	}
	if out, err := run("image", "dump", img); err != nil || !strings.Contains(out, "/etc/big 5000 100644 1 0 0 0 0.0 ") {
		t.Fatalf("image dump: %q %v", out, err)
	}
	if out, err := run("store", "fsck", "--store", store); err != nil || !strings.Contains(out, ": ok") {
		t.Fatalf("fsck: %q %v", out, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "create", filepath.Join(dir, "nope")}, "nope: no such file"},
		{[]string{"image", "dump", filepath.Join(src, "etc/big")}, "big: not a composefs image"},
		{[]string{"image", "create", "--from-dump", filepath.Join(src, "etc/big")}, "big: dump: line 1"},
		{[]string{"image", "frobnicate"}, "unknown subcommand"},
		{[]string{"store", "fsck"}, "usage: cfsboot store fsck --store DIR"},
		{[]string{"pcr", "predict", "--composefs", "xyz"}, "want 64 hex digits"},
		{[]string{"pcr", "predict", "--composefs", digest, "--banks", "md5"}, "unknown bank"},
		{[]string{"initramfs", "-o", filepath.Join(dir, "i"), "--init", filepath.Join(dir, "noinit")}, "init binary"},
	} {
		out, err := run(c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("cfsboot %s: %v %q, want an error with %q", strings.Join(c.args, " "), err, out, c.want)
		}
	}
	// A damaged object makes fsck fail with exit status 1 and name it.
	objs, _ := filepath.Glob(filepath.Join(store, "objects", "*", "*"))
	os.WriteFile(objs[0], []byte("tampered"), 0o644)
	if out, err := run("store", "fsck", "--store", store); err == nil || !strings.Contains(out, objs[0]) {
		t.Fatalf("fsck of a damaged store: %q %v", out, err)
	}
}
