/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Header parsing for synline.bpf.c: each step checks the bytes it reads against data_end
 * before touching them, which is what the verifier wants to see.
 */
#ifndef SYNLINE_PARSING_H
#define SYNLINE_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "synline.h"

/* Not in the uapi headers (the kernel's is in include/linux/if_vlan.h). */
struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

#define IPV4_FRAG_MASK 0x3fff /* MF | fragment offset */

/*
 * What the programs need of a TCP segment: the listener key (its destination), the socket
 * tuple (for bpf_skc_lookup_tcp, as the kernel's lookup sees it: saddr/sport are the peer's),
 * and the TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN, bit 7 to bit 0).
 */
struct seg_info {
	struct listener_key key;
	struct bpf_sock_tuple tuple;
	__be32 seq;
	__be32 ack;
	__u8 flags;
};

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* The flags byte of a TCP header (byte 13), already bounds-checked by check_tcp. */
static __always_inline __u8 tcp_flags(struct tcphdr *tcp)
{
	return ((__u8 *)tcp)[13];
}

/* Outcome of parsing, before the listener lookup. */
enum parse_result {
	PARSE_TCP = 0, /* *key filled in for a TCP segment */
	PARSE_NOT_IP,
	PARSE_NOT_TCP,
	PARSE_IPV6_EXT_HDR,
	PARSE_IP_FRAGMENT,
	PARSE_MALFORMED,
};

/*
 * Ethernet, at most one 802.1Q tag: returns the offset of the L3 header and its EtherType
 * (network order) in *proto, or -1 if the frame is too short. A second tag (QinQ) or an
 * 802.1ad outer tag is returned as is and ends up "not IP".
 */
static __always_inline int parse_eth(void *data, void *data_end, __be16 *proto)
{
	struct ethhdr *eth = data;
	int off = sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return -1;
	*proto = eth->h_proto;
	if (*proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vh = data + off;

		if ((void *)(vh + 1) > data_end)
			return -1;
		*proto = vh->encap_proto;
		off += sizeof(*vh);
	}
	return off;
}

/* A complete basic TCP header at tcp, with a data offset of at least 5 words. */
static __always_inline int check_tcp(struct tcphdr *tcp, void *data_end)
{
	if ((void *)(tcp + 1) > data_end)
		return PARSE_MALFORMED;
	if (tcp->doff < 5)
		return PARSE_MALFORMED;
	return PARSE_TCP;
}

/* IPv4 with options (IHL 5..15); fills *si for a TCP segment. */
static __always_inline int parse_ipv4(void *data, void *data_end, int off, struct seg_info *si)
{
	struct listener_key *key = &si->key;
	struct iphdr *ip = data + off;
	struct tcphdr *tcp;
	__u32 ihl;
	int ret;

	if ((void *)(ip + 1) > data_end)
		return PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_MALFORMED;
	if (ip->protocol != IPPROTO_TCP)
		return PARSE_NOT_TCP;
	if (ip->frag_off & bpf_htons(IPV4_FRAG_MASK))
		return PARSE_IP_FRAGMENT;
	/* ihl is a 4-bit field: the verifier knows ihl * 4 <= 60, so tcp has a bounded offset. */
	ihl = ip->ihl;
	tcp = (void *)ip + ihl * 4;
	ret = check_tcp(tcp, data_end);
	if (ret != PARSE_TCP)
		return ret;
	key->family = SYNLINE_FAMILY_V4;
	key->port = tcp->dest;
	__builtin_memcpy(key->addr, &ip->daddr, sizeof(ip->daddr));
	si->tuple.ipv4.saddr = ip->saddr;
	si->tuple.ipv4.daddr = ip->daddr;
	si->tuple.ipv4.sport = tcp->source;
	si->tuple.ipv4.dport = tcp->dest;
	si->seq = tcp->seq;
	si->ack = tcp->ack_seq;
	si->flags = tcp_flags(tcp);
	return PARSE_TCP;
}

/*
 * IPv6 without extension headers: TCP must be the first next header. Any other value that
 * names an extension header is reported as such (its TCP port, if any, is beyond what we
 * parse).
 */
static __always_inline int parse_ipv6(void *data, void *data_end, int off, struct seg_info *si)
{
	struct listener_key *key = &si->key;
	struct ipv6hdr *ip6 = data + off;
	struct tcphdr *tcp;
	int ret;

	if ((void *)(ip6 + 1) > data_end)
		return PARSE_MALFORMED;
	if (ip6->version != 6)
		return PARSE_MALFORMED;
	switch (ip6->nexthdr) {
	case IPPROTO_TCP:
		break;
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_AH:
	case IPPROTO_DSTOPTS:
	case IPPROTO_MH:
	case 139: /* HIP, RFC 7401 */
	case 140: /* Shim6, RFC 5533 */
		return PARSE_IPV6_EXT_HDR;
	default:
		return PARSE_NOT_TCP;
	}
	tcp = (void *)(ip6 + 1);
	ret = check_tcp(tcp, data_end);
	if (ret != PARSE_TCP)
		return ret;
	key->family = SYNLINE_FAMILY_V6;
	key->port = tcp->dest;
	__builtin_memcpy(key->addr, &ip6->daddr, sizeof(ip6->daddr));
	__builtin_memcpy(si->tuple.ipv6.saddr, &ip6->saddr, sizeof(ip6->saddr));
	__builtin_memcpy(si->tuple.ipv6.daddr, &ip6->daddr, sizeof(ip6->daddr));
	si->tuple.ipv6.sport = tcp->source;
	si->tuple.ipv6.dport = tcp->dest;
	si->seq = tcp->seq;
	si->ack = tcp->ack_seq;
	si->flags = tcp_flags(tcp);
	return PARSE_TCP;
}

#endif /* SYNLINE_PARSING_H */
