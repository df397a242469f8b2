// SPDX-License-Identifier: GPL-2.0
/*
 * synline_xdp: hands to the rx queue's AF_XDP socket exactly the TCP segments addressed to a
 * configured listener, and passes everything else (ARP, ICMP, other ports, what it cannot
 * parse) to the kernel stack unchanged. Checksums are not verified here: the engine does that
 * (D-1) and counts what fails.
 */
#include <linux/bpf.h>
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

static __always_inline int parse(void *data, void *data_end, struct listener_key *key)
{
	__be16 proto;
	int off = parse_eth(data, data_end, &proto);

	if (off < 0)
		return PARSE_MALFORMED;
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(data, data_end, off, key);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(data, data_end, off, key);
	return PARSE_NOT_IP;
}

SEC("xdp")
int synline_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct listener_key key;
	int ret;

	__builtin_memset(&key, 0, sizeof(key));
	ret = parse(data, data_end, &key);
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
	if (!bpf_map_lookup_elem(&listeners, &key)) {
		__builtin_memset(key.addr, 0, sizeof(key.addr));
		if (!bpf_map_lookup_elem(&listeners, &key))
			return pass(SYNLINE_CNT_NOT_LISTENER);
	}

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

char LICENSE[] SEC("license") = "GPL";
