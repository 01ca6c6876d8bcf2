#include "textflag.h"

// SHA-512 of 8 independent 4096-byte blocks at once, one block per 64-bit
// lane of the zmm registers (AVX-512 F/BW).
//
// Each 4096-byte block is 32 message blocks of 128 bytes and one padding
// block that is the same for every lane and every call (0x80, zeros, the
// bit length 32768); consts holds the round constants K and, for the
// padding block, its message schedule plus K, so its rounds do no schedule.
//
// Registers: the working variables a..h in Z0-Z7 (the round macros take
// them as arguments, rotated one place per round instead of moving data),
// the 16-word message schedule ring W0-W15 in Z8-Z23, temporaries in
// Z24-Z31. The lane pointers live in SI, DI, R8-R13; AX is the offset of
// the current message block in every lane; BX walks the round constants.
// The state at the start of a message block is kept on the stack for the
// final addition.

#define W0 Z8
#define W1 Z9
#define W2 Z10
#define W3 Z11
#define W4 Z12
#define W5 Z13
#define W6 Z14
#define W7 Z15
#define W8 Z16
#define W9 Z17
#define W10 Z18
#define W11 Z19
#define W12 Z20
#define W13 Z21
#define W14 Z22
#define W15 Z23

// LOADROWS loads the 64 bytes at off in the current message block of every
// lane into Z24-Z31 (lane i in Z24+i) as big-endian 64-bit words.
#define LOADROWS(off) \
	VMOVDQU64 off(SI)(AX*1), Z24; \
	VMOVDQU64 off(DI)(AX*1), Z25; \
	VMOVDQU64 off(R8)(AX*1), Z26; \
	VMOVDQU64 off(R9)(AX*1), Z27; \
	VMOVDQU64 off(R10)(AX*1), Z28; \
	VMOVDQU64 off(R11)(AX*1), Z29; \
	VMOVDQU64 off(R12)(AX*1), Z30; \
	VMOVDQU64 off(R13)(AX*1), Z31; \
	VPSHUFB bswap64<>(SB), Z24, Z24; \
	VPSHUFB bswap64<>(SB), Z25, Z25; \
	VPSHUFB bswap64<>(SB), Z26, Z26; \
	VPSHUFB bswap64<>(SB), Z27, Z27; \
	VPSHUFB bswap64<>(SB), Z28, Z28; \
	VPSHUFB bswap64<>(SB), Z29, Z29; \
	VPSHUFB bswap64<>(SB), Z30, Z30; \
	VPSHUFB bswap64<>(SB), Z31, Z31

// TRANSPOSE8 transposes the 8x8 matrix of 64-bit words whose rows are
// r0..r7 into s0..s7 (s_j holds word j of every row), clobbering r0..r7:
// pairs of rows are interleaved within 128-bit lanes, then 128-bit lanes
// are gathered twice.
#define TRANSPOSE8(r0, r1, r2, r3, r4, r5, r6, r7, s0, s1, s2, s3, s4, s5, s6, s7) \
	VPUNPCKLQDQ r1, r0, s0; \
	VPUNPCKHQDQ r1, r0, s1; \
	VPUNPCKLQDQ r3, r2, s2; \
	VPUNPCKHQDQ r3, r2, s3; \
	VPUNPCKLQDQ r5, r4, s4; \
	VPUNPCKHQDQ r5, r4, s5; \
	VPUNPCKLQDQ r7, r6, s6; \
	VPUNPCKHQDQ r7, r6, s7; \
	VSHUFI64X2 $0x88, s2, s0, r0; \
	VSHUFI64X2 $0xdd, s2, s0, r1; \
	VSHUFI64X2 $0x88, s3, s1, r2; \
	VSHUFI64X2 $0xdd, s3, s1, r3; \
	VSHUFI64X2 $0x88, s6, s4, r4; \
	VSHUFI64X2 $0xdd, s6, s4, r5; \
	VSHUFI64X2 $0x88, s7, s5, r6; \
	VSHUFI64X2 $0xdd, s7, s5, r7; \
	VSHUFI64X2 $0x88, r4, r0, s0; \
	VSHUFI64X2 $0xdd, r4, r0, s4; \
	VSHUFI64X2 $0x88, r5, r1, s2; \
	VSHUFI64X2 $0xdd, r5, r1, s6; \
	VSHUFI64X2 $0x88, r6, r2, s1; \
	VSHUFI64X2 $0xdd, r6, r2, s5; \
	VSHUFI64X2 $0x88, r7, r3, s3; \
	VSHUFI64X2 $0xdd, r7, r3, s7

// ROUNDK is one SHA-512 round whose W[t]+K[t] is the 64-bit word at k,
// already added into h for ROUND. It leaves the new e in d and the new a in
// h; the caller rotates the names. VPTERNLOGQ computes the three-way XORs
// (0x96), Ch (0xca) and Maj (0xe8).
#define ROUNDK(a, b, c, d, e, f, g, h, k) \
	VPADDQ.BCST k, h, h; \
	VPRORQ $14, e, Z24; \
	VPRORQ $18, e, Z25; \
	VPRORQ $41, e, Z26; \
	VPTERNLOGQ $0x96, Z26, Z25, Z24; \
	VMOVDQA64 e, Z25; \
	VPTERNLOGQ $0xca, g, f, Z25; \
	VPADDQ Z24, h, h; \
	VPADDQ Z25, h, h; \
	VPADDQ h, d, d; \
	VPRORQ $28, a, Z24; \
	VPRORQ $34, a, Z25; \
	VPRORQ $39, a, Z26; \
	VPTERNLOGQ $0x96, Z26, Z25, Z24; \
	VMOVDQA64 a, Z25; \
	VPTERNLOGQ $0xe8, c, b, Z25; \
	VPADDQ Z24, h, h; \
	VPADDQ Z25, h, h

// ROUND is one round with message word w and round constant K[t] at k.
#define ROUND(a, b, c, d, e, f, g, h, w, k) \
	VPADDQ w, h, h; \
	ROUNDK(a, b, c, d, e, f, g, h, k)

// SCHED turns w16 = W[t-16] into W[t] = W[t-16] + s0(W[t-15]) + W[t-7] +
// s1(W[t-2]).
#define SCHED(w16, w15, w7, w2) \
	VPRORQ $1, w15, Z27; \
	VPRORQ $8, w15, Z28; \
	VPSRLQ $7, w15, Z29; \
	VPTERNLOGQ $0x96, Z29, Z28, Z27; \
	VPADDQ Z27, w16, w16; \
	VPADDQ w7, w16, w16; \
	VPRORQ $19, w2, Z27; \
	VPRORQ $61, w2, Z28; \
	VPSRLQ $6, w2, Z29; \
	VPTERNLOGQ $0x96, Z29, Z28, Z27; \
	VPADDQ Z27, w16, w16

#define SAVESTATE \
	VMOVDQU64 Z0, 0(SP); \
	VMOVDQU64 Z1, 64(SP); \
	VMOVDQU64 Z2, 128(SP); \
	VMOVDQU64 Z3, 192(SP); \
	VMOVDQU64 Z4, 256(SP); \
	VMOVDQU64 Z5, 320(SP); \
	VMOVDQU64 Z6, 384(SP); \
	VMOVDQU64 Z7, 448(SP)

#define ADDSTATE \
	VPADDQ 0(SP), Z0, Z0; \
	VPADDQ 64(SP), Z1, Z1; \
	VPADDQ 128(SP), Z2, Z2; \
	VPADDQ 192(SP), Z3, Z3; \
	VPADDQ 256(SP), Z4, Z4; \
	VPADDQ 320(SP), Z5, Z5; \
	VPADDQ 384(SP), Z6, Z6; \
	VPADDQ 448(SP), Z7, Z7

// func sha512x8(out *[8 * 64]byte, lanes *[8]*byte, consts *sha512Consts)
TEXT ·sha512x8(SB), 0, $512-24
	MOVQ lanes+8(FP), BX
	MOVQ 0(BX), SI
	MOVQ 8(BX), DI
	MOVQ 16(BX), R8
	MOVQ 24(BX), R9
	MOVQ 32(BX), R10
	MOVQ 40(BX), R11
	MOVQ 48(BX), R12
	MOVQ 56(BX), R13

	VPBROADCASTQ iv512<>+0(SB), Z0
	VPBROADCASTQ iv512<>+8(SB), Z1
	VPBROADCASTQ iv512<>+16(SB), Z2
	VPBROADCASTQ iv512<>+24(SB), Z3
	VPBROADCASTQ iv512<>+32(SB), Z4
	VPBROADCASTQ iv512<>+40(SB), Z5
	VPBROADCASTQ iv512<>+48(SB), Z6
	VPBROADCASTQ iv512<>+56(SB), Z7

	XORQ AX, AX

block:
	LOADROWS(0)
	TRANSPOSE8(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, W0, W1, W2, W3, W4, W5, W6, W7)
	LOADROWS(64)
	TRANSPOSE8(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, W8, W9, W10, W11, W12, W13, W14, W15)
	SAVESTATE
	MOVQ consts+16(FP), BX
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, W0, 0(BX))
	ROUND(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, W1, 8(BX))
	ROUND(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, W2, 16(BX))
	ROUND(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, W3, 24(BX))
	ROUND(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, W4, 32(BX))
	ROUND(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, W5, 40(BX))
	ROUND(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, W6, 48(BX))
	ROUND(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, W7, 56(BX))
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, W8, 64(BX))
	ROUND(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, W9, 72(BX))
	ROUND(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, W10, 80(BX))
	ROUND(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, W11, 88(BX))
	ROUND(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, W12, 96(BX))
	ROUND(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, W13, 104(BX))
	ROUND(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, W14, 112(BX))
	ROUND(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, W15, 120(BX))
	MOVQ $4, CX

schedule:
	ADDQ $128, BX
	SCHED(W0, W1, W9, W14)
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, W0, 0(BX))
	SCHED(W1, W2, W10, W15)
	ROUND(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, W1, 8(BX))
	SCHED(W2, W3, W11, W0)
	ROUND(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, W2, 16(BX))
	SCHED(W3, W4, W12, W1)
	ROUND(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, W3, 24(BX))
	SCHED(W4, W5, W13, W2)
	ROUND(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, W4, 32(BX))
	SCHED(W5, W6, W14, W3)
	ROUND(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, W5, 40(BX))
	SCHED(W6, W7, W15, W4)
	ROUND(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, W6, 48(BX))
	SCHED(W7, W8, W0, W5)
	ROUND(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, W7, 56(BX))
	SCHED(W8, W9, W1, W6)
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, W8, 64(BX))
	SCHED(W9, W10, W2, W7)
	ROUND(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, W9, 72(BX))
	SCHED(W10, W11, W3, W8)
	ROUND(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, W10, 80(BX))
	SCHED(W11, W12, W4, W9)
	ROUND(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, W11, 88(BX))
	SCHED(W12, W13, W5, W10)
	ROUND(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, W12, 96(BX))
	SCHED(W13, W14, W6, W11)
	ROUND(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, W13, 104(BX))
	SCHED(W14, W15, W7, W12)
	ROUND(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, W14, 112(BX))
	SCHED(W15, W0, W8, W13)
	ROUND(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, W15, 120(BX))
	DECQ CX
	JNZ schedule

	ADDSTATE
	ADDQ $128, AX
	CMPQ AX, $4096
	JB block

	// The padding block: W[t]+K[t] from consts.padWK, 8 rounds at a time.
	SAVESTATE
	MOVQ consts+16(FP), BX
	ADDQ $640, BX
	MOVQ $10, CX

padding:
	ROUNDK(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, 0(BX))
	ROUNDK(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, 8(BX))
	ROUNDK(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, 16(BX))
	ROUNDK(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, 24(BX))
	ROUNDK(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, 32(BX))
	ROUNDK(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, 40(BX))
	ROUNDK(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, 48(BX))
	ROUNDK(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, 56(BX))
	ADDQ $64, BX
	DECQ CX
	JNZ padding

	ADDSTATE

	// Lane i's digest is word i of a..h: transpose, back to big-endian.
	TRANSPOSE8(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15)
	MOVQ out+0(FP), DX
	VPSHUFB bswap64<>(SB), Z8, Z8
	VPSHUFB bswap64<>(SB), Z9, Z9
	VPSHUFB bswap64<>(SB), Z10, Z10
	VPSHUFB bswap64<>(SB), Z11, Z11
	VPSHUFB bswap64<>(SB), Z12, Z12
	VPSHUFB bswap64<>(SB), Z13, Z13
	VPSHUFB bswap64<>(SB), Z14, Z14
	VPSHUFB bswap64<>(SB), Z15, Z15
	VMOVDQU64 Z8, 0(DX)
	VMOVDQU64 Z9, 64(DX)
	VMOVDQU64 Z10, 128(DX)
	VMOVDQU64 Z11, 192(DX)
	VMOVDQU64 Z12, 256(DX)
	VMOVDQU64 Z13, 320(DX)
	VMOVDQU64 Z14, 384(DX)
	VMOVDQU64 Z15, 448(DX)
	VZEROUPPER
	RET

// The SHA-512 initial hash value H(0) (FIPS 180-4, 5.3.5).
DATA iv512<>+0(SB)/8, $0x6a09e667f3bcc908
DATA iv512<>+8(SB)/8, $0xbb67ae8584caa73b
DATA iv512<>+16(SB)/8, $0x3c6ef372fe94f82b
DATA iv512<>+24(SB)/8, $0xa54ff53a5f1d36f1
DATA iv512<>+32(SB)/8, $0x510e527fade682d1
DATA iv512<>+40(SB)/8, $0x9b05688c2b3e6c1f
DATA iv512<>+48(SB)/8, $0x1f83d9abfb41bd6b
DATA iv512<>+56(SB)/8, $0x5be0cd19137e2179
GLOBL iv512<>(SB), RODATA|NOPTR, $64

// VPSHUFB indices that reverse the bytes of each 64-bit word.
DATA bswap64<>+0(SB)/8, $0x0001020304050607
DATA bswap64<>+8(SB)/8, $0x08090a0b0c0d0e0f
DATA bswap64<>+16(SB)/8, $0x0001020304050607
DATA bswap64<>+24(SB)/8, $0x08090a0b0c0d0e0f
DATA bswap64<>+32(SB)/8, $0x0001020304050607
DATA bswap64<>+40(SB)/8, $0x08090a0b0c0d0e0f
DATA bswap64<>+48(SB)/8, $0x0001020304050607
DATA bswap64<>+56(SB)/8, $0x08090a0b0c0d0e0f
GLOBL bswap64<>(SB), RODATA|NOPTR, $64
