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

SEC("xdp")
int synline_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct seg_info si;
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

	/* Exact address first, then the wildcard (all-zero address) of the same family. */
	if (!bpf_map_lookup_elem(&listeners, &si.key)) {
		__builtin_memset(si.key.addr, 0, sizeof(si.key.addr));
		if (!bpf_map_lookup_elem(&listeners, &si.key))
			return pass(SYNLINE_CNT_NOT_LISTENER);
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
