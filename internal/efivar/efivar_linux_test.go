package efivar

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeVars lays out a directory as efivarfs does: attributes, then value.
func fakeVars(t *testing.T, vars map[string][]byte) Vars {
	t.Helper()
	dir := t.TempDir()
	for name, value := range vars {
		if err := os.WriteFile(filepath.Join(dir, name), append([]byte{7, 0, 0, 0}, value...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Vars{Dir: dir}
}

func TestSecureBoot(t *testing.T) {
	for name, c := range map[string]struct {
		vars    map[string][]byte
		want    bool
		wantErr string
	}{
		"on":        {map[string][]byte{"SecureBoot-" + GlobalGUID: {1}}, true, ""},
		"off":       {map[string][]byte{"SecureBoot-" + GlobalGUID: {0}}, false, ""},
		"absent":    {nil, false, ""},
		"malformed": {map[string][]byte{"SecureBoot-" + GlobalGUID: {1, 1}}, false, "2 bytes of value, expected 1"},
	} {
		t.Run(name, func(t *testing.T) {
			on, err := fakeVars(t, c.vars).SecureBoot()
			if on != c.want || (err == nil) != (c.wantErr == "") || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("SecureBoot() = %v, %v; want %v, %q", on, err, c.want, c.wantErr)
			}
		})
	}
	if on, err := (Vars{}).SecureBoot(); on || err != nil {
		t.Fatalf("not UEFI: %v %v", on, err)
	}
}

func TestStubMeasuredKernel(t *testing.T) {
	v := fakeVars(t, map[string][]byte{"StubPcrKernelImage-" + LoaderGUID: []byte("1\x00\x00\x00")})
	if ok, err := v.StubMeasuredKernel(); !ok || err != nil {
		t.Fatalf("stub variable present: %v %v", ok, err)
	}
	if ok, err := fakeVars(t, nil).StubMeasuredKernel(); ok || err != nil {
		t.Fatalf("stub variable absent: %v %v", ok, err)
	}
	// A variable that exists but cannot be read is an error, not "absent".
	v = fakeVars(t, nil)
	os.Mkdir(filepath.Join(v.Dir, "StubPcrKernelImage-"+LoaderGUID), 0o755)
	if ok, err := v.StubMeasuredKernel(); ok || err == nil {
		t.Fatalf("unreadable stub variable: %v %v", ok, err)
	}
	// So is a firmware whose efivarfs could not be mounted.
	v = Vars{Dir: t.TempDir(), err: os.ErrPermission}
	if _, err := v.StubMeasuredKernel(); err == nil {
		t.Fatal("efivarfs not mounted: no error")
	}
	if _, err := v.SecureBoot(); err == nil {
		t.Fatal("efivarfs not mounted: Secure Boot state reported as known")
	}
}
