package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps PID 1 small and boring: no initrd builder,
// compressor, PE reader or CLI library may enter its dependency graph.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"cfsboot/initramfs/build", "cfsboot/initramfs/kmod", "cfsboot/uki", "cfsboot/gen/",
		"compress/", "github.com/klauspost/compress", "github.com/ulikunitz/xz", "github.com/pierrec/lz4",
		"github.com/dustin/go-humanize", "github.com/u-root/u-root/pkg/cpio", "debug/pe", "github.com/spf13/"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("cfsboot-init depends on %s", dep)
			}
		}
	}
}
