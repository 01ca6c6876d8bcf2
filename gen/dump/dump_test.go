package dump_test

import (
	"bytes"
	"strings"
	"testing"

	"cfsboot/gen/dump"
	"cfsboot/verity"
)

const good = `/ 4096 40755 2 0 0 0 1700000000.0 - - -
/file 5 100644 1 0 0 0 1700000000.0 - hello - user.a=b
/link 4 120777 1 0 0 0 1700000000.0 file - -
/hard 0 @100644 0 0 0 0 0.0 /file - -
/dev 0 20644 1 0 0 259 1700000000.0 - - -
/ext 9000 100644 1 0 0 0 1700000000.0 ab/cdef - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
/ext512 9000 100644 1 0 0 0 1700000000.0 01/23 - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`

func TestRoundTrip(t *testing.T) {
	root, err := dump.Parse(strings.NewReader(good), dump.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := dump.Write(&out, root); err != nil {
		t.Fatal(err)
	}
	first := out.String()
	again, err := dump.Parse(&out, dump.Options{Strict: true})
	if err != nil {
		t.Fatalf("%v\n%s", err, first)
	}
	var out2 bytes.Buffer
	dump.Write(&out2, again)
	if first != out2.String() {
		t.Fatalf("not stable:\n%s\n%s", first, out2.String())
	}
	if h := again.Lookup("hard"); h == nil || h.Target() != again.Lookup("file") {
		t.Fatal("hard link not resolved")
	}
	// 64 hex digits are a SHA-256 Digest, 128 a SHA-512 Verity sum.
	if e := again.Lookup("ext"); e.Digest == nil || !e.Verity.IsZero() {
		t.Errorf("sha256 digest: %v %v", e.Digest, e.Verity)
	}
	if e := again.Lookup("ext512"); e.Digest != nil || e.Verity.Algorithm() != verity.SHA512 {
		t.Errorf("sha512 digest: %v %v", e.Digest, e.Verity)
	}
}

func TestEscapes(t *testing.T) {
	in := "/ 0 40755 1 0 0 0 0.0 - - -\n/a\\x20b\\\\c\\n 3 100644 1 0 0 0 0.0 - \\x2d=\\t - user.k\\x3d=v\\x3dw\n"
	root, err := dump.Parse(strings.NewReader(in), dump.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	n := root.Lookup("a b\\c\n")
	if n == nil || string(n.Content) != "-=\t" || string(n.Xattrs[0].Value) != "v=w" || n.Xattrs[0].Key != "user.k=" {
		t.Fatalf("escapes: %+v", n)
	}
	var out bytes.Buffer
	dump.Write(&out, root)
	if !strings.Contains(out.String(), `/a\x20b\\c\n 3 100644`) || !strings.Contains(out.String(), `user.k\x3d=v\x3dw`) {
		t.Fatalf("escaped output:\n%s", out.String())
	}
}

func TestRejects(t *testing.T) {
	root := "/ 0 40755 1 0 0 0 0.0 - - -\n"
	for name, c := range map[string]struct{ in, want string }{
		"no root first":      {"/a 0 100644 1 0 0 0 0.0 - - -\n", "root directory must come first"},
		"root not dir":       {"/ 0 100644 1 0 0 0 0.0 - - -\n", "root must be a directory"},
		"two roots":          {root + root, "multiple roots"},
		"empty":              {"", "no files"},
		"missing parent":     {root + "/a/b 0 100644 1 0 0 0 0.0 - - -\n", "parent directory missing"},
		"dot name":           {root + "/. 0 100644 1 0 0 0 0.0 - - -\n", "invalid file name"},
		"dotdot name":        {root + "/.. 0 100644 1 0 0 0 0.0 - - -\n", "invalid file name"},
		"nul in name":        {root + "/a\\x00b 0 100644 1 0 0 0 0.0 - - -\n", "contains NUL"},
		"raw nul":            {root + "/a\x00 0 100644 1 0 0 0 0.0 - - -\n", "embedded NUL"},
		"duplicate":          {root + "/a 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n", "duplicate entry"},
		"bad mode":           {root + "/a 0 170644 1 0 0 0 0.0 - - -\n", "invalid mode"},
		"bad size":           {root + "/a x 100644 1 0 0 0 0.0 - - -\n", "invalid integer"},
		"bad mtime":          {root + "/a 0 100644 1 0 0 0 5 - - -\n", "mtime"},
		"bad escape":         {root + "/a\\q 0 100644 1 0 0 0 0.0 - - -\n", "unsupported escape"},
		"short hex":          {root + "/a\\x4 0 100644 1 0 0 0 0.0 - - -\n", "hex"},
		"content size":       {root + "/a 3 100644 1 0 0 0 0.0 - ab -\n", "does not match size"},
		"bad digest":         {root + "/a 0 100644 1 0 0 0 0.0 - - xyz\n", "fs-verity digest"},
		"96-digit digest":    {root + "/a 0 100644 1 0 0 0 0.0 - - " + strings.Repeat("a", 96) + "\n", "fs-verity digest"},
		"xattr without =":    {root + "/a 0 100644 1 0 0 0 0.0 - - - user.a\n", "missing '='"},
		"empty xattr name":   {root + "/a 0 100644 1 0 0 0 0.0 - - - =v\n", "invalid xattr name"},
		"empty symlink":      {root + "/l 0 120777 1 0 0 0 0.0 - - -\n", "symlink without a target"},
		"hardlink to dir":    {root + "/d 0 40755 1 0 0 0 0.0 - - -\n/h 0 @100644 1 0 0 0 0.0 /d - -\n", "is a directory"},
		"hardlink self":      {root + "/h 0 @100644 1 0 0 0 0.0 /h - -\n", "refers to itself"},
		"hardlink missing":   {root + "/h 0 @100644 1 0 0 0 0.0 /nope - -\n", "no target"},
		"hardlink cycle":     {root + "/h 0 @100644 1 0 0 0 0.0 /i - -\n/i 0 @100644 1 0 0 0 0.0 /h - -\n", "cycle"},
		"dir hardlink":       {root + "/h 0 @40755 1 0 0 0 0.0 / - -\n", "can't be hard-linked"},
		"strict rdev":        {root + "/a 0 100644 1 0 0 5 0.0 - - -\n", "non-zero device number"},
		"strict no newline":  {root + "/a 0 100644 1 0 0 0 0.0 - - -", "missing trailing newline"},
		"strict symlink len": {root + "/l 9 120777 1 0 0 0 0.0 abc - -\n", "symlink size"},
	} {
		_, err := dump.Parse(strings.NewReader(c.in), dump.Options{Strict: true})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}

func FuzzParseDump(f *testing.F) {
	f.Add(good)
	f.Add("/ 0 40755 1 0 0 0 0.0 - - -\n/a\\x20 3 100644 1 0 0 0 0.0 - abc - user.x=y\n")
	f.Fuzz(func(t *testing.T, in string) {
		root, err := dump.Parse(strings.NewReader(in), dump.Options{})
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := dump.Write(&out, root); err != nil {
			t.Fatal(err)
		}
	})
}
