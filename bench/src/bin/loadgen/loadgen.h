/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types and functions shared by loadgen.bpf.c and its user-space side
 * (bench/src/bin/loadgen/bpf.rs mirrors them; keep both in step).
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <linux/types.h>

/*
 * Slots of the per-CPU `lg_counters` array (u64 each), counted by lg_xdp's receive side on the frames the
 * target sends to our sources. INVALID == BAD_LEN + BAD_CSUM + BAD_ACK + BAD_OPTS: an invalid
 * SYN-ACK counts once in INVALID and once in the first check it failed, in that order.
 */
enum lg_counter {
	/* SYN-ACK with valid checksums, ACK == ISN + 1, and the expected option layout. */
	LG_CNT_VALID = 0,
	/* SYN-ACK that failed a check (one of the four reasons below). */
	LG_CNT_INVALID = 1,
	/* IP length and TCP data offset disagree with the expected option layout, or payload. */
	LG_CNT_BAD_LEN = 2,
	/* IPv4 header or TCP checksum wrong. */
	LG_CNT_BAD_CSUM = 3,
	/* ACK != ISN(our address, our port) + 1: not an answer to a SYN of ours. */
	LG_CNT_BAD_ACK = 4,
	/* Options not as expected for the option set sent (see lg_opts_ok). */
	LG_CNT_BAD_OPTS = 5,
	/* Third ACKs sent back (XDP_TX) for valid SYN-ACKs of completing flows. */
	LG_CNT_HANDSHAKES = 6,
	/* A reply (third ACK or RST) that could not be written (bpf_xdp_adjust_tail failed). */
	LG_CNT_REPLY_FAILED = 7,
	/* RST from the target to one of our sources (dropped). */
	LG_CNT_RST = 8,
	/* Other TCP with ACK from the target to our sources (FIN, data, pure ACK): answered with
	 * a RST (XDP_TX). */
	LG_CNT_OTHER = 9,
	/* Anything else on the interface (ARP, ND, other hosts or ports): passed. */
	LG_CNT_PASSED = 10,
	/* A generator run on a frame that is not a template (too short, wrong EtherType): aborted. */
	LG_CNT_GEN_ERR = 11,
	LG_CNT_MAX = 12,
};

/* Option sets of the SYNs (cfg_opt_set). */
enum lg_opt_set {
	LG_OPTS_NONE = 0, /* no options: doff 5 */
	LG_OPTS_MSS = 1,  /* MSS: doff 6 */
	LG_OPTS_LINUX = 2, /* MSS, SACK-permitted, TS, NOP, WS as Linux sends them: doff 10 */
};

/* Client ports: LG_PORT_MIN + (random % LG_PORT_SPAN), then the mark bit set or cleared. */
#define LG_PORT_MIN 1024
#define LG_PORT_SPAN 64512
/*
 * The low bit of the client port marks a flow that completes its handshake: the generator sets
 * it for completing clients (LG_META_GEN_COMPLETE) and clears it for the flood; the receiver
 * answers a valid SYN-ACK with the third ACK only when it is set.
 */
#define LG_PORT_MARK 1

/* Window of the third ACK: 502 << 7 (Linux's with WS 7) when WS was offered, else 64240. */
#define LG_ACK_WIN_WS 502
#define LG_ACK_WIN 64240

/*
 * Metadata tags (4 bytes before the frame, host order) of a generator run of lg_xdp: flood
 * SYNs (mark bit cleared) or SYNs of completing clients (mark bit set).
 */
#define LG_META_GEN_FLOOD 0x4c470001U
#define LG_META_GEN_COMPLETE 0x4c470002U

/* The murmur3 finaliser: a bijection of 32 bits with full avalanche. */
static __always_inline __u32 lg_fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	h ^= h >> 16;
	return h;
}

/*
 * The ISN of the SYN from address addr (host order; for IPv6 the XOR of the four 32-bit words,
 * host order) and port (host order), under the run's key: the SYN-ACK must acknowledge
 * lg_isn(its destination address, its destination port) + 1, checked without state.
 */
static __always_inline __u32 lg_isn(__u32 addr, __u16 port, __u32 key0, __u32 key1)
{
	__u32 h = lg_fmix32(addr ^ key0);

	return lg_fmix32(h ^ (((__u32)port << 16) | port) ^ key1);
}

#endif /* LOADGEN_H */
