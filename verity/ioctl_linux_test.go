package verity

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The host kernel here has no fs-verity: both ioctls must report that
// cleanly. Real enabling and measuring are exercised inside QEMU.
func TestIoctlsWithoutVerity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := EnableAlgorithm(int(f.Fd()), 9); err == nil || errors.Is(err, ErrNotSupported) {
		t.Errorf("EnableAlgorithm(9): %v, want an unknown-algorithm error", err)
	}
	if err := EnableAlgorithm(int(f.Fd()), SHA512); err == nil {
		t.Skip("this filesystem supports fs-verity; the not-supported path is not reachable here")
	} else if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("EnableAlgorithm(sha512): %v, want ErrNotSupported", err)
	}
	if err := Enable(int(f.Fd())); err == nil {
		if _, err := Measure(int(f.Fd())); err != nil {
			t.Fatalf("Enable worked but Measure failed: %v", err)
		}
		t.Skip("this filesystem supports fs-verity; the not-supported path is not reachable here")
	} else if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("Enable: %v, want ErrNotSupported", err)
	}
	if _, err := Measure(int(f.Fd())); !errors.Is(err, ErrNotSupported) && !errors.Is(err, ErrNotEnabled) {
		t.Fatalf("Measure: %v, want ErrNotSupported or ErrNotEnabled", err)
	}
	if _, err := MeasureSum(int(f.Fd())); !errors.Is(err, ErrNotSupported) && !errors.Is(err, ErrNotEnabled) {
		t.Fatalf("MeasureSum: %v, want ErrNotSupported or ErrNotEnabled", err)
	}
}
