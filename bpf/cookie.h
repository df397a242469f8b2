/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flood path: a SYN to a listener in cookie mode answered here, with XDP_TX, by the same
 * SYN-ACK the engine would build (crates/synline-core conn_request.rs `cookie_synack`, and
 * synline-wire's in-place builder), bit for bit: the same SipHash-2-4 cookie (K-1) under the
 * same secrets, the same TSval encoding of the options (K-3), the same option layout,
 * IP header and IPv6 flow label (V-5). The daemon publishes per listener whether it is
 * in cookie mode (tcp_syncookies=2, or 1 with the SYN queue over its bound) and writes the
 * secrets into .bss; the engine keeps validating the cookie ACKs (K-5..K-7), with the request
 * socks, retransmissions and everything else of the stateful path.
 *
 * Only the plain case is answered here; anything else goes to the engine as before, which
 * answers it by the rules (the XDP program must never answer what the engine would not):
 * IPv4 options, a SYN carrying data, a bad IP or TCP checksum, a group MAC or a non-unicast
 * address, an IPv4-mapped IPv6 source, SYN with FIN/RST/ACK, an option list longer than
 * OPT_STEPS steps.
 *
 * Everything is read into the stack with bpf_xdp_load_bytes() and the reply is built there
 * and written back with bpf_xdp_store_bytes(): fixed-size stack buffers keep the verifier's
 * view simple whatever the lengths.
 */
#ifndef SYNLINE_COOKIE_H
#define SYNLINE_COOKIE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "synline.h"

/* Secrets and clock, written by the loader (XdpProgram::set_cookie_secrets). Two slots: the
 * loader fills the one not in use, then flips `cookie_slot`, so a program never reads a pair
 * half written. */
struct cookie_secrets {
	__u8 cookie[2][16];   /* K-1: H0 and H1 */
	__u8 ts_off[16];      /* */
	__u8 flow_label[16];  /* V-5 */
	__u64 clock_offset_ns; /* StackConfig::cookie_clock_offset: the cookie minute's clock */
	__u32 ready;          /* 1 once written */
	__u32 pad;
};

struct cookie_secrets cookie_keys[2];
__u32 cookie_slot;
/* Tests: a fixed clock instead of bpf_ktime_get_ns() (0: the real one), and answering on a
 * queue without an AF_XDP socket (BPF_PROG_TEST_RUN has none). */
__u64 cookie_test_now_ns;
__u32 cookie_test_no_socket;

#define COOKIEBITS 24
#define COOKIEMASK ((1U << COOKIEBITS) - 1)
#define TSBITS 6
#define TS_OPT_WSCALE_MASK 0x0f
#define TS_OPT_SACK (1 << 4)
#define TS_OPT_ECN (1 << 5)
#define MAX_WSCALE 14
/* Option list steps parsed here (each consumes at least a byte); a longer list goes to the
 * engine. Linux sends 5, Windows and macOS 8 with their NOPs and EOL. */
#define OPT_STEPS 12

/* ---- SipHash-2-4 (crates/synline-core/src/siphash.rs), over a stack buffer of a length
 * known at compile time, so the loops unroll. */

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                            \
	do {                                                                                 \
		v0 += v1; v1 = ROTL64(v1, 13); v1 ^= v0; v0 = ROTL64(v0, 32);               \
		v2 += v3; v3 = ROTL64(v3, 16); v3 ^= v2;                                     \
		v0 += v3; v3 = ROTL64(v3, 21); v3 ^= v0;                                     \
		v2 += v1; v1 = ROTL64(v1, 17); v1 ^= v2; v2 = ROTL64(v2, 32);               \
	} while (0)

static __always_inline __u64 le64(const __u8 *p)
{
	__u64 v;

	__builtin_memcpy(&v, p, 8); /* BPF runs little-endian here (bpfel) */
	return v;
}

static __always_inline __u64 siphash24(const __u8 *key, const __u8 *msg, const int len)
{
	__u64 k0 = le64(key), k1 = le64(key + 8);
	__u64 v0 = k0 ^ 0x736f6d6570736575ULL;
	__u64 v1 = k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = k0 ^ 0x6c7967656e657261ULL;
	__u64 v3 = k1 ^ 0x7465646279746573ULL;
	__u64 b = ((__u64)len) << 56;
	int i;

#pragma unroll
	for (i = 0; i + 8 <= len; i += 8) {
		__u64 m = le64(msg + i);

		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
#pragma unroll
	for (i = 0; i < (len & 7); i++)
		b |= ((__u64)msg[(len & ~7) + i]) << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- The SYN, as the engine's parse leaves it (synline-wire frame.rs, tcp_options.rs S-7). */

struct syn_in {
	/* flow_key.hash_input(): remote (the SYN's source) first, then local; ports after.
	 * IPv4: 4 + 4 + 2 + 2 bytes; IPv6: 16 + 16 + 2 + 2. Room for the cookie's count (4) and
	 * the flow label's attempt byte behind. */
	__u8 hash_in[40];
	__u8 tcp[60];         /* the TCP header with its options, as received */
	__u32 seq;            /* host order */
	__u16 mss;            /* 0: none */
	__u8 has_ws;
	__u8 ws;
	__u8 sack;
	__u8 has_ts;
	__u8 ip_ecn;          /* ECN field of the IP header */
	__u8 flags;           /* TCP flags byte */
	__u32 tsval;
	int optlen;           /* option bytes: doff * 4 - 20 */
	int opt_done;         /* the option list was parsed to its end */
};

struct opt_ctx {
	struct syn_in *s;
	int off;
};

/* One step of S-7 (tcp_options.rs `TcpOptions::parse`): EOL ends the list, NOP is one byte,
 * every other kind needs a length byte that covers itself and fits; MSS 0 is ignored, WS is
 * clamped to 14, the last of a kind wins. Returns 1 to stop. */
static long opt_step(__u32 i, void *data)
{
	struct opt_ctx *c = data;
	struct syn_in *s = c->s;
	int off = c->off;
	__u8 kind, size;

	if (off < 0 || off >= s->optlen || off > 39) {
		s->opt_done = 1;
		return 1;
	}
	kind = s->tcp[20 + off];
	if (kind == 0) {
		s->opt_done = 1;
		return 1;
	}
	if (kind == 1) {
		c->off = off + 1;
		return 0;
	}
	if (off + 1 >= s->optlen || off + 1 > 39) {
		s->opt_done = 1; /* a kind with no room for its length ends the list */
		return 1;
	}
	size = s->tcp[20 + off + 1];
	if (size < 2 || size > s->optlen - off) {
		s->opt_done = 1;
		return 1;
	}
	if (kind == 2 && size == 4 && off + 3 <= 39) {
		__u16 mss = ((__u16)s->tcp[20 + off + 2] << 8) | s->tcp[20 + off + 3];

		if (mss)
			s->mss = mss;
	} else if (kind == 3 && size == 3 && off + 2 <= 39) {
		__u8 ws = s->tcp[20 + off + 2];

		s->has_ws = 1;
		s->ws = ws > MAX_WSCALE ? MAX_WSCALE : ws;
	} else if (kind == 4 && size == 2) {
		s->sack = 1;
	} else if (kind == 8 && size == 10 && off + 9 <= 39) {
		s->has_ts = 1;
		s->tsval = ((__u32)s->tcp[20 + off + 2] << 24) | ((__u32)s->tcp[20 + off + 3] << 16) |
			   ((__u32)s->tcp[20 + off + 4] << 8) | s->tcp[20 + off + 5];
	}
	c->off = off + size;
	return 0;
}

/* Scratch space of one SYN (the 512-byte BPF stack holds none of it): one per CPU. */
struct cookie_scratch {
	struct syn_in s;
	__u8 ipb[40];  /* the SYN's IP header */
	__u8 out[80];  /* the reply's IP header, TCP header and options */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cookie_scratch);
} cookie_scratch SEC(".maps");

/* ---- Checksums. */

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/*
 * The one's-complement sum of the first `len` bytes (a multiple of 4, at most `max`) of a
 * buffer, 32-bit words as the CPU loads them, unrolled: no helper call (bpf_csum_diff() cost
 * a few percent of a core per call site in the flood's profile). Summing native words gives
 * the checksum in the CPU's byte order, as csum_partial() does: lengths and protocol are added
 * as bpf_htons() values, and a result is stored as the CPU stores it.
 */
static __always_inline __u64 csum_words(const __u8 *buf, int len, const int max)
{
	__u64 s = 0;
	int i;

#pragma unroll
	for (i = 0; i < max; i += 4) {
		__u32 w;

		__builtin_memcpy(&w, buf + i, 4);
		if (i < len)
			s += w;
	}
	return s;
}

/* ---- The reply. */

static __always_inline void put16(__u8 *p, __u16 v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static __always_inline void put32(__u8 *p, __u32 v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* K-2: the largest table entry not above the peer's MSS (below the first: the first). */
static __always_inline __u32 mss_index(__u16 mss, int v6)
{
	if (v6)
		return mss >= 8940 ? 3 : mss >= 1440 ? 2 : mss >= 1420 ? 1 : 0;
	return mss >= 1460 ? 3 : mss >= 1440 ? 2 : mss >= 1300 ? 1 : 0;
}

#endif /* SYNLINE_COOKIE_H */
