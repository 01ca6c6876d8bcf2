package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDependencies keeps PID 1 small and boring: no initrd builder,
// compressor, PE reader or CLI library may enter its dependency graph, nor
// go-tpm (its RSA/ECDSA/net imports; tpm encodes the few commands itself).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"cfsboot/initramfs/build", "cfsboot/initramfs/kmod", "cfsboot/uki", "cfsboot/gen/",
		"compress/", "github.com/klauspost/compress", "github.com/ulikunitz/xz", "github.com/pierrec/lz4",
		"github.com/dustin/go-humanize", "github.com/u-root/u-root/pkg/cpio", "debug/pe", "github.com/spf13/",
		"github.com/google/go-tpm", "crypto/rsa", "crypto/ecdsa", "net", "os/exec"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/") {
				t.Errorf("cfsboot-init depends on %s", dep)
			}
		}
	}
}

// TestSize keeps the stripped static init at most 2.5 MB (it was 3.9 MB
// with the builder and go-tpm linked in).
func TestSize(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the init")
	}
	bin := filepath.Join(t.TempDir(), "init")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stripped init: %d bytes", st.Size())
	if st.Size() > 2_500_000 {
		t.Errorf("stripped init is %d bytes, want at most 2500000", st.Size())
	}
}
