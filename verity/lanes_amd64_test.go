package verity

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"testing"
)

// The kernels themselves, on CPUs that have them: different blocks land in
// their own lanes, and hashLanes takes the groups it is meant to.
func TestLaneKernels(t *testing.T) {
	if !hasAVX512() {
		t.Skip("CPU without AVX-512 F/BW: the lane kernels are never called here")
	}
	if !laneKernelsUsable() {
		t.Fatal("AVX-512 present but the lane kernels not enabled")
	}
	data := pattern(16 * BlockSize)
	block := func(i int) []byte { return data[i*BlockSize : (i+1)*BlockSize] }

	var lanes8 [8]*byte
	for i := range lanes8 {
		lanes8[i] = &data[(7-i)*BlockSize] // reversed: lane order is the pointers' order
	}
	var out [512]byte
	sha512x8(&out, &lanes8, &sha512Tables)
	for i := range lanes8 {
		if want := sha512.Sum512(block(7 - i)); !bytes.Equal(out[i*64:(i+1)*64], want[:]) {
			t.Errorf("sha512x8 lane %d: %x, want %x", i, out[i*64:(i+1)*64], want)
		}
	}

	var lanes16 [16]*byte
	for i := range lanes16 {
		lanes16[i] = &data[(15-i)*BlockSize]
	}
	sha256x16(&out, &lanes16, &sha256Tables)
	for i := range lanes16 {
		if want := sha256.Sum256(block(15 - i)); !bytes.Equal(out[i*32:(i+1)*32], want[:]) {
			t.Errorf("sha256x16 lane %d: %x, want %x", i, out[i*32:(i+1)*32], want)
		}
	}

	for _, c := range []struct {
		alg          Algorithm
		blocks, want int
	}{
		{SHA512, 0, 0}, {SHA512, minLanes512 - 1, 0}, {SHA512, minLanes512, minLanes512}, {SHA512, 8, 8},
		{SHA512, 8 + minLanes512 - 1, 8}, {SHA512, 8 + minLanes512, 8 + minLanes512},
		{SHA256, minLanes256 - 1, 0}, {SHA256, minLanes256, minLanes256}, {SHA256, 16, 16},
		{SHA256, 16 + minLanes256 - 1, 16}, {SHA256, 32 + minLanes256, 32 + minLanes256},
	} {
		d := make([]byte, c.blocks*BlockSize)
		if got := hashLanes(c.alg, d, make([]byte, c.blocks*c.alg.Size()), nil); got != c.want {
			t.Errorf("%s: hashLanes of %d blocks hashed %d, want %d", c.alg, c.blocks, got, c.want)
		}
	}
}
