// SPDX-License-Identifier: GPL-2.0
/*
 * synline_xdp: hands to the rx queue's AF_XDP socket exactly the TCP segments addressed to a
 * configured listener, and passes everything else (ARP, ICMP, other ports, what it cannot
 * parse) to the kernel stack unchanged. Checksums are not verified here: the engine does that
 * (D-1) and counts what fails.
 *
 * With the kernel handoff on (the daemon's default), the engine answers every SYN and
 * validates every third ACK, and the connections it accepts become sockets of the
 * application's own kernel listener. Then the segments of a connection the kernel owns go to
 * the kernel untouched:
 *
 *   SYN (no ACK) to a listener ........................ AF_XDP (the engine decides)
 *   other segment, kernel socket (established, TIME-WAIT)  XDP_PASS   (KERNEL_FLOW)
 *   other segment, flow in `handed` .................... XDP_PASS   (KERNEL_FLOW; TC below)
 *   other segment, else (third ACK, cookie ACK, RST) ... AF_XDP (the engine decides)
 *
 * synline_tc (TC ingress of the NIC) turns a segment of a handed-over flow into the kernel's
 * request with bpf_sk_assign_tcp_reqsk() (6.9+), and the kernel makes the child from it as
 * from a SYN cookie, without sending anything. The engine re-injects the validated third ACK
 * through a TAP device whose ingress program (synline_tap) redirects it into the NIC's
 * ingress, so it arrives as if from the wire (rp_filter, iif) and meets synline_tc there.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "synline.h"
#include "maps.h"
#include "parsing.h"
#include "cookie.h"

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	/* Per-CPU slot: no other writer, a plain increment is exact. */
	if (v)
		*v += 1;
}

static __always_inline int pass(__u32 reason)
{
	count(SYNLINE_CNT_PASSED);
	count(reason);
	return XDP_PASS;
}

/*
 * Whether the one listener of a port and family takes a segment to `key` (of that family):
 * its own address, or any address when it is the wildcard (all zero). Two 8-byte compares.
 */
static __always_inline int single_matches(struct port_entry *pe, struct listener_key *key)
{
	__u64 a0, a1, l0, l1;

	__builtin_memcpy(&l0, &pe->key.addr[0], 8);
	__builtin_memcpy(&l1, &pe->key.addr[8], 8);
	if ((l0 | l1) == 0)
		return 1;
	__builtin_memcpy(&a0, &key->addr[0], 8);
	__builtin_memcpy(&a1, &key->addr[8], 8);
	return a0 == l0 && a1 == l1;
}

static __always_inline int parse(void *data, void *data_end, struct seg_info *si)
{
	__be16 proto;
	int off = parse_eth(data, data_end, &proto);

	if (off < 0)
		return PARSE_MALFORMED;
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(data, data_end, off, si);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(data, data_end, off, si);
	return PARSE_NOT_IP;
}

/*
 * bpf_skc_lookup_tcp() for the segment's tuple; the size must be a constant the verifier
 * can see, hence one call per family (ctx is an xdp_md or an __sk_buff).
 */
#define sk_lookup(ctx, si)                                                              \
	((si)->key.family == SYNLINE_FAMILY_V4                                           \
		 ? bpf_skc_lookup_tcp(ctx, &(si)->tuple, sizeof((si)->tuple.ipv4),        \
				      BPF_F_CURRENT_NETNS, 0)                            \
		 : bpf_skc_lookup_tcp(ctx, &(si)->tuple, sizeof((si)->tuple.ipv6),        \
				      BPF_F_CURRENT_NETNS, 0))

/* Written by the loader: the kernel handoff is on, and the NIC whose ingress the TAP's frames
 * are sent into. */
__u32 handoff_on;
__u32 nic_ifindex;
/* The last error bpf_sk_assign_tcp_reqsk() returned (negative errno), for `synline stats`. */
__s64 last_assign_errno;

static __always_inline void flow_key_of(struct seg_info *si, struct flow_key *fk)
{
	fk->family = si->key.family;
	if (si->key.family == SYNLINE_FAMILY_V4) {
		fk->sport = si->tuple.ipv4.sport;
		fk->dport = si->tuple.ipv4.dport;
		__builtin_memcpy(fk->saddr, &si->tuple.ipv4.saddr, 4);
		__builtin_memcpy(fk->daddr, &si->tuple.ipv4.daddr, 4);
	} else {
		fk->sport = si->tuple.ipv6.sport;
		fk->dport = si->tuple.ipv6.dport;
		__builtin_memcpy(fk->saddr, si->tuple.ipv6.saddr, 16);
		__builtin_memcpy(fk->daddr, si->tuple.ipv6.daddr, 16);
	}
}

/*
 * Whether the kernel owns this segment's connection: it has a full socket for it (ESTABLISHED
 * and later; the lookup returns the listener when there is none), or the engine handed this
 * very handshake over (the segment is at the IRS and acks the ISS the entry keeps) and TC
 * will finish it.
 *
 * A TIME-WAIT socket does not count: a new SYN on its 4-tuple went to the engine (as Linux
 * lets a SYN reopen a TIME-WAIT tuple), so the ACK that follows is the engine's too; a late
 * segment of the old connection then meets the engine's listener (an RST where Linux's
 * TIME-WAIT would ACK). A stale `handed` entry (a flow reset before TC saw its socket) does
 * not capture a later handshake on the same tuple either: its ISS differs.
 */
static __always_inline int kernel_owns(struct xdp_md *ctx, struct seg_info *si)
{
	struct handed_val *hv;
	struct flow_key fk;
	struct bpf_sock *sk;

	sk = sk_lookup(ctx, si);
	if (sk) {
		int state = sk->state;

		bpf_sk_release(sk);
		if (state != BPF_TCP_LISTEN && state != BPF_TCP_TIME_WAIT)
			return 1;
	}
	__builtin_memset(&fk, 0, sizeof(fk));
	flow_key_of(si, &fk);
	hv = bpf_map_lookup_elem(&handed, &fk);
	/*
	 * Only the handshake's next segment goes straight to TC (it can make the request: the
	 * peer's retry after a dropped child). A later one, before the kernel has the socket, goes
	 * to the engine, which hands it back through the same TAP queue as the flow's re-injected
	 * ACK, behind it: in order, nothing dropped.
	 */
	return hv && bpf_ntohl(si->ack) == hv->iss + 1 && bpf_ntohl(si->seq) == hv->irs + 1;
}

/*
 * The flood path (cookie.h): rewrites the SYN at l3off into the engine's cookie SYN-ACK and
 * returns XDP_TX, or returns -1 without touching the frame when the engine must see it.
 */
static __always_inline int cookie_answer(struct xdp_md *ctx, const struct listener_val *lv,
					 int l3off, int v6)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct cookie_scratch *w;
	struct cookie_secrets *ks;
	struct opt_ctx oc;
	__u32 zero = 0;
	__u8 *ipb, *out;
	struct syn_in *sp;
	__u32 slot, tcplen, hdrlen, optlen, iplen, idx, iss, tsval = 0, ts_off = 0, label = 0;
	__u32 outopt, tcp_out, i;
	__u64 now, minute, sum;
	__u16 mss, window, csum;
	int has_ts, ws, sack, ecn, old_len, new_len;
	__u8 *t;

	w = bpf_map_lookup_elem(&cookie_scratch, &zero);
	if (!w)
		return -1;
	/* What is read before it is written: the option results, and the reply's bytes that no
	 * step below writes (the IPv4 TOS and ID, the TCP checksum and urgent pointer). The rest
	 * is loaded from the frame or written whole. */
	sp = &w->s;
	sp->mss = 0;
	sp->has_ws = 0;
	sp->ws = 0;
	sp->sack = 0;
	sp->has_ts = 0;
	sp->tsval = 0;
	sp->opt_done = 0;
	__builtin_memset(w->out, 0, sizeof(w->out));
	ipb = w->ipb;
	out = w->out;
	slot = cookie_slot & 1;
	ks = &cookie_keys[slot];
	if (!ks->ready)
		return -1;
	/* D-1: a unicast destination MAC (PACKET_HOST). */
	if (data + 14 > data_end || (((__u8 *)data)[0] & 1))
		return -1;

	iplen = v6 ? 40 : 20;
	if (v6) {
		if (bpf_xdp_load_bytes(ctx, l3off, ipb, 40))
			return -1;
		tcplen = ((__u32)ipb[4] << 8) | ipb[5];
		sp->ip_ecn = ((ipb[1] >> 4) & 3);
		/* S-1, V-2: a multicast or unspecified destination; a v4-mapped source. */
		if (ipb[24] == 0xff)
			return -1;
		sum = 0;
		for (i = 0; i < 16; i++)
			sum |= ipb[24 + i];
		if (!sum)
			return -1;
		sum = 0;
		for (i = 0; i < 10; i++)
			sum |= ipb[8 + i];
		if (!sum && ipb[18] == 0xff && ipb[19] == 0xff)
			return -1;
	} else {
		if (bpf_xdp_load_bytes(ctx, l3off, ipb, 20))
			return -1;
		if (ipb[0] != 0x45) /* options: the engine's */
			return -1;
		if (csum_fold(csum_words(ipb, 20, 20)) != 0xffff)
			return -1;
		tcplen = (((__u32)ipb[2] << 8) | ipb[3]) - 20;
		sp->ip_ecn = ipb[1] & 3;
		if ((ipb[16] >= 224 && ipb[16] < 240) ||
		    (ipb[16] == 255 && ipb[17] == 255 && ipb[18] == 255 && ipb[19] == 255) ||
		    !(ipb[16] | ipb[17] | ipb[18] | ipb[19]))
			return -1;
	}
	/* The whole segment in one load: a SYN with data, or a length that disagrees with the
	 * data offset, is the engine's. */
	if (tcplen < 20 || tcplen > sizeof(sp->tcp) || (tcplen & 3))
		return -1;
	{
		__u32 n = tcplen;

		/* The verifier must see a bound on the very register the helper gets: after the
		 * barrier clang cannot drop the mask as redundant (n is at most 60, checked
		 * above, so the mask changes nothing). */
		asm volatile("" : "+r"(n));
		n &= 0x3f;
		if (n < 20)
			return -1;
		if (bpf_xdp_load_bytes(ctx, l3off + iplen, sp->tcp, n))
			return -1;
	}
	hdrlen = (sp->tcp[12] >> 4) * 4;
	if (hdrlen != tcplen)
		return -1;
	optlen = hdrlen - 20;
	sp->optlen = optlen;
	sp->flags = sp->tcp[13];
	if ((sp->flags & 0x17) != TCP_FLAG_SYN)
		return -1;
	/* D-1: the TCP checksum, pseudo header included (words as the CPU loads them: see
	 * csum_words). */
	sum = (v6 ? csum_words(ipb + 8, 32, 32) : csum_words(ipb + 12, 8, 8)) +
	      bpf_htons(tcplen) + bpf_htons(IPPROTO_TCP) + csum_words(sp->tcp, hdrlen, 60);
	if (csum_fold(sum) != 0xffff)
		return -1;
	sp->seq = ((__u32)sp->tcp[4] << 24) | ((__u32)sp->tcp[5] << 16) | ((__u32)sp->tcp[6] << 8) |
		sp->tcp[7];
	if (optlen == 20 && sp->tcp[20] == 2 && sp->tcp[21] == 4 && sp->tcp[24] == 4 &&
	    sp->tcp[25] == 2 && sp->tcp[26] == 8 && sp->tcp[27] == 10 && sp->tcp[36] == 1 &&
	    sp->tcp[37] == 3 && sp->tcp[38] == 3) {
		/* Linux's SYN (MSS, SACK-permitted, TS, NOP, WS): what S-7 makes of it, without
		 * the general walk. */
		sp->mss = ((__u16)sp->tcp[22] << 8) | sp->tcp[23];
		sp->sack = 1;
		sp->has_ts = 1;
		sp->tsval = ((__u32)sp->tcp[28] << 24) | ((__u32)sp->tcp[29] << 16) |
			    ((__u32)sp->tcp[30] << 8) | sp->tcp[31];
		sp->has_ws = 1;
		sp->ws = sp->tcp[39] > MAX_WSCALE ? MAX_WSCALE : sp->tcp[39];
	} else {
		oc.s = sp;
		oc.off = 0;
		bpf_loop(OPT_STEPS, opt_step, &oc, 0);
		if (!sp->opt_done)
			return -1;
	}

	/* S-7 with the settings (conn_request.rs SynOptions::of), then K-3. */
	mss = sp->mss ? sp->mss : (v6 ? 1220 : 536);
	if (lv->maxseg && mss > lv->maxseg)
		mss = lv->maxseg;
	has_ts = sp->has_ts && lv->timestamps;
	ws = sp->has_ws && lv->wscale_ok;
	sack = sp->sack && lv->sack;
	ecn = (sp->flags & 0xc0) == 0xc0 && sp->ip_ecn == 0 && lv->ecn;
	if (!has_ts) {
		ws = 0;
		sack = 0;
		ecn = 0;
	}
	idx = mss_index(mss, v6);

	/* flow_key.hash_input(): remote, local, remote port, local port. */
	if (v6) {
		__builtin_memcpy(sp->hash_in, ipb + 8, 16);
		__builtin_memcpy(sp->hash_in + 16, ipb + 24, 16);
		__builtin_memcpy(sp->hash_in + 32, sp->tcp, 4);
	} else {
		__builtin_memcpy(sp->hash_in, ipb + 12, 8);
		__builtin_memcpy(sp->hash_in + 8, sp->tcp, 4);
	}
	if (has_ts && lv->timestamps == 1)
		ts_off = v6 ? siphash24(ks->ts_off, sp->hash_in, 32) : siphash24(ks->ts_off, sp->hash_in, 8);
	now = cookie_test_now_ns ? cookie_test_now_ns : bpf_ktime_get_ns();
	minute = (now + ks->clock_offset_ns) / 60000000000ULL;
	/* K-1: H0 over the tuple and 0, H1 over the tuple and the count (big-endian). */
	if (v6) {
		put32(sp->hash_in + 36, 0);
		iss = siphash24(ks->cookie[0], sp->hash_in, 40);
		put32(sp->hash_in + 36, minute);
		iss += sp->seq + ((__u32)minute << COOKIEBITS) +
		       (((__u32)siphash24(ks->cookie[1], sp->hash_in, 40) + idx) & COOKIEMASK);
	} else {
		put32(sp->hash_in + 12, 0);
		iss = siphash24(ks->cookie[0], sp->hash_in, 16);
		put32(sp->hash_in + 12, minute);
		iss += sp->seq + ((__u32)minute << COOKIEBITS) +
		       (((__u32)siphash24(ks->cookie[1], sp->hash_in, 16) + idx) & COOKIEMASK);
	}
	if (has_ts) {
		/* K-3: the ms clock with its low 6 bits replaced by the options. */
		__u64 ts_now = now / 1000000;
		__u64 ts;
		__u32 o = ws ? (sp->ws & TS_OPT_WSCALE_MASK) : TS_OPT_WSCALE_MASK;

		if (sack)
			o |= TS_OPT_SACK;
		if (ecn)
			o |= TS_OPT_ECN;
		ts = ((ts_now >> TSBITS) << TSBITS) | o;
		if (ts > ts_now)
			ts -= 1 << TSBITS;
		tsval = (__u32)ts + ts_off;
	}
	if (v6) {
		/* V-5: the flow label of attempt 0. */
		sp->hash_in[36] = 0;
		label = (__u32)siphash24(ks->flow_label, sp->hash_in, 37) & 0xfffff;
		if (!label)
			label = 1;
	}

	/* X-1..X-5: the reply, IP header, TCP header and options (X-4 order). */
	outopt = 4 + (has_ts ? 12 : (sack ? 4 : 0)) + (ws ? 4 : 0);
	tcp_out = 20 + outopt;
	window = has_ts ? lv->wnd_ts : lv->wnd_nots;
	if (v6) {
		out[0] = 0x60 | (lv->tclass >> 4);
		out[1] = (lv->tclass << 4) | ((label >> 16) & 0x0f);
		out[2] = label >> 8;
		out[3] = label;
		put16(out + 4, tcp_out);
		out[6] = IPPROTO_TCP;
		out[7] = lv->ttl;
		__builtin_memcpy(out + 8, ipb + 24, 16);
		__builtin_memcpy(out + 24, ipb + 8, 16);
		t = out + 40;
	} else {
		out[0] = 0x45;
		put16(out + 2, 20 + tcp_out);
		put16(out + 6, 0x4000); /* DF, ID 0 */
		out[8] = lv->ttl;
		out[9] = IPPROTO_TCP;
		__builtin_memcpy(out + 12, ipb + 16, 4);
		__builtin_memcpy(out + 16, ipb + 12, 4);
		csum = ~csum_fold(csum_words(out, 20, 20));
		__builtin_memcpy(out + 10, &csum, 2);
		t = out + 20;
	}
	t[0] = sp->tcp[2];
	t[1] = sp->tcp[3];
	t[2] = sp->tcp[0];
	t[3] = sp->tcp[1];
	put32(t + 4, iss);
	put32(t + 8, sp->seq + 1);
	t[12] = (tcp_out / 4) << 4;
	t[13] = ecn ? 0x52 : 0x12; /* SYN ACK (ECE) */
	put16(t + 14, window);
	t[20] = 2;
	t[21] = 4;
	put16(t + 22, lv->adv_mss);
	i = 24;
	if (has_ts) {
		t[24] = sack ? 4 : 1;
		t[25] = sack ? 2 : 1;
		t[26] = 8;
		t[27] = 10;
		put32(t + 28, tsval);
		put32(t + 32, sp->tsval);
		i = 36;
	} else if (sack) {
		t[24] = 1;
		t[25] = 1;
		t[26] = 4;
		t[27] = 2;
		i = 28;
	}
	if (ws) {
		if (i == 24) {
			t[24] = 1; t[25] = 3; t[26] = 3; t[27] = lv->rcv_wscale;
		} else if (i == 28) {
			t[28] = 1; t[29] = 3; t[30] = 3; t[31] = lv->rcv_wscale;
		} else {
			t[36] = 1; t[37] = 3; t[38] = 3; t[39] = lv->rcv_wscale;
		}
	}
	sum = (v6 ? csum_words(out + 8, 32, 32) : csum_words(out + 12, 8, 8)) +
	      bpf_htons(tcp_out) + bpf_htons(IPPROTO_TCP) + csum_words(t, tcp_out, 40);
	csum = ~csum_fold(sum);
	__builtin_memcpy(t + 16, &csum, 2);

	/* The frame becomes the reply: resized, rewritten, MACs swapped (a VLAN tag stays). */
	old_len = data_end - data;
	new_len = l3off + iplen + tcp_out;
	if (new_len != old_len && bpf_xdp_adjust_tail(ctx, new_len - old_len))
		return -1;
	if (iplen + tcp_out > sizeof(w->out)) {
		count(SYNLINE_CNT_COOKIE_FAILED);
		return XDP_DROP;
	}
	if (bpf_xdp_store_bytes(ctx, l3off, out, (iplen + tcp_out) & 0x7f)) {
		count(SYNLINE_CNT_COOKIE_FAILED);
		return XDP_DROP;
	}
	data = (void *)(long)ctx->data;
	/* The reply carries no metadata of the SYN's (a veth hands an XDP frame's metadata to
	 * the other end with it). */
	if ((void *)(long)ctx->data_meta < data &&
	    bpf_xdp_adjust_meta(ctx, (int)(data - (void *)(long)ctx->data_meta))) {
		count(SYNLINE_CNT_COOKIE_FAILED);
		return XDP_DROP;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + 12 > data_end) {
		count(SYNLINE_CNT_COOKIE_FAILED);
		return XDP_DROP;
	}
	{
		__u8 mac[6];

		__builtin_memcpy(mac, data, 6);
		__builtin_memcpy(data, data + 6, 6);
		__builtin_memcpy(data + 6, mac, 6);
	}
	count(SYNLINE_CNT_COOKIE_SYNACK);
	if (lv->mode1)
		count(SYNLINE_CNT_COOKIE_REQQFULL);
	return XDP_TX;
}

SEC("xdp")
int synline_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct listener_val *lv;
	struct seg_info si;
	struct port_entry *pe;
	__u32 queue, port;
	__u8 kinds;
	int ret;

	__builtin_memset(&si, 0, sizeof(si));
	ret = parse(data, data_end, &si);
	switch (ret) {
	case PARSE_TCP:
		break;
	case PARSE_NOT_IP:
		return pass(SYNLINE_CNT_NOT_IP);
	case PARSE_NOT_TCP:
		return pass(SYNLINE_CNT_NOT_TCP);
	case PARSE_IPV6_EXT_HDR:
		return pass(SYNLINE_CNT_IPV6_EXT_HDR);
	case PARSE_IP_FRAGMENT:
		return pass(SYNLINE_CNT_IP_FRAGMENT);
	default:
		return pass(SYNLINE_CNT_MALFORMED);
	}

	/*
	 * The port's listeners of the family (listen_ports, maps.h): the only one, taken without
	 * a hash lookup when the address matches it; else the lookups that can hit, the exact
	 * address before the wildcard (all-zero address), each only if such a listener exists.
	 */
	port = bpf_ntohs(si.key.port);
	if (si.key.family == SYNLINE_FAMILY_V6)
		port += SYNLINE_PORTS_V6;
	pe = bpf_map_lookup_elem(&listen_ports, &port);
	if (!pe)
		return pass(SYNLINE_CNT_NOT_LISTENER);
	lv = NULL;
	if (pe->single) {
		/* The port's only listener of the family: it matches or nothing does. The family
		 * check also refuses an entry caught half rewritten with its key zeroed (maps.h). */
		if (pe->key.family == si.key.family && single_matches(pe, &si.key))
			lv = &pe->val;
	} else {
		kinds = pe->kinds;
		if (kinds & SYNLINE_PORT_EXACT)
			lv = bpf_map_lookup_elem(&listeners, &si.key);
		if (!lv && (kinds & SYNLINE_PORT_WILD)) {
			__builtin_memset(si.key.addr, 0, sizeof(si.key.addr));
			lv = bpf_map_lookup_elem(&listeners, &si.key);
		}
	}
	if (!lv)
		return pass(SYNLINE_CNT_NOT_LISTENER);

	/* The flood path: in cookie mode a plain SYN is answered here (cookie.h). */
	/* Not on a queue without a socket: the engine would not see the cookie's ACK there
	 * (NO_SOCKET: the kernel answers that queue's SYNs itself). */
	queue = ctx->rx_queue_index;
	if (lv->cookie && (si.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST | TCP_FLAG_FIN)) ==
				  TCP_FLAG_SYN &&
	    (cookie_test_no_socket || bpf_map_lookup_elem(&xsks_map, &queue))) {
		int l3off = (((struct ethhdr *)data)->h_proto == bpf_htons(ETH_P_8021Q)) ? 18 : 14;

		ret = cookie_answer(ctx, lv, l3off, si.key.family == SYNLINE_FAMILY_V6);
		if (ret >= 0)
			return ret;
		count(SYNLINE_CNT_COOKIE_TO_ENGINE);
	}

	/* A new SYN always goes to the engine (L-2, section 4); anything else may be the kernel's. */
	if (handoff_on && (si.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN &&
	    kernel_owns(ctx, &si))
		return pass(SYNLINE_CNT_KERNEL_FLOW);

	/*
	 * The low bits of flags are the action when xsks_map has no socket at rx_queue_index:
	 * the segment then goes to the kernel, which is wrong for a listener port but loud in
	 * the counters (NO_SOCKET) rather than silent.
	 */
	ret = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	if (ret == XDP_REDIRECT)
		count(SYNLINE_CNT_REDIRECTED);
	else
		pass(SYNLINE_CNT_NO_SOCKET);
	return ret;
}

/*
 * The kfunc (net/core/filter.c, Linux 6.9+): makes `skb` carry a request sock of listener
 * `sk` built from `attrs`; TCP then creates the child on its cookie path and queues it for
 * accept(). It takes the ISNs from the segment (ISS = ACK - 1, IRS = SEQ - 1) and checks
 * neither: the engine has validated the segment before its flow was put in `handed`.
 */
/* Opaque here: only the pointer is passed. A definition, not a forward declaration, so that
 * its BTF kind (STRUCT) matches the kernel's when libbpf checks the kfunc's prototype. */
struct sock {
	__u8 __opaque;
};
extern int bpf_sk_assign_tcp_reqsk(struct __sk_buff *skb, struct sock *sk,
				   struct bpf_tcp_req_attrs *attrs, int attrs__sz) __ksym __weak;

/* Weak: on a kernel without the kfunc the program still loads (the XDP side, and `synline
 * run --accept log`, need none of it); the address is then 0 and the call is dead code. */
#define ksym_exists(sym) (!!(sym))

/* skb->mark of frames synline_tap sends into the NIC's ingress ("synl"), cleared by synline_tc. */
#define SYNLINE_REINJECT_MARK 0x73796e6c

/*
 * TC ingress of the NIC: a segment of a flow in `handed` becomes the kernel's request.
 * Frames that are not ours go on to the next filter untouched (TC_ACT_UNSPEC); so does a
 * segment whose handoff fails (TC_ACT_OK), and the kernel, finding no socket for it, answers
 * with its own RST (P-1), as Linux alone would.
 */
SEC("tc")
int synline_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct bpf_tcp_req_attrs attrs;
	struct handed_val *hv;
	struct flow_key fk;
	struct seg_info si;
	struct bpf_sock *sk;
	struct tcp_sock *tp;
	int ret;

	int reinjected = skb->mark == SYNLINE_REINJECT_MARK;

	if (reinjected)
		skb->mark = 0;
	__builtin_memset(&si, 0, sizeof(si));
	if (parse(data, data_end, &si) != PARSE_TCP)
		return TC_ACT_UNSPEC;
	if (si.flags & (TCP_FLAG_SYN | TCP_FLAG_RST) || !(si.flags & TCP_FLAG_ACK))
		return TC_ACT_UNSPEC;
	__builtin_memset(&fk, 0, sizeof(fk));
	flow_key_of(&si, &fk);
	hv = bpf_map_lookup_elem(&handed, &fk);
	if (!hv) {
		/*
		 * A segment the engine passed back (a just-accepted flow's late segment) with no
		 * entry: either the kernel has the socket already (TC removed the entry), and it is
		 * the socket's; or the handoff has not reached the map yet (another worker made the
		 * child), and the kernel would reset it for want of a socket: dropped, resent.
		 */
		if (reinjected) {
			sk = sk_lookup(skb, &si);
			if (sk) {
				int listening = sk->state == BPF_TCP_LISTEN;

				bpf_sk_release(sk);
				if (!listening)
					return TC_ACT_UNSPEC;
			}
			count(SYNLINE_CNT_TC_HELD);
			return TC_ACT_SHOT;
		}
		return TC_ACT_UNSPEC;
	}
	__builtin_memcpy(&attrs, &hv->attrs, sizeof(attrs));

	sk = sk_lookup(skb, &si);
	if (!sk) {
		count(SYNLINE_CNT_TC_NO_LISTENER);
		return TC_ACT_OK;
	}
	if (sk->state != BPF_TCP_LISTEN) {
		/* The kernel made the child already: the handoff is done. */
		bpf_sk_release(sk);
		bpf_map_delete_elem(&handed, &fk);
		count(SYNLINE_CNT_TC_ESTABLISHED);
		return TC_ACT_OK;
	}
	/* The kfunc takes IRS = SEQ - 1 and ISS = ACK - 1 from this segment: only the handshake's
	 * next segment may make the request. A later one (the peer's second data segment, say)
	 * raced its flow's re-injected ACK here: the ACK makes the child, this one is resent. */
	if (bpf_ntohl(si.seq) != hv->irs + 1 || bpf_ntohl(si.ack) != hv->iss + 1) {
		bpf_sk_release(sk);
		count(SYNLINE_CNT_TC_HELD);
		return TC_ACT_SHOT;
	}
	tp = bpf_skc_to_tcp_sock(sk);
	if (!ksym_exists(bpf_sk_assign_tcp_reqsk)) {
		bpf_sk_release(sk);
		last_assign_errno = -95; /* EOPNOTSUPP: a kernel before 6.9 */
		count(SYNLINE_CNT_TC_ASSIGN_FAILED);
		return TC_ACT_OK;
	}
	if (!tp) {
		bpf_sk_release(sk);
		count(SYNLINE_CNT_TC_NO_LISTENER);
		return TC_ACT_OK;
	}
	ret = bpf_sk_assign_tcp_reqsk(skb, (struct sock *)tp, &attrs, sizeof(attrs));
	bpf_sk_release(sk);
	if (ret < 0) {
		last_assign_errno = ret;
		count(SYNLINE_CNT_TC_ASSIGN_FAILED);
		return TC_ACT_OK;
	}
	/*
	 * Success does not mean a child: TCP may still drop the segment (the accept queue is full,
	 * say). The entry stays, so the peer's next segment, which XDP passes because of it, tries
	 * again here.
	 */
	count(SYNLINE_CNT_TC_ASSIGNED);
	return TC_ACT_OK;
}

/* TC ingress of the TAP: a frame the engine re-injects goes on into the NIC's ingress. */
SEC("tc")
int synline_tap(struct __sk_buff *skb)
{
	if (!nic_ifindex)
		return TC_ACT_SHOT;
	skb->mark = SYNLINE_REINJECT_MARK;
	count(SYNLINE_CNT_TC_REINJECTED);
	return bpf_redirect(nic_ifindex, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
