#include "textflag.h"

// SHA-256 of 16 independent 4096-byte blocks at once, one block per 32-bit
// lane of the zmm registers (AVX-512 F/BW): sha512x8_amd64.s's scheme with
// twice the lanes.
//
// Each 4096-byte block is 64 message blocks of 64 bytes and one padding
// block that is the same for every lane and every call (0x80, zeros, the
// bit length 32768); consts holds the round constants K and, for the
// padding block, its message schedule plus K, so its rounds do no schedule.
//
// Registers: the working variables a..h in Z0-Z7 (rotated by the round
// macros' arguments), the message schedule ring W0-W15 in Z8-Z23,
// temporaries in Z24-Z31. DX points to the 16 lane pointers, AX is the
// offset of the current message block in every lane, BX walks the round
// constants. Each message block's 16x16 word transpose needs 32 registers,
// so it runs while the state is on the stack, where the final addition
// reads it anyway.

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

// ROUNDK is one SHA-256 round whose W[t]+K[t] is the 32-bit word at k,
// already added into h for ROUND. It leaves the new e in d and the new a in
// h; the caller rotates the names. VPTERNLOGD computes the three-way XORs
// (0x96), Ch (0xca) and Maj (0xe8).
#define ROUNDK(a, b, c, d, e, f, g, h, k) \
	VPADDD.BCST k, h, h; \
	VPRORD $6, e, Z24; \
	VPRORD $11, e, Z25; \
	VPRORD $25, e, Z26; \
	VPTERNLOGD $0x96, Z26, Z25, Z24; \
	VMOVDQA32 e, Z25; \
	VPTERNLOGD $0xca, g, f, Z25; \
	VPADDD Z24, h, h; \
	VPADDD Z25, h, h; \
	VPADDD h, d, d; \
	VPRORD $2, a, Z24; \
	VPRORD $13, a, Z25; \
	VPRORD $22, a, Z26; \
	VPTERNLOGD $0x96, Z26, Z25, Z24; \
	VMOVDQA32 a, Z25; \
	VPTERNLOGD $0xe8, c, b, Z25; \
	VPADDD Z24, h, h; \
	VPADDD Z25, h, h

// ROUND is one round with message word w and round constant K[t] at k.
#define ROUND(a, b, c, d, e, f, g, h, w, k) \
	VPADDD w, h, h; \
	ROUNDK(a, b, c, d, e, f, g, h, k)

// SCHED turns w16 = W[t-16] into W[t] = W[t-16] + s0(W[t-15]) + W[t-7] +
// s1(W[t-2]).
#define SCHED(w16, w15, w7, w2) \
	VPRORD $7, w15, Z27; \
	VPRORD $18, w15, Z28; \
	VPSRLD $3, w15, Z29; \
	VPTERNLOGD $0x96, Z29, Z28, Z27; \
	VPADDD Z27, w16, w16; \
	VPADDD w7, w16, w16; \
	VPRORD $17, w2, Z27; \
	VPRORD $19, w2, Z28; \
	VPSRLD $10, w2, Z29; \
	VPTERNLOGD $0x96, Z29, Z28, Z27; \
	VPADDD Z27, w16, w16

#define SAVESTATE \
	VMOVDQU32 Z0, 0(SP); \
	VMOVDQU32 Z1, 64(SP); \
	VMOVDQU32 Z2, 128(SP); \
	VMOVDQU32 Z3, 192(SP); \
	VMOVDQU32 Z4, 256(SP); \
	VMOVDQU32 Z5, 320(SP); \
	VMOVDQU32 Z6, 384(SP); \
	VMOVDQU32 Z7, 448(SP)

#define LOADSTATE \
	VMOVDQU32 0(SP), Z0; \
	VMOVDQU32 64(SP), Z1; \
	VMOVDQU32 128(SP), Z2; \
	VMOVDQU32 192(SP), Z3; \
	VMOVDQU32 256(SP), Z4; \
	VMOVDQU32 320(SP), Z5; \
	VMOVDQU32 384(SP), Z6; \
	VMOVDQU32 448(SP), Z7

#define ADDSTATE \
	VPADDD 0(SP), Z0, Z0; \
	VPADDD 64(SP), Z1, Z1; \
	VPADDD 128(SP), Z2, Z2; \
	VPADDD 192(SP), Z3, Z3; \
	VPADDD 256(SP), Z4, Z4; \
	VPADDD 320(SP), Z5, Z5; \
	VPADDD 384(SP), Z6, Z6; \
	VPADDD 448(SP), Z7, Z7

// func sha256x16(out *[16 * 32]byte, lanes *[16]*byte, consts *sha256Consts)
// STORELANES finishes the output transpose for two rows of four words per
// lane (lo, hi) and stores 8 lanes' words, byte-swapped, at the four
// offsets (za/zb and ya/yb are the same registers' zmm and ymm names).
#define STORELANES(lo, hi, za, ya, zb, yb, o0, o1, o2, o3) \
	VSHUFI64X2 $0x44, hi, lo, za; \
	VSHUFI64X2 $0xee, hi, lo, zb; \
	VSHUFI64X2 $0xd8, za, za, za; \
	VSHUFI64X2 $0xd8, zb, zb, zb; \
	VPSHUFB bswap32<>(SB), za, za; \
	VPSHUFB bswap32<>(SB), zb, zb; \
	VMOVDQU64 ya, o0(DI); \
	VEXTRACTI64X4 $1, za, o1(DI); \
	VMOVDQU64 yb, o2(DI); \
	VEXTRACTI64X4 $1, zb, o3(DI)

TEXT ·sha256x16(SB), 0, $512-24
	MOVQ lanes+8(FP), DX
	VPBROADCASTD iv256<>+0(SB), Z0
	VPBROADCASTD iv256<>+4(SB), Z1
	VPBROADCASTD iv256<>+8(SB), Z2
	VPBROADCASTD iv256<>+12(SB), Z3
	VPBROADCASTD iv256<>+16(SB), Z4
	VPBROADCASTD iv256<>+20(SB), Z5
	VPBROADCASTD iv256<>+24(SB), Z6
	VPBROADCASTD iv256<>+28(SB), Z7
	XORQ AX, AX

block:
	SAVESTATE

	// Row i (lane i's 16 big-endian words) into W_i, then transposed so
	// that W_t holds word t of every lane: 32-bit pairs, 64-bit pairs,
	// then 128-bit lanes twice, between W0-W15 and Z0-Z7/Z24-Z31.
	MOVQ 0(DX), R8; VMOVDQU32 (R8)(AX*1), W0
	MOVQ 8(DX), R8; VMOVDQU32 (R8)(AX*1), W1
	MOVQ 16(DX), R8; VMOVDQU32 (R8)(AX*1), W2
	MOVQ 24(DX), R8; VMOVDQU32 (R8)(AX*1), W3
	MOVQ 32(DX), R8; VMOVDQU32 (R8)(AX*1), W4
	MOVQ 40(DX), R8; VMOVDQU32 (R8)(AX*1), W5
	MOVQ 48(DX), R8; VMOVDQU32 (R8)(AX*1), W6
	MOVQ 56(DX), R8; VMOVDQU32 (R8)(AX*1), W7
	MOVQ 64(DX), R8; VMOVDQU32 (R8)(AX*1), W8
	MOVQ 72(DX), R8; VMOVDQU32 (R8)(AX*1), W9
	MOVQ 80(DX), R8; VMOVDQU32 (R8)(AX*1), W10
	MOVQ 88(DX), R8; VMOVDQU32 (R8)(AX*1), W11
	MOVQ 96(DX), R8; VMOVDQU32 (R8)(AX*1), W12
	MOVQ 104(DX), R8; VMOVDQU32 (R8)(AX*1), W13
	MOVQ 112(DX), R8; VMOVDQU32 (R8)(AX*1), W14
	MOVQ 120(DX), R8; VMOVDQU32 (R8)(AX*1), W15
	VPSHUFB bswap32<>(SB), W0, W0
	VPSHUFB bswap32<>(SB), W1, W1
	VPSHUFB bswap32<>(SB), W2, W2
	VPSHUFB bswap32<>(SB), W3, W3
	VPSHUFB bswap32<>(SB), W4, W4
	VPSHUFB bswap32<>(SB), W5, W5
	VPSHUFB bswap32<>(SB), W6, W6
	VPSHUFB bswap32<>(SB), W7, W7
	VPSHUFB bswap32<>(SB), W8, W8
	VPSHUFB bswap32<>(SB), W9, W9
	VPSHUFB bswap32<>(SB), W10, W10
	VPSHUFB bswap32<>(SB), W11, W11
	VPSHUFB bswap32<>(SB), W12, W12
	VPSHUFB bswap32<>(SB), W13, W13
	VPSHUFB bswap32<>(SB), W14, W14
	VPSHUFB bswap32<>(SB), W15, W15
	VPUNPCKLDQ W1, W0, Z0
	VPUNPCKHDQ W1, W0, Z1
	VPUNPCKLDQ W3, W2, Z2
	VPUNPCKHDQ W3, W2, Z3
	VPUNPCKLDQ W5, W4, Z4
	VPUNPCKHDQ W5, W4, Z5
	VPUNPCKLDQ W7, W6, Z6
	VPUNPCKHDQ W7, W6, Z7
	VPUNPCKLDQ W9, W8, Z24
	VPUNPCKHDQ W9, W8, Z25
	VPUNPCKLDQ W11, W10, Z26
	VPUNPCKHDQ W11, W10, Z27
	VPUNPCKLDQ W13, W12, Z28
	VPUNPCKHDQ W13, W12, Z29
	VPUNPCKLDQ W15, W14, Z30
	VPUNPCKHDQ W15, W14, Z31
	VPUNPCKLQDQ Z2, Z0, W0
	VPUNPCKHQDQ Z2, Z0, W4
	VPUNPCKLQDQ Z3, Z1, W8
	VPUNPCKHQDQ Z3, Z1, W12
	VPUNPCKLQDQ Z6, Z4, W1
	VPUNPCKHQDQ Z6, Z4, W5
	VPUNPCKLQDQ Z7, Z5, W9
	VPUNPCKHQDQ Z7, Z5, W13
	VPUNPCKLQDQ Z26, Z24, W2
	VPUNPCKHQDQ Z26, Z24, W6
	VPUNPCKLQDQ Z27, Z25, W10
	VPUNPCKHQDQ Z27, Z25, W14
	VPUNPCKLQDQ Z30, Z28, W3
	VPUNPCKHQDQ Z30, Z28, W7
	VPUNPCKLQDQ Z31, Z29, W11
	VPUNPCKHQDQ Z31, Z29, W15
	VSHUFI64X2 $0x44, W1, W0, Z0
	VSHUFI64X2 $0xee, W1, W0, Z1
	VSHUFI64X2 $0x44, W3, W2, Z2
	VSHUFI64X2 $0xee, W3, W2, Z3
	VSHUFI64X2 $0x44, W5, W4, Z4
	VSHUFI64X2 $0xee, W5, W4, Z5
	VSHUFI64X2 $0x44, W7, W6, Z6
	VSHUFI64X2 $0xee, W7, W6, Z7
	VSHUFI64X2 $0x44, W9, W8, Z24
	VSHUFI64X2 $0xee, W9, W8, Z25
	VSHUFI64X2 $0x44, W11, W10, Z26
	VSHUFI64X2 $0xee, W11, W10, Z27
	VSHUFI64X2 $0x44, W13, W12, Z28
	VSHUFI64X2 $0xee, W13, W12, Z29
	VSHUFI64X2 $0x44, W15, W14, Z30
	VSHUFI64X2 $0xee, W15, W14, Z31
	VSHUFI64X2 $0x88, Z2, Z0, W0
	VSHUFI64X2 $0xdd, Z2, Z0, W4
	VSHUFI64X2 $0x88, Z3, Z1, W8
	VSHUFI64X2 $0xdd, Z3, Z1, W12
	VSHUFI64X2 $0x88, Z6, Z4, W1
	VSHUFI64X2 $0xdd, Z6, Z4, W5
	VSHUFI64X2 $0x88, Z7, Z5, W9
	VSHUFI64X2 $0xdd, Z7, Z5, W13
	VSHUFI64X2 $0x88, Z26, Z24, W2
	VSHUFI64X2 $0xdd, Z26, Z24, W6
	VSHUFI64X2 $0x88, Z27, Z25, W10
	VSHUFI64X2 $0xdd, Z27, Z25, W14
	VSHUFI64X2 $0x88, Z30, Z28, W3
	VSHUFI64X2 $0xdd, Z30, Z28, W7
	VSHUFI64X2 $0x88, Z31, Z29, W11
	VSHUFI64X2 $0xdd, Z31, Z29, W15

	LOADSTATE
	MOVQ consts+16(FP), BX
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, W0, 0(BX))
	ROUND(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, W1, 4(BX))
	ROUND(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, W2, 8(BX))
	ROUND(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, W3, 12(BX))
	ROUND(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, W4, 16(BX))
	ROUND(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, W5, 20(BX))
	ROUND(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, W6, 24(BX))
	ROUND(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, W7, 28(BX))
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, W8, 32(BX))
	ROUND(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, W9, 36(BX))
	ROUND(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, W10, 40(BX))
	ROUND(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, W11, 44(BX))
	ROUND(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, W12, 48(BX))
	ROUND(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, W13, 52(BX))
	ROUND(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, W14, 56(BX))
	ROUND(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, W15, 60(BX))
	MOVQ $3, CX

schedule:
	ADDQ $64, BX
	SCHED(W0, W1, W9, W14)
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, W0, 0(BX))
	SCHED(W1, W2, W10, W15)
	ROUND(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, W1, 4(BX))
	SCHED(W2, W3, W11, W0)
	ROUND(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, W2, 8(BX))
	SCHED(W3, W4, W12, W1)
	ROUND(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, W3, 12(BX))
	SCHED(W4, W5, W13, W2)
	ROUND(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, W4, 16(BX))
	SCHED(W5, W6, W14, W3)
	ROUND(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, W5, 20(BX))
	SCHED(W6, W7, W15, W4)
	ROUND(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, W6, 24(BX))
	SCHED(W7, W8, W0, W5)
	ROUND(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, W7, 28(BX))
	SCHED(W8, W9, W1, W6)
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, W8, 32(BX))
	SCHED(W9, W10, W2, W7)
	ROUND(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, W9, 36(BX))
	SCHED(W10, W11, W3, W8)
	ROUND(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, W10, 40(BX))
	SCHED(W11, W12, W4, W9)
	ROUND(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, W11, 44(BX))
	SCHED(W12, W13, W5, W10)
	ROUND(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, W12, 48(BX))
	SCHED(W13, W14, W6, W11)
	ROUND(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, W13, 52(BX))
	SCHED(W14, W15, W7, W12)
	ROUND(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, W14, 56(BX))
	SCHED(W15, W0, W8, W13)
	ROUND(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, W15, 60(BX))
	DECQ CX
	JNZ schedule

	ADDSTATE
	ADDQ $64, AX
	CMPQ AX, $4096
	JB block

	// The padding block: W[t]+K[t] from consts.padWK, 8 rounds at a time.
	SAVESTATE
	MOVQ consts+16(FP), BX
	ADDQ $256, BX
	MOVQ $8, CX

padding:
	ROUNDK(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, 0(BX))
	ROUNDK(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, 4(BX))
	ROUNDK(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, 8(BX))
	ROUNDK(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, 12(BX))
	ROUNDK(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, 16(BX))
	ROUNDK(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, 20(BX))
	ROUNDK(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, 24(BX))
	ROUNDK(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, 28(BX))
	ADDQ $32, BX
	DECQ CX
	JNZ padding

	ADDSTATE

	// Lane i's digest is word i of a..h. Interleaving 32-bit then 64-bit
	// pairs of a..h gives, in each 128-bit lane k of Z16+c (a-d) and Z20+c
	// (e-h), the words of hash lane 4k+c; two 128-bit shuffles pair the
	// halves of each digest.
	MOVQ out+0(FP), DI
	VPUNPCKLDQ Z1, Z0, Z8
	VPUNPCKHDQ Z1, Z0, Z9
	VPUNPCKLDQ Z3, Z2, Z10
	VPUNPCKHDQ Z3, Z2, Z11
	VPUNPCKLDQ Z5, Z4, Z12
	VPUNPCKHDQ Z5, Z4, Z13
	VPUNPCKLDQ Z7, Z6, Z14
	VPUNPCKHDQ Z7, Z6, Z15
	VPUNPCKLQDQ Z10, Z8, Z16
	VPUNPCKHQDQ Z10, Z8, Z17
	VPUNPCKLQDQ Z11, Z9, Z18
	VPUNPCKHQDQ Z11, Z9, Z19
	VPUNPCKLQDQ Z14, Z12, Z20
	VPUNPCKHQDQ Z14, Z12, Z21
	VPUNPCKLQDQ Z15, Z13, Z22
	VPUNPCKHQDQ Z15, Z13, Z23
	STORELANES(Z16, Z20, Z24, Y24, Z28, Y28, 0, 128, 256, 384)
	STORELANES(Z17, Z21, Z25, Y25, Z29, Y29, 32, 160, 288, 416)
	STORELANES(Z18, Z22, Z26, Y26, Z30, Y30, 64, 192, 320, 448)
	STORELANES(Z19, Z23, Z27, Y27, Z31, Y31, 96, 224, 352, 480)
	VZEROUPPER
	RET

// The SHA-256 initial hash value H(0) (FIPS 180-4, 5.3.3).
DATA iv256<>+0(SB)/4, $0x6a09e667
DATA iv256<>+4(SB)/4, $0xbb67ae85
DATA iv256<>+8(SB)/4, $0x3c6ef372
DATA iv256<>+12(SB)/4, $0xa54ff53a
DATA iv256<>+16(SB)/4, $0x510e527f
DATA iv256<>+20(SB)/4, $0x9b05688c
DATA iv256<>+24(SB)/4, $0x1f83d9ab
DATA iv256<>+28(SB)/4, $0x5be0cd19
GLOBL iv256<>(SB), RODATA|NOPTR, $32

// VPSHUFB indices that reverse the bytes of each 32-bit word.
DATA bswap32<>+0(SB)/8, $0x0405060700010203
DATA bswap32<>+8(SB)/8, $0x0c0d0e0f08090a0b
DATA bswap32<>+16(SB)/8, $0x0405060700010203
DATA bswap32<>+24(SB)/8, $0x0c0d0e0f08090a0b
DATA bswap32<>+32(SB)/8, $0x0405060700010203
DATA bswap32<>+40(SB)/8, $0x0c0d0e0f08090a0b
DATA bswap32<>+48(SB)/8, $0x0405060700010203
DATA bswap32<>+56(SB)/8, $0x0c0d0e0f08090a0b
GLOBL bswap32<>(SB), RODATA|NOPTR, $64
