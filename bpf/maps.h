/* SPDX-License-Identifier: GPL-2.0 */
/* The maps of synline.bpf.c; the loader reaches them by these names. */
#ifndef SYNLINE_MAPS_H
#define SYNLINE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "synline.h"

#define SYNLINE_MAX_QUEUES 256
#define SYNLINE_MAX_LISTENERS 1024

/* rx queue index -> AF_XDP socket of that queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, SYNLINE_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

/*
 * The listeners whose segments go to AF_XDP; layout in synline.h. Not preallocated: the daemon
 * rewrites each entry every 50 ms (the flood path's mode), and a preallocated hash map would
 * reuse an old element's memory for the next update while a program on another CPU may still
 * read it; without preallocation the old element lives until the readers are gone (RCU).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SYNLINE_MAX_LISTENERS);
	__type(key, struct listener_key);
	__type(value, struct listener_val);
} listeners SEC(".maps");

/*
 * (family, destination port) -> the listeners of that family on that port, so that a frame
 * needs one array lookup and no hash lookup when its port has one listener of its family, the
 * common case, dual-stack services included (issue 13: the hash lookups, about 24 ns each,
 * were the program's largest cost). Index: the port in host order, plus 65536 for IPv6. One
 * `struct port_entry` (synline.h) each:
 *
 *   kinds: which listeners of the family exist on the port, so that only lookups that can
 *   hit are made (none: the frame is not for synline):
 *
 *     bit   1            0
 *         +------------+--------------+
 *         | wildcard   | exact address|
 *         +------------+--------------+
 *
 *   single: 1 when the port has exactly one listener of the family; `key` and `val` are then
 *   a copy of its entry in `listeners`, and a frame to its address (any address of the family
 *   for a wildcard) needs no hash lookup at all.
 *
 * The loader rewrites an entry after each change of its listeners (a new listener is in
 * `listeners` before its bit is set; a leaving one loses its bit before it leaves), and the
 * copy of `val` with every update of the listener's value. Array elements are written in
 * place, so a reader racing a rewrite may see old and new bytes mixed. `single` is therefore
 * only ever flipped by a write that leaves `key` and `val` as they are: a copy is written
 * with `single` = 0 first and then switched on, and switched off before its key changes. A
 * mixed read then sees one whole key; what it can mix is a value being updated, whose fields
 * each a SYN-ACK sent a moment earlier or later would have had. 48 bytes an entry, 6 MiB in
 * all.
 */
#define SYNLINE_PORT_EXACT 0x1
#define SYNLINE_PORT_WILD 0x2
#define SYNLINE_PORTS_V6 65536
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * 65536);
	__type(key, __u32);
	__type(value, struct port_entry);
} listen_ports SEC(".maps");

/* enum synline_counter -> u64, one slot per CPU (no atomics on the hot path). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYNLINE_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * Connections the engine accepted and handed to the kernel: the daemon writes them, the TC
 * program reads them and removes them once the kernel has the socket. LRU: a flow that never
 * sends another segment (a server that speaks first, a client that closes at once) never
 * meets TC again, so its entry would stay; the oldest go when the map is full. An entry is
 * used microseconds after it is written (the re-injected ACK), and by a retry within seconds;
 * 262,144 entries hold minutes of handoffs at tens of thousands a second.
 */
#define SYNLINE_MAX_HANDED 262144
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SYNLINE_MAX_HANDED);
	__type(key, struct flow_key);
	__type(value, struct handed_val);
} handed SEC(".maps");

#endif /* SYNLINE_MAPS_H */
