/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by the XDP program and its loader (crates/synline-xdp/src/xdp_prog.rs mirrors
 * them; keep both in step).
 */
#ifndef SYNLINE_H
#define SYNLINE_H

#include <linux/types.h>

#define SYNLINE_FAMILY_V4 4
#define SYNLINE_FAMILY_V6 6

/*
 * Key of the `listeners` hash map: 20 bytes, no implicit padding.
 *
 *   0      1      2             4                                  20
 *   +------+------+-------------+----------------------------------+
 *   |family| pad  | port (be16) | addr: 16 bytes, network order    |
 *   +------+------+-------------+----------------------------------+
 *
 * family: 4 or 6. pad: always 0. port: the listener's TCP port, network byte order.
 * addr: IPv6 address as on the wire; an IPv4 address in addr[0..4], addr[4..16] zero.
 * An all-zero addr is the wildcard for that family and port (0.0.0.0:P or [::]:P);
 * it does not match the other family.
 */
struct listener_key {
	__u8 family;
	__u8 pad;
	__be16 port;
	__u8 addr[16];
};

/* Value of the `listeners` map: reserved for the loader, 0 today. */
struct listener_val {
	__u32 reserved;
};

/*
 * Slots of the per-CPU `counters` array (u64 each). Every frame lands in exactly one of
 * REDIRECTED or PASSED; each PASSED frame also lands in exactly one reason slot after it,
 * so PASSED == NO_SOCKET + NOT_LISTENER + NOT_TCP + NOT_IP + IPV6_EXT_HDR + IP_FRAGMENT
 * + MALFORMED.
 */
enum synline_counter {
	/* Addressed to a listener and handed to the queue's AF_XDP socket. */
	SYNLINE_CNT_REDIRECTED = 0,
	/* Given to the kernel stack (XDP_PASS), whatever the reason. */
	SYNLINE_CNT_PASSED = 1,
	/* Addressed to a listener, but xsks_map has no socket for this rx queue. */
	SYNLINE_CNT_NO_SOCKET = 2,
	/* TCP, but no listener (exact or wildcard) for its destination. */
	SYNLINE_CNT_NOT_LISTENER = 3,
	/* IPv4/IPv6 carrying something other than TCP (ICMP, UDP...). */
	SYNLINE_CNT_NOT_TCP = 4,
	/* Not IP: ARP, LLDP, a second VLAN tag... */
	SYNLINE_CNT_NOT_IP = 5,
	/* IPv6 whose next header is an extension header: not parsed here, so not matched. */
	SYNLINE_CNT_IPV6_EXT_HDR = 6,
	/* IPv4 fragment (MF set or offset != 0): the engine does not reassemble. */
	SYNLINE_CNT_IP_FRAGMENT = 7,
	/* Truncated or with an impossible header field (version, IHL, data offset). */
	SYNLINE_CNT_MALFORMED = 8,
	SYNLINE_CNT_MAX = 9,
};

#endif /* SYNLINE_H */
