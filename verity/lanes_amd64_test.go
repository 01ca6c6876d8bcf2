package verity

import (
	"crypto/sha512"
	"testing"
)

// The kernel itself, on CPUs that have it: eight different blocks land in
// their own lanes, and hashLanes takes the groups it is meant to.
func TestSHA512x8(t *testing.T) {
	if !hasAVX512() {
		t.Skip("CPU without AVX-512 F/BW: sha512x8 is never called here")
	}
	if !sha512x8Usable() {
		t.Fatal("AVX-512 present but sha512x8 not enabled")
	}
	data := pattern(8 * BlockSize)
	var lanes [8]*byte
	for i := range lanes {
		lanes[i] = &data[(7-i)*BlockSize] // reversed: lane order is the pointers' order
	}
	var out [8 * sha512.Size]byte
	sha512x8(&out, &lanes, &sha512Tables)
	for i := range lanes {
		want := sha512.Sum512(data[(7-i)*BlockSize : (8-i)*BlockSize])
		if got := out[i*sha512.Size : (i+1)*sha512.Size]; string(got) != string(want[:]) {
			t.Errorf("lane %d: %x, want %x", i, got, want)
		}
	}
	for _, c := range []struct{ blocks, want int }{{0, 0}, {minLanes512 - 1, 0}, {minLanes512, minLanes512}, {8, 8}, {8 + minLanes512 - 1, 8}, {8 + minLanes512, 8 + minLanes512}} {
		d := make([]byte, c.blocks*BlockSize)
		if got := SHA512.hashLanes(d, make([]byte, c.blocks*sha512.Size), nil); got != c.want {
			t.Errorf("hashLanes of %d blocks hashed %d, want %d", c.blocks, got, c.want)
		}
	}
}
