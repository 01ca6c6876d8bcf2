package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that notes how a test would end.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatal(args ...any) {
	r.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recorder) Skip(args ...any) {
	r.skip = fmt.Sprint(args...)
	runtime.Goexit()
}

// loadFor runs forTest on dir the way a test's goroutine would.
func loadFor(dir string) (vs []Vector, r *recorder) {
	r = &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		vs = forTest(r, dir)
	}()
	<-done
	return vs, r
}

// TestMissingVectorsFailUnderCI: without the vectors a test is skipped on
// a developer's machine but fails under CI=true.
func TestMissingVectorsFailUnderCI(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "composefs-tests")
	t.Setenv("CI", "")
	if _, r := loadFor(missing); r.fatal != "" || !strings.Contains(r.skip, "no conformance vectors in "+missing) {
		t.Errorf("outside CI: fatal %q, skip %q", r.fatal, r.skip)
	}
	t.Setenv("CI", "true")
	if _, r := loadFor(missing); r.skip != "" || !strings.Contains(r.fatal, "CI=true requires them") {
		t.Errorf("under CI=true: fatal %q, skip %q", r.fatal, r.skip)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "empty.dump"), []byte("/ 0 40755 2 0 0 0 0.0 - - -\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.dump.sha256"), []byte("abc  empty.img\n"), 0o644)
	if vs, r := loadFor(dir); r.fatal != "" || r.skip != "" || len(vs) != 1 || vs[0].SHA256 != "abc" {
		t.Errorf("with a vector: %v, fatal %q, skip %q", vs, r.fatal, r.skip)
	}
}

// TestSharedDirIsBesideTheRepository: the vectors are looked for in
// ../shared/composefs-tests of the repository, from any package.
func TestSharedDirIsBesideTheRepository(t *testing.T) {
	dir, err := sharedDir()
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := filepath.Abs("../..")
	if want := filepath.Join(filepath.Dir(repo), "shared", "composefs-tests"); dir != want {
		t.Errorf("shared dir %s, want %s", dir, want)
	}
}
