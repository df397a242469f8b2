// SPDX-License-Identifier: GPL-2.0
/*
 * The XDP side of synline-loadgen (bench/src/bin/loadgen.rs). One program, lg_xdp, attached to
 * the client-side interface, does both jobs (see lg_xdp for why one):
 *
 * gen: run by BPF_PROG_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES) on a template SYN
 *   prepared once by user space, with a tag in 4 bytes of metadata before it. Per frame it
 *   writes a random source address within the client prefix, a random source port, ISN =
 *   lg_isn(address, port, key), fixes the IPv4 and TCP checksums incrementally (RFC 1624) and
 *   returns XDP_TX, which the kernel turns into a transmit on the interface named by the run's
 *   ingress_ifindex. The tag says whether the port's mark bit is cleared (flood) or set (the
 *   flow will complete its handshake).
 *
 *   Live-frames pages are recycled with the previous run's bytes in them (the kernel only
 *   resets the frame pointers), so every update starts from the values in the frame, never
 *   from the template's.
 *
 * rx: every frame the interface receives. Checks every SYN-ACK the target sends to our sources
 *   (checksums, ACK == ISN + 1, option layout), counts it, and drops it (which also keeps the
 *   client kernel from answering with a RST), or, for a valid SYN-ACK of a marked flow when
 *   cfg_answer is set, rewrites it in place into the third ACK and sends it back (XDP_TX).
 *   RSTs are counted and dropped. Other TCP from the target to our sources (the FIN of an
 *   accepted connection the server closes, data) is answered with a RST in place: our
 *   sources are not addresses of the client host, so its kernel would drop those segments
 *   silently and the server would keep orphan sockets retransmitting their FINs. Everything
 *   else is passed to the kernel.
 *
 * lg_pass: XDP_PASS, for a receiving veth that needs an XDP program to accept XDP frames.
 * lg_drop: XDP_DROP, the same for measuring how many SYNs reach the receiving side at all.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "loadgen.h"
#include "loadgen_csum.h"

/* Set by user space before load; constants for the verifier. */
const volatile __u32 cfg_key0 = 0;
const volatile __u32 cfg_key1 = 0;
/* IPv4 client prefix, host order: sources are cfg_src_net | (random & ~cfg_src_mask). */
const volatile __u32 cfg_src_net = 0;
const volatile __u32 cfg_src_mask = 0;
/* A /24 (host order) that sources must avoid (the target's own subnet), 0 for none. */
const volatile __u32 cfg_excl_net = 0;
/* The target, network order. */
const volatile __be32 cfg_dst_addr = 0;
const volatile __be32 cfg_dst_addr6[4] = {};
const volatile __be16 cfg_dst_port = 0;
/*
 * IPv6 client prefix: words 0..2 of every source are cfg_src6_hi (network order), word 3 is
 * cfg_src6_lo_net | (random & ~cfg_src6_lo_mask) (host order).
 */
const volatile __be32 cfg_src6_hi[3] = {};
const volatile __u32 cfg_src6_lo_net = 0;
const volatile __u32 cfg_src6_lo_mask = 0;
/* enum lg_opt_set of the SYNs. */
const volatile __u32 cfg_opt_set = LG_OPTS_NONE;
/* TSval of our SYNs and third ACKs (network order): the SYN-ACK must echo it. */
const volatile __be32 cfg_tsval = 0;
/* Answer valid SYN-ACKs of marked flows with the third ACK (handshake and mix modes). */
const volatile __u32 cfg_answer = 0;
/*
 * The SYN template (BPF_PROG_RUN's data_in): live frames reuse their pages, and a page comes
 * back as the target left it when the target answered in XDP (XDP_TX: the SYN-ACK, then this
 * program's third ACK, written over the SYN). gen() edits a frame field by field, so such a
 * page is restored from the template first.
 */
#define LG_TMPL_MAX 128
const volatile __u8 cfg_tmpl[LG_TMPL_MAX] = {};
const volatile __u32 cfg_tmpl_len = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LG_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lg_counters SEC(".maps");

#define ETH_LEN 14
#define IP4_LEN 20
#define IP6_LEN 40

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

#define IP_DF 0x4000

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&lg_counters, &slot);

	/* Per-CPU slot: no other writer, a plain increment is exact. */
	if (v)
		*v += 1;
}

/* Length of the SYN-ACK's TCP header for our option set, in 16-bit words. */
static __always_inline int synack_words(void)
{
	return cfg_opt_set == LG_OPTS_LINUX ? 20 : 12;
}

/* A random client port, with the mark bit set (completing flow) or cleared. */
static __always_inline __u16 pick_port(int complete)
{
	__u16 port = LG_PORT_MIN + bpf_get_prandom_u32() % LG_PORT_SPAN;

	return complete ? port | LG_PORT_MARK : port & ~LG_PORT_MARK;
}

/* ------------------------------------------------------------------------------------------ */
/* Generator                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static __always_inline int gen_err(void)
{
	count(LG_CNT_GEN_ERR);
	return XDP_ABORTED;
}

static __always_inline int gen4(void *data, void *data_end, int complete)
{
	struct iphdr *ip = data + ETH_LEN;
	struct tcphdr *tcp = data + ETH_LEN + IP4_LEN;
	__u32 addr, acc;
	__be32 saddr, seq;
	__be16 sport;
	__u16 port;

	if ((void *)(tcp + 1) > data_end)
		return gen_err();
	addr = cfg_src_net | (bpf_get_prandom_u32() & ~cfg_src_mask);
	/* Out of the target's /24 (one bit of the third octet flipped; the prefix is wider). */
	if (cfg_excl_net && (addr & 0xffffff00) == cfg_excl_net)
		addr ^= 0x100;
	port = pick_port(complete);
	saddr = bpf_htonl(addr);
	sport = bpf_htons(port);
	seq = bpf_htonl(lg_isn(addr, port, cfg_key0, cfg_key1));

	acc = lg_csum_start(ip->check);
	acc = lg_csum_sub32(acc, ip->saddr);
	acc = lg_csum_add32(acc, saddr);
	ip->check = lg_csum_finish(acc);

	/* The source address is also in the TCP pseudo-header. */
	acc = lg_csum_start(tcp->check);
	acc = lg_csum_sub32(acc, ip->saddr);
	acc = lg_csum_add32(acc, saddr);
	acc = lg_csum_sub16(acc, tcp->source);
	acc = lg_csum_add16(acc, sport);
	acc = lg_csum_sub32(acc, tcp->seq);
	acc = lg_csum_add32(acc, seq);
	tcp->check = lg_csum_finish(acc);

	ip->saddr = saddr;
	tcp->source = sport;
	tcp->seq = seq;
	return XDP_TX;
}

static __always_inline int gen6(void *data, void *data_end, int complete)
{
	struct ipv6hdr *ip6 = data + ETH_LEN;
	struct tcphdr *tcp = data + ETH_LEN + IP6_LEN;
	__u32 lo, fold, acc;
	__be32 w3, seq;
	__be16 sport;
	__u16 port;

	if ((void *)(tcp + 1) > data_end)
		return gen_err();
	lo = cfg_src6_lo_net | (bpf_get_prandom_u32() & ~cfg_src6_lo_mask);
	port = pick_port(complete);
	w3 = bpf_htonl(lo);
	sport = bpf_htons(port);
	fold = bpf_ntohl(cfg_src6_hi[0] ^ cfg_src6_hi[1] ^ cfg_src6_hi[2]) ^ lo;
	seq = bpf_htonl(lg_isn(fold, port, cfg_key0, cfg_key1));

	acc = lg_csum_start(tcp->check);
	acc = lg_csum_sub32(acc, ip6->saddr.in6_u.u6_addr32[3]);
	acc = lg_csum_add32(acc, w3);
	acc = lg_csum_sub16(acc, tcp->source);
	acc = lg_csum_add16(acc, sport);
	acc = lg_csum_sub32(acc, tcp->seq);
	acc = lg_csum_add32(acc, seq);
	tcp->check = lg_csum_finish(acc);

	ip6->saddr.in6_u.u6_addr32[3] = w3;
	tcp->source = sport;
	tcp->seq = seq;
	return XDP_TX;
}

static __always_inline int gen(struct xdp_md *ctx, int complete)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 len = cfg_tmpl_len;

	/* A page a target rewrote (its source MAC is not ours, or its TCP flags are not the
	 * template's SYN): the template again, whole. */
	if (len >= 54 && len <= LG_TMPL_MAX && data + 54 <= data_end) {
		__u8 *d = data;
		/* The TCP flags byte: after an IPv4 header at 47, after an IPv6 one at 67. */
		int v6 = d[12] == 0x86;
		int rewritten = d[6] != cfg_tmpl[6] || d[11] != cfg_tmpl[11];

		if (!v6)
			rewritten |= d[47] != cfg_tmpl[47];
		else if (len >= 74 && data + 74 <= data_end)
			rewritten |= d[67] != cfg_tmpl[67];
		if (rewritten) {
			if (bpf_xdp_store_bytes(ctx, 0, (void *)cfg_tmpl, len))
				return gen_err();
			data = (void *)(long)ctx->data;
			data_end = (void *)(long)ctx->data_end;
			eth = data;
		}
	}

	if ((void *)(eth + 1) > data_end)
		return gen_err();
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return gen4(data, data_end, complete);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return gen6(data, data_end, complete);
	return gen_err();
}

/* ------------------------------------------------------------------------------------------ */
/* Receiver                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static __always_inline int rx_pass(void)
{
	count(LG_CNT_PASSED);
	return XDP_PASS;
}

static __always_inline int rx_invalid(__u32 reason)
{
	count(LG_CNT_INVALID);
	count(reason);
	return XDP_DROP;
}

/*
 * The SYN-ACK's options, at opt (the caller checked synack_words() * 2 bytes of TCP header
 * are there), are exactly what Linux (and synline) send for our SYN's option set:
 *   none, MSS: MSS                                        (02 04 mm mm)
 *   linux:     MSS, SACK-permitted, TS echoing our TSval, NOP, WS <= 14
 *              (02 04 mm mm 04 02 08 0a vv vv vv vv ee ee ee ee 01 03 03 ww)
 * A SYN without options still gets an MSS in the SYN-ACK (Linux always sends one).
 */
static __always_inline int opts_ok(const __u8 *opt, void *data_end)
{
	__be32 tsecr;

	if ((void *)(opt + 4) > data_end)
		return 0;
	if (opt[0] != 2 || opt[1] != 4 || (opt[2] | opt[3]) == 0)
		return 0;
	if (cfg_opt_set != LG_OPTS_LINUX)
		return 1;
	if ((void *)(opt + 20) > data_end)
		return 0;
	if (opt[4] != 4 || opt[5] != 2 || opt[6] != 8 || opt[7] != 10)
		return 0;
	__builtin_memcpy(&tsecr, opt + 12, sizeof(tsecr));
	if (tsecr != cfg_tsval)
		return 0;
	return opt[16] == 1 && opt[17] == 3 && opt[18] == 3 && opt[19] <= 14;
}

/* One's complement sum of the SYN-ACK's TCP header (synack_words() words), 0 if short. */
static __always_inline int sum_synack_tcp(void *tcp, void *data_end, __u32 *acc)
{
	if (cfg_opt_set == LG_OPTS_LINUX) {
		if (tcp + 40 > data_end)
			return 0;
		*acc = lg_csum_words(*acc, tcp, 20);
	} else {
		if (tcp + 24 > data_end)
			return 0;
		*acc = lg_csum_words(*acc, tcp, 12);
	}
	return 1;
}

/*
 * What lg_xdp sends back in place of a segment from the target:
 *   REPLY_ACK: the third ACK of a handshake (seq = their ACK, ack = their seq + 1; NOP NOP TS
 *     echoing their TSval when our SYNs offered TS, else no options);
 *   REPLY_RST: a RST for a segment of a connection we never keep (seq = their ACK, no
 *     options), as a client kernel without the socket would send.
 */
enum reply { REPLY_ACK, REPLY_RST };

/* Length of the reply's TCP header. */
static __always_inline int reply_tcp_len(enum reply kind)
{
	return kind == REPLY_ACK && cfg_opt_set == LG_OPTS_LINUX ? 32 : 20;
}

/* Writes the reply's TCP header at tcp (the caller checked reply_tcp_len() bytes). */
static __always_inline void write_reply_tcp(struct tcphdr *tcp, enum reply kind, __be16 sport,
					    __be16 dport, __be32 their_seq, __be32 their_ack,
					    __be32 tsecr)
{
	__u8 *b = (__u8 *)tcp;

	tcp->source = sport;
	tcp->dest = dport;
	tcp->seq = their_ack;
	b[12] = (reply_tcp_len(kind) / 4) << 4;
	tcp->check = 0;
	tcp->urg_ptr = 0;
	if (kind == REPLY_RST) {
		tcp->ack_seq = 0;
		b[13] = TCPF_RST;
		tcp->window = 0;
		return;
	}
	tcp->ack_seq = bpf_htonl(bpf_ntohl(their_seq) + 1);
	b[13] = TCPF_ACK;
	tcp->window = bpf_htons(cfg_opt_set == LG_OPTS_LINUX ? LG_ACK_WIN_WS : LG_ACK_WIN);
	if (reply_tcp_len(kind) == 32) {
		__be32 tsval = cfg_tsval;

		b[20] = 1;
		b[21] = 1;
		b[22] = 8;
		b[23] = 10;
		__builtin_memcpy(b + 24, &tsval, 4);
		__builtin_memcpy(b + 28, &tsecr, 4);
	}
}

/* Adds the reply's TCP header (reply_tcp_len() bytes, checked by the caller) to acc. */
static __always_inline __u32 sum_reply_tcp(void *tcp, enum reply kind, __u32 acc)
{
	if (reply_tcp_len(kind) == 32)
		return lg_csum_words(acc, tcp, 16);
	return lg_csum_words(acc, tcp, 10);
}

/* Their TSval, from a SYN-ACK whose layout was checked (0 without TS). */
static __always_inline __be32 their_tsval(void *tcp, void *data_end)
{
	__be32 v = 0;

	if (cfg_opt_set == LG_OPTS_LINUX && tcp + 20 + 12 <= data_end)
		__builtin_memcpy(&v, tcp + 20 + 8, 4);
	return v;
}

static __always_inline int reply_sent(enum reply kind)
{
	count(kind == REPLY_ACK ? LG_CNT_HANDSHAKES : LG_CNT_OTHER);
	return XDP_TX;
}

static __always_inline int reply_failed(void)
{
	count(LG_CNT_REPLY_FAILED);
	return XDP_DROP;
}

/* Shrinks (or grows) the frame to len bytes; 0 on success. */
static __always_inline int set_len(struct xdp_md *ctx, int len)
{
	int delta = len - (int)bpf_xdp_get_buff_len(ctx);

	if (delta == 0)
		return 0;
	return bpf_xdp_adjust_tail(ctx, delta);
}

/* A segment from the target becomes, in place, our reply (IPv4). */
static __always_inline int reply4(struct xdp_md *ctx, enum reply kind)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_LEN;
	struct tcphdr *tcp = data + ETH_LEN + IP4_LEN;
	const int tcp_len = reply_tcp_len(kind);
	__be32 saddr, daddr, seq, ack, tsecr = 0;
	__be16 sport, dport;
	__u8 mac[12];
	__u32 acc;

	if ((void *)(tcp + 1) > data_end)
		return reply_failed();
	__builtin_memcpy(mac, eth, sizeof(mac));
	saddr = ip->saddr;
	daddr = ip->daddr;
	sport = tcp->source;
	dport = tcp->dest;
	seq = tcp->seq;
	ack = tcp->ack_seq;
	if (kind == REPLY_ACK)
		tsecr = their_tsval(tcp, data_end);

	if (set_len(ctx, ETH_LEN + IP4_LEN + tcp_len))
		return reply_failed();
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	ip = data + ETH_LEN;
	tcp = data + ETH_LEN + IP4_LEN;
	if ((void *)tcp + tcp_len > data_end)
		return reply_failed();

	__builtin_memcpy(eth->h_dest, mac + 6, 6);
	__builtin_memcpy(eth->h_source, mac, 6);

	*(__u8 *)ip = 0x45;
	ip->tos = 0;
	ip->tot_len = bpf_htons(IP4_LEN + tcp_len);
	ip->id = 0;
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->check = 0;
	ip->saddr = daddr;
	ip->daddr = saddr;
	ip->check = lg_csum_finish(lg_csum_words(0, (void *)ip, IP4_LEN / 2));

	write_reply_tcp(tcp, kind, dport, sport, seq, ack, tsecr);
	acc = lg_csum_add32(0, daddr);
	acc = lg_csum_add32(acc, saddr);
	acc = lg_csum_add16(acc, bpf_htons(IPPROTO_TCP));
	acc = lg_csum_add16(acc, bpf_htons(tcp_len));
	tcp->check = lg_csum_finish(sum_reply_tcp(tcp, kind, acc));
	return reply_sent(kind);
}

static __always_inline int rx4(struct xdp_md *ctx, void *data, void *data_end)
{
	struct iphdr *ip = data + ETH_LEN;
	struct tcphdr *tcp;
	const int words = synack_words();
	__u32 daddr, acc;
	__u16 dport;
	__u8 flags;

	if ((void *)(ip + 1) > data_end)
		return rx_pass();
	if (ip->protocol != IPPROTO_TCP || ip->saddr != cfg_dst_addr)
		return rx_pass();
	daddr = bpf_ntohl(ip->daddr);
	if ((daddr & cfg_src_mask) != cfg_src_net)
		return rx_pass();
	/* Our SYNs carry no IP options; answers with some are not parsed further. */
	if (ip->ihl != 5)
		return rx_pass();
	tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > data_end)
		return rx_pass();
	if (tcp->source != cfg_dst_port)
		return rx_pass();

	flags = ((__u8 *)tcp)[13];
	if (flags & TCPF_RST) {
		count(LG_CNT_RST);
		return XDP_DROP;
	}
	if (flags & TCPF_SYN) {
		if ((flags & (TCPF_ACK | TCPF_FIN)) != TCPF_ACK)
			return rx_pass();
	} else if (flags & TCPF_ACK) {
		/* FIN, data or a pure ACK of a connection we do not keep: reset it. */
		return reply4(ctx, REPLY_RST);
	} else {
		return rx_pass();
	}

	/* A SYN-ACK from the target to one of our sources: validate. */
	if (tcp->doff != words / 2 || bpf_ntohs(ip->tot_len) != IP4_LEN + words * 2)
		return rx_invalid(LG_CNT_BAD_LEN);
	if (lg_csum_fold(lg_csum_words(0, (void *)ip, IP4_LEN / 2)) != 0xffff)
		return rx_invalid(LG_CNT_BAD_CSUM);
	acc = lg_csum_add32(0, ip->saddr);
	acc = lg_csum_add32(acc, ip->daddr);
	acc = lg_csum_add16(acc, bpf_htons(IPPROTO_TCP));
	acc = lg_csum_add16(acc, bpf_htons(words * 2));
	if (!sum_synack_tcp(tcp, data_end, &acc))
		return rx_invalid(LG_CNT_BAD_LEN);
	if (lg_csum_fold(acc) != 0xffff)
		return rx_invalid(LG_CNT_BAD_CSUM);
	dport = bpf_ntohs(tcp->dest);
	if (bpf_ntohl(tcp->ack_seq) != lg_isn(daddr, dport, cfg_key0, cfg_key1) + 1)
		return rx_invalid(LG_CNT_BAD_ACK);
	if (!opts_ok((__u8 *)(tcp + 1), data_end))
		return rx_invalid(LG_CNT_BAD_OPTS);
	count(LG_CNT_VALID);

	if (cfg_answer && (dport & LG_PORT_MARK))
		return reply4(ctx, REPLY_ACK);
	return XDP_DROP;
}

/* A segment from the target becomes, in place, our reply (IPv6). */
static __always_inline int reply6(struct xdp_md *ctx, enum reply kind)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + ETH_LEN;
	struct tcphdr *tcp = data + ETH_LEN + IP6_LEN;
	const int tcp_len = reply_tcp_len(kind);
	struct in6_addr saddr, daddr;
	__be32 seq, ack, tsecr = 0;
	__be16 sport, dport;
	__u8 mac[12];
	__u32 acc;

	if ((void *)(tcp + 1) > data_end)
		return reply_failed();
	__builtin_memcpy(mac, eth, sizeof(mac));
	__builtin_memcpy(&saddr, &ip6->saddr, sizeof(saddr));
	__builtin_memcpy(&daddr, &ip6->daddr, sizeof(daddr));
	sport = tcp->source;
	dport = tcp->dest;
	seq = tcp->seq;
	ack = tcp->ack_seq;
	if (kind == REPLY_ACK)
		tsecr = their_tsval(tcp, data_end);

	if (set_len(ctx, ETH_LEN + IP6_LEN + tcp_len))
		return reply_failed();
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	ip6 = data + ETH_LEN;
	tcp = data + ETH_LEN + IP6_LEN;
	if ((void *)tcp + tcp_len > data_end)
		return reply_failed();

	__builtin_memcpy(eth->h_dest, mac + 6, 6);
	__builtin_memcpy(eth->h_source, mac, 6);

	*(__be32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(tcp_len);
	ip6->nexthdr = IPPROTO_TCP;
	ip6->hop_limit = 64;
	__builtin_memcpy(&ip6->saddr, &daddr, sizeof(daddr));
	__builtin_memcpy(&ip6->daddr, &saddr, sizeof(saddr));

	write_reply_tcp(tcp, kind, dport, sport, seq, ack, tsecr);
	acc = lg_csum_words(0, (void *)&ip6->saddr, 16);
	acc = lg_csum_add16(acc, bpf_htons(IPPROTO_TCP));
	acc = lg_csum_add16(acc, bpf_htons(tcp_len));
	tcp->check = lg_csum_finish(sum_reply_tcp(tcp, kind, acc));
	return reply_sent(kind);
}

static __always_inline int rx6(struct xdp_md *ctx, void *data, void *data_end)
{
	struct ipv6hdr *ip6 = data + ETH_LEN;
	struct tcphdr *tcp = data + ETH_LEN + IP6_LEN;
	const int words = synack_words();
	__u32 lo, fold, acc;
	__u16 dport;
	__u8 flags;

	if ((void *)(tcp + 1) > data_end)
		return rx_pass();
	if (ip6->nexthdr != IPPROTO_TCP || tcp->source != cfg_dst_port)
		return rx_pass();
	if (ip6->saddr.in6_u.u6_addr32[0] != cfg_dst_addr6[0] ||
	    ip6->saddr.in6_u.u6_addr32[1] != cfg_dst_addr6[1] ||
	    ip6->saddr.in6_u.u6_addr32[2] != cfg_dst_addr6[2] ||
	    ip6->saddr.in6_u.u6_addr32[3] != cfg_dst_addr6[3])
		return rx_pass();
	lo = bpf_ntohl(ip6->daddr.in6_u.u6_addr32[3]);
	if (ip6->daddr.in6_u.u6_addr32[0] != cfg_src6_hi[0] ||
	    ip6->daddr.in6_u.u6_addr32[1] != cfg_src6_hi[1] ||
	    ip6->daddr.in6_u.u6_addr32[2] != cfg_src6_hi[2] ||
	    (lo & cfg_src6_lo_mask) != cfg_src6_lo_net)
		return rx_pass();

	flags = ((__u8 *)tcp)[13];
	if (flags & TCPF_RST) {
		count(LG_CNT_RST);
		return XDP_DROP;
	}
	if (flags & TCPF_SYN) {
		if ((flags & (TCPF_ACK | TCPF_FIN)) != TCPF_ACK)
			return rx_pass();
	} else if (flags & TCPF_ACK) {
		return reply6(ctx, REPLY_RST);
	} else {
		return rx_pass();
	}

	if (tcp->doff != words / 2 || bpf_ntohs(ip6->payload_len) != words * 2)
		return rx_invalid(LG_CNT_BAD_LEN);
	acc = lg_csum_words(0, (void *)&ip6->saddr, 16);
	acc = lg_csum_add16(acc, bpf_htons(IPPROTO_TCP));
	acc = lg_csum_add16(acc, bpf_htons(words * 2));
	if (!sum_synack_tcp(tcp, data_end, &acc))
		return rx_invalid(LG_CNT_BAD_LEN);
	if (lg_csum_fold(acc) != 0xffff)
		return rx_invalid(LG_CNT_BAD_CSUM);
	dport = bpf_ntohs(tcp->dest);
	fold = bpf_ntohl(cfg_src6_hi[0] ^ cfg_src6_hi[1] ^ cfg_src6_hi[2]) ^ lo;
	if (bpf_ntohl(tcp->ack_seq) != lg_isn(fold, dport, cfg_key0, cfg_key1) + 1)
		return rx_invalid(LG_CNT_BAD_ACK);
	if (!opts_ok((__u8 *)(tcp + 1), data_end))
		return rx_invalid(LG_CNT_BAD_OPTS);
	count(LG_CNT_VALID);

	if (cfg_answer && (dport & LG_PORT_MARK))
		return reply6(ctx, REPLY_ACK);
	return XDP_DROP;
}

static __always_inline int rx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return rx_pass();
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return rx4(ctx, data, data_end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return rx6(ctx, data, data_end);
	return rx_pass();
}

/*
 * The one program of the client side: attached to the interface, where it receives (rx), and
 * run by BPF_PROG_RUN in live-frames mode with a tag in the frame's metadata, where it
 * generates (gen). One program for both because BPF_PROG_RUN of an XDP program that is not
 * attached anywhere adds it to the kernel's XDP dispatcher and removes it again, and each of
 * those waits for an RCU grace period (bpf_dispatcher_change_prog -> synchronize_rcu):
 * milliseconds per call, which capped a sending thread at a few hundred thousand frames per
 * second. An attached program is already in the dispatcher, so a run only takes a reference.
 *
 * A received frame has no metadata (data_meta == data); a generator run carries 4 bytes of it.
 */
SEC("xdp")
int lg_xdp(struct xdp_md *ctx)
{
	void *meta = (void *)(long)ctx->data_meta;
	void *data = (void *)(long)ctx->data;

	if (meta + sizeof(__u32) <= data) {
		__u32 tag = *(__u32 *)meta;
		int kind = tag == LG_META_GEN_FLOOD ? 0 : tag == LG_META_GEN_COMPLETE ? 1 : -1;

		if (kind >= 0) {
			/*
			 * The tag must not leave with the frame: a veth carries an XDP frame's
			 * metadata to the other end, and a target that answers in XDP (XDP_TX, as
			 * synline's flood path or the kernel's XDP SYN proxy do) sends it back with
			 * the reply, which this program would then take for a frame to generate.
			 */
			if (bpf_xdp_adjust_meta(ctx, (int)(data - meta)))
				return XDP_ABORTED;
			return gen(ctx, kind);
		}
	}
	return rx(ctx);
}

SEC("xdp")
int lg_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int lg_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
