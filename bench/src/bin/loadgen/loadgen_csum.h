/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internet checksum arithmetic for loadgen.bpf.c, on raw (network order, as loaded) 16-bit
 * words: the one's complement sum does not depend on byte order as long as every word is taken
 * the same way, so nothing here swaps bytes.
 *
 * Sums are kept in a __u32 accumulator and folded at the end; every caller adds at most a few
 * dozen 16-bit words, far from overflowing 32 bits.
 */
#ifndef LOADGEN_CSUM_H
#define LOADGEN_CSUM_H

#include <linux/types.h>

/* Folds a 32-bit accumulator into 16 bits (end-around carry), not complemented. */
static __always_inline __u16 lg_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Adds both halves of a 32-bit word as loaded from the packet. */
static __always_inline __u32 lg_csum_add32(__u32 acc, __u32 w)
{
	return acc + (w & 0xffff) + (w >> 16);
}

/* Subtracts a 32-bit word: adds the one's complement of each half (RFC 1624: ~m). */
static __always_inline __u32 lg_csum_sub32(__u32 acc, __u32 w)
{
	return acc + (__u16)~(w & 0xffff) + (__u16)~(w >> 16);
}

/* Adds a 16-bit word. */
static __always_inline __u32 lg_csum_add16(__u32 acc, __u16 w)
{
	return acc + w;
}

/* Subtracts a 16-bit word. */
static __always_inline __u32 lg_csum_sub16(__u32 acc, __u16 w)
{
	return acc + (__u16)~w;
}

/*
 * RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): the accumulator starts as ~HC, the caller adds
 * ~m and m' for every changed word with the helpers above, and this returns HC'.
 */
static __always_inline __u32 lg_csum_start(__u16 check)
{
	return (__u16)~check;
}

static __always_inline __u16 lg_csum_finish(__u32 acc)
{
	return (__u16)~lg_csum_fold(acc);
}

/*
 * Sum of `words` 16-bit words at p. The caller has checked p + 2 * words <= data_end; words is
 * a compile-time constant at every call site, so the loop unrolls into plain loads.
 */
static __always_inline __u32 lg_csum_words(__u32 acc, const __u16 *p, const int words)
{
#pragma unroll
	for (int i = 0; i < words; i++)
		acc += p[i];
	return acc;
}

#endif /* LOADGEN_CSUM_H */
