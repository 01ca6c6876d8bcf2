package verity

import (
	"crypto/sha256"
	"crypto/sha512"
	"math/bits"
	"sync"
)

// sha512x8 writes the SHA-512 digests of the 4096-byte blocks at lanes[0..7]
// to out, lane i's at out[64*i:]. It needs AVX-512 F and BW and a filled
// consts.padWK.
//
//go:noescape
func sha512x8(out *[8 * sha512.Size]byte, lanes *[8]*byte, consts *sha512Consts)

// sha256x16 writes the SHA-256 digests of the 4096-byte blocks at
// lanes[0..15] to out, lane i's at out[32*i:]. It needs AVX-512 F and BW and
// a filled consts.padWK.
//
//go:noescape
func sha256x16(out *[16 * sha256.Size]byte, lanes *[16]*byte, consts *sha256Consts)

// cpuid returns the CPUID registers of leaf and subleaf sub.
func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// xgetbv0 returns the low half of XCR0: which register states the OS saves.
func xgetbv0() uint32

// hasAVX512 reports whether the CPU has AVX-512 F and BW and the OS saves
// the zmm and opmask registers (Intel SDM vol. 1, 15.2 and 15.3). It is
// not golang.org/x/sys/cpu because that package's init would add 16 KB to
// cfsboot-init, which links this package but never hashes.
func hasAVX512() bool {
	if maxLeaf, _, _, _ := cpuid(0, 0); maxLeaf < 7 {
		return false
	}
	const osxsave = 1 << 27
	if _, _, ecx, _ := cpuid(1, 0); ecx&osxsave == 0 {
		return false
	}
	const sseAVXOpmaskZMM = 1<<1 | 1<<2 | 1<<5 | 1<<6 | 1<<7
	if xgetbv0()&sseAVXOpmaskZMM != sseAVXOpmaskZMM {
		return false
	}
	const avx512F, avx512BW = 1 << 16, 1 << 30
	_, ebx, _, _ := cpuid(7, 0)
	return ebx&avx512F != 0 && ebx&avx512BW != 0
}

// sha512Consts is what sha512x8 reads besides the data: the round constants
// (FIPS 180-4, 4.2.3) and, for the padding block that ends every 4096-byte
// block's message (0x80, zeros, the length 32768 bits), its message
// schedule with the round constants added.
type sha512Consts struct {
	k     [80]uint64
	padWK [80]uint64
}

var sha512Tables = sha512Consts{
	k: [80]uint64{
		0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
		0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
		0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
		0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
		0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
		0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
		0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
		0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
		0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
		0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
		0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
		0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
		0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
		0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
		0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
		0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
		0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
		0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
		0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
		0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
	},
}

// sha256Consts is sha512Consts for sha256x16.
type sha256Consts struct {
	k     [64]uint32
	padWK [64]uint32
}

var sha256Tables = sha256Consts{
	k: [64]uint32{
		0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
		0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
		0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
		0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
		0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
		0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
		0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
		0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
	},
}

// laneKernels is filled on first use, so that programs that never hash
// (cfsboot-init) run neither CPUID nor the padding schedules.
var laneKernels struct {
	once sync.Once
	ok   bool
}

func laneKernelsUsable() bool {
	laneKernels.once.Do(func() {
		if hasAVX512() {
			sha512Tables.fillPad()
			sha256Tables.fillPad()
			laneKernels.ok = true
		}
	})
	return laneKernels.ok
}

// fillPad computes padWK: the padding block is W[0] = 0x80 << 56, W[15] =
// 32768 (its length in bits) and zeros, its schedule FIPS 180-4's 6.4.2.
func (c *sha512Consts) fillPad() {
	w := &c.padWK
	w[0] = 0x80 << 56
	w[15] = BlockSize * 8
	for t := 16; t < len(w); t++ {
		s0 := bits.RotateLeft64(w[t-15], -1) ^ bits.RotateLeft64(w[t-15], -8) ^ w[t-15]>>7
		s1 := bits.RotateLeft64(w[t-2], -19) ^ bits.RotateLeft64(w[t-2], -61) ^ w[t-2]>>6
		w[t] = w[t-16] + s0 + w[t-7] + s1
	}
	for t := range w {
		w[t] += c.k[t]
	}
}

// fillPad is sha512Consts.fillPad for SHA-256 (FIPS 180-4, 6.2.2).
func (c *sha256Consts) fillPad() {
	w := &c.padWK
	w[0] = 0x80 << 24
	w[15] = BlockSize * 8
	for t := 16; t < len(w); t++ {
		s0 := bits.RotateLeft32(w[t-15], -7) ^ bits.RotateLeft32(w[t-15], -18) ^ w[t-15]>>3
		s1 := bits.RotateLeft32(w[t-2], -17) ^ bits.RotateLeft32(w[t-2], -19) ^ w[t-2]>>10
		w[t] = w[t-16] + s0 + w[t-7] + s1
	}
	for t := range w {
		w[t] += c.k[t]
	}
}

// minLanes512 and minLanes256 are the fewest blocks worth a kernel call:
// below them the call, which costs as much with idle lanes, is slower than
// hashing the blocks one at a time.
const (
	minLanes512 = 2
	minLanes256 = 6
)

// hashLanes hashes the leading blocks of data (BlockSize each, the last one
// zero-padded into tail if short) with the lane kernel for a, as many as
// are worth it, writing their digests to out; it returns how many.
func hashLanes(a Algorithm, data, out []byte, tail *[BlockSize]byte) int {
	if !laneKernelsUsable() {
		return 0
	}
	width, least := 16, minLanes256
	if a == SHA512 {
		width, least = 8, minLanes512
	}
	size := a.Size()
	n := (len(data) + BlockSize - 1) / BlockSize
	var lanes [16]*byte
	var sums [512]byte // either kernel's output
	done := 0
	for n-done >= least {
		k := min(n-done, width)
		for l := range k {
			lanes[l] = blockAt(data, done+l, tail)
		}
		for l := k; l < width; l++ {
			lanes[l] = lanes[k-1] // idle lanes hash the last block again
		}
		dst := &sums
		if k == width {
			dst = (*[len(sums)]byte)(out[done*size:])
		}
		if a == SHA512 {
			sha512x8(dst, (*[8]*byte)(lanes[:8]), &sha512Tables)
		} else {
			sha256x16(dst, &lanes, &sha256Tables)
		}
		if k < width {
			copy(out[done*size:], sums[:k*size])
		}
		done += k
	}
	return done
}

// blockAt returns the start of data's block i, a short last block copied
// into tail and zero-padded.
func blockAt(data []byte, i int, tail *[BlockSize]byte) *byte {
	off := i * BlockSize
	if off+BlockSize <= len(data) {
		return &data[off]
	}
	clear(tail[copy(tail[:], data[off:]):])
	return &tail[0]
}
