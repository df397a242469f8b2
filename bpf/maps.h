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
