package inplace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cfsboot/verity"
)

func TestProtocolRoundTrip(t *testing.T) {
	for _, c := range []struct {
		line string
		want Event
	}{
		{ProgressLine(3, 10), Event{Done: 3, Total: 10, Sealed: -1}},
		{SealedLine(42), Event{Sealed: 42}},
		{FailedLine(errors.New("/mnt/x: boom")), Event{Sealed: -1, Failure: "/mnt/x: boom"}},
		{"[    1.234] " + ProgressLine(1, 1) + "\r", Event{Done: 1, Total: 1, Sealed: -1}},
	} {
		got, ok := ParseLine(c.line)
		if !ok || got != c.want {
			t.Errorf("ParseLine(%q) = %+v, %v; want %+v", c.line, got, ok, c.want)
		}
	}
	for _, other := range []string{"", "[    0.000000] Linux version 6.12", "cfsboot-seal: progress 5/3", "cfsboot-seal: progress x", "cfsboot-seal: sealed -1 files"} {
		if ev, ok := ParseLine(other); ok {
			t.Errorf("ParseLine(%q) = %+v", other, ev)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add(ProgressLine(3, 10))
	f.Add(SealedLine(1))
	f.Add(FailedLine(errors.New("x")))
	f.Fuzz(func(t *testing.T, line string) {
		ev, ok := ParseLine(line)
		if ok && ev.Failure == "" && ev.Sealed < 0 && (ev.Done < 0 || ev.Done > ev.Total) {
			t.Fatalf("%q: impossible progress %+v", line, ev)
		}
	})
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	obj := []byte("object")
	d := verity.ComputeBytes(obj).String()
	os.MkdirAll(filepath.Join(dir, "objects", d[:2]), 0o755)
	os.WriteFile(filepath.Join(dir, "objects", d[:2], d[2:]), obj, 0o644)
	os.MkdirAll(filepath.Join(dir, "images", "refs"), 0o755)
	os.WriteFile(filepath.Join(dir, "images", d), obj, 0o644)
	sha512 := strings.Repeat("ab", 64)
	os.Symlink("../objects/"+d[:2]+"/"+d[2:], filepath.Join(dir, "images", sha512))
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Want != d || files[1].Want != d || files[0].Alg != verity.SHA256 {
		t.Errorf("Files = %+v", files)
	}
	os.WriteFile(filepath.Join(dir, "images", "not-a-digest"), obj, 0o644)
	if _, err := Files(dir); err == nil || !strings.Contains(err.Error(), "not-a-digest") {
		t.Errorf("a stray file in images/: %v", err)
	}
}
