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

/*
 * Value of the `listeners` map: what the flood path (cookie.h) needs to answer a SYN as the
 * engine would, written by the loader from the listener's settings. 20 bytes.
 *
 *   0        4     5     6     7     8     9     10    11    12      14       16      18     20
 *   +--------+-----+-----+-----+-----+-----+-----+-----+-----+-------+--------+-------+------+
 *   | cookie | ts  |sack | ws  | ecn |rcvws| ttl |tclas|mode1|maxseg |adv_mss |wnd_ts |wnd   |
 *   +--------+-----+-----+-----+-----+-----+-----+-----+-----+-------+--------+-------+------+
 *
 * cookie: 1 while the listener is in cookie mode (tcp_syncookies=2, or 1 with the SYN queue
 * over its bound, and the accept queue not full): SYNs are answered here; 0: the engine's.
 * The rest in host order: tcp_timestamps (0..2), tcp_sack, tcp_window_scaling, tcp_ecn != 0,
 * our window shift, IP_TTL, IPV6_TCLASS, tcp_syncookies == 1 (counts TCPReqQFullDoCookies),
 * TCP_MAXSEG (0: unset), the MSS we announce, the window without and with timestamps.
 */
struct listener_val {
	__u32 cookie;
	__u8 timestamps;
	__u8 sack;
	__u8 wscale_ok;
	__u8 ecn;
	__u8 rcv_wscale;
	__u8 ttl;
	__u8 tclass;
	__u8 mode1;
	__u16 maxseg;
	__u16 adv_mss;
	__u16 wnd_ts;
	__u16 wnd_nots;
};

/* Value of the `listen_ports` array (maps.h): the listeners of one port. 48 bytes. */
struct port_entry {
	__u8 kinds;
	__u8 single;
	__u16 pad;
	struct listener_key key;
	struct listener_val val;
	__u32 pad2;
};

/*
 * Key of the `handed` map: a connection the engine accepted and handed to the kernel's own
 * listener (the daemon's kernel handoff), seen as the peer's segments carry it. 40 bytes.
 *
 *   0      1      2            4            6      8             24            40
 *   +------+------+------------+------------+------+-------------+-------------+
 *   |family| pad  | sport (be) | dport (be) | pad  | saddr (16)  | daddr (16)  |
 *   +------+------+------------+------------+------+-------------+-------------+
 *
 * saddr/sport are the peer's, daddr/dport ours; an IPv4 address fills the first 4 bytes.
 */
struct flow_key {
	__u8 family;
	__u8 pad;
	__be16 sport;
	__be16 dport;
	__u16 pad2;
	__u8 saddr[16];
	__u8 daddr[16];
};

/*
 * What bpf_sk_assign_tcp_reqsk() builds the kernel's request from (the kernel's
 * `struct bpf_tcp_req_attrs`, 20 bytes; the kfunc wants exactly this size and reserved zero):
 * the options the engine negotiated, the peer's TSval (rcv_tsval) and our TSval it echoed
 * (rcv_tsecr: the kernel continues its timestamps from it).
 */
struct bpf_tcp_req_attrs {
	__u32 rcv_tsval;
	__u32 rcv_tsecr;
	__u16 mss;
	__u8 rcv_wscale;
	__u8 snd_wscale;
	__u8 ecn_ok;
	__u8 wscale_ok;
	__u8 sack_ok;
	__u8 tstamp_ok;
	__u8 usec_ts_ok;
	__u8 reserved[3];
};

/*
 * Value of the `handed` map: the attributes, when the daemon wrote them (its monotonic
 * seconds; not read by the programs, there for `bpftool map dump`), and the handshake's ISNs
 * (host order): only a segment at IRS + 1 acking ISS + 1 may make the kernel's request, since
 * the kfunc takes both ISNs from the segment it is given.
 */
struct handed_val {
	struct bpf_tcp_req_attrs attrs;
	__u32 created;
	__u32 irs;
	__u32 iss;
};

/*
 * Slots of the per-CPU `counters` array (u64 each). Every frame lands in exactly one of
 * REDIRECTED, PASSED or COOKIE_SYNACK (or, never seen, COOKIE_FAILED); each PASSED frame also
 * lands in exactly one reason slot after it,
 * so PASSED == NO_SOCKET + NOT_LISTENER + NOT_TCP + NOT_IP + IPV6_EXT_HDR + IP_FRAGMENT
 * + MALFORMED + KERNEL_FLOW. The TC_* slots count the TC programs of the kernel handoff.
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
	/* Kernel handoff on: a segment of a connection the kernel owns (an established or
	 * time-wait socket), or of one the engine handed over: the kernel's, untouched. */
	SYNLINE_CNT_KERNEL_FLOW = 9,
	/* TC, NIC ingress: bpf_sk_assign_tcp_reqsk() accepted a handed-over segment. */
	SYNLINE_CNT_TC_ASSIGNED = 10,
	/* TC: the kfunc refused (see `last_errno`); the segment goes on and the kernel resets. */
	SYNLINE_CNT_TC_ASSIGN_FAILED = 11,
	/* TC: a handed-over segment found no listener (the app is gone): the kernel resets. */
	SYNLINE_CNT_TC_NO_LISTENER = 12,
	/* TC: a handed-over flow has its socket now: entry removed, segment passed. */
	SYNLINE_CNT_TC_ESTABLISHED = 13,
	/* TC, tap ingress: a re-injected frame sent on into the NIC's ingress. */
	SYNLINE_CNT_TC_REINJECTED = 14,
	/* TC: a segment of a handed-over flow that is not the handshake's next (SEQ != IRS + 1 or
	 * ACK != ISS + 1) before the kernel has the socket: its child is on its way through the
	 * TAP, and this segment must not make one from the wrong ISNs. Dropped; the peer resends. */
	SYNLINE_CNT_TC_HELD = 15,
	/* The flood path (cookie.h): a SYN answered here with a cookie SYN-ACK (XDP_TX). Counted
	 * under the engine's names too (InSegs, SynRecv, SyncookiesSent, SynAckSent, OutSegs). */
	SYNLINE_CNT_COOKIE_SYNACK = 16,
	/* ... of a listener with tcp_syncookies=1 (the engine's TCPReqQFullDoCookies). */
	SYNLINE_CNT_COOKIE_REQQFULL = 17,
	/* A SYN to a listener in cookie mode left to the engine: not the plain case (IP options,
	 * data, a bad checksum, an unusual option list...), or no secrets yet. */
	SYNLINE_CNT_COOKIE_TO_ENGINE = 18,
	/* The frame could not be rewritten after it was resized (bpf_xdp_store_bytes failed):
	 * dropped. */
	SYNLINE_CNT_COOKIE_FAILED = 19,
	SYNLINE_CNT_MAX = 20,
};

#endif /* SYNLINE_H */
