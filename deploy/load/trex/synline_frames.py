"""The SYN frames of synline-loadgen, for the TRex profiles beside this file.

One place for what the TRex flood (synline_syn_flood.py) must share with the loadgen
(bench/src/bin/loadgen/frame.rs for the template, bench/src/bin/loadgen/loadgen.bpf.c and bench/src/bin/loadgen/loadgen.h for what
changes per frame), and what deploy/load/check_frames.py checks against the loadgen:

- the template SYN: Ethernet, IPv4 (ID 0, DF, TTL 64, no options) or IPv6 (hop limit 64, no flow
  label), TCP from the first address of the client prefix, port 1024, ISN 0, window 64240, the
  option set's options ("none", "mss", "linux"), checksums valid;
- what the field engine rewrites per frame, as TRex field-engine instructions in the JSON form
  the TRex packet builder compiles them to (field_plan()).

Pure Python; scapy (bundled with TRex) is imported by syn_packet() only, so the profiles' other
helpers and the ASTF profile work without it.
"""

import ipaddress

ETH_LEN = 14
IP4_LEN = 20
IP6_LEN = 40
TCP_LEN = 20

# bench/src/bin/loadgen/frame.rs and bench/src/bin/loadgen/loadgen.h
PORT_MIN = 1024  # PORT_MIN, LG_PORT_MIN: template port, lowest port drawn
PORT_SPAN = 64512  # LG_PORT_SPAN: ports are PORT_MIN + random % PORT_SPAN
PORT_MARK = 1  # LG_PORT_MARK: set on completing flows, cleared on the flood
WINDOW = 64240
TTL = 64
MSS = {4: 1460, 6: 1440}
WSCALE = 7

OPTION_SETS = ("none", "mss", "linux")
DEFAULT_OPTIONS = "linux"
DEFAULT_SRC_NET = {4: "198.18.128.0/17", 6: "2001:2:0:8000::/64"}
DEFAULT_DST = "198.18.0.1"
DEFAULT_PORT = 8080

# TRex's CTRexVmInsFixHwCs.L4_TYPE_TCP (trex/stl/trex_stl_packet_builder_scapy.py)
L4_TYPE_TCP = 13


def syn_options(opts, mss, tsval):
    """The SYN's TCP options, byte for byte as OptSet::syn_options in frame.rs."""
    m = mss.to_bytes(2, "big")
    if opts == "none":
        return b""
    if opts == "mss":
        return b"\x02\x04" + m
    if opts == "linux":
        # MSS, SACK-permitted, TS (TSval, TSecr 0), NOP, WS 7: Linux's order.
        return (b"\x02\x04" + m + b"\x04\x02" + b"\x08\x0a" + tsval.to_bytes(4, "big")
                + b"\x00\x00\x00\x00" + b"\x01" + b"\x03\x03" + bytes([WSCALE]))
    raise ValueError("option set %r: expected one of %s" % (opts, ", ".join(OPTION_SETS)))


def scapy_tcp_options(opts, mss, tsval):
    """The same options as scapy's TCP(options=...) list, in the same order."""
    if opts == "none":
        return []
    if opts == "mss":
        return [("MSS", mss)]
    if opts == "linux":
        return [("MSS", mss), ("SAckOK", b""), ("Timestamp", (tsval, 0)), ("NOP", None),
                ("WScale", WSCALE)]
    raise ValueError("option set %r: expected one of %s" % (opts, ", ".join(OPTION_SETS)))


def parse_prefix(text):
    """A client prefix, ADDR/LEN; host bits cleared as the loadgen does."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise ValueError("prefix %r: %s" % (text, e))


def family_of(addr):
    return ipaddress.ip_address(addr).version


def source_range(src_net):
    """The random part of a source address: (min, max) of the 32-bit value the field engine
    writes (IPv4: the whole address; IPv6: its last 32 bits), as the loadgen draws it:
    IPv4 net | (random & ~mask); IPv6 words 0..2 from the prefix, word 3 = lo_net |
    (random & ~lo_mask), where only the low 32 bits are drawn (bits of a shorter prefix above
    them keep the prefix address's value)."""
    net = parse_prefix(str(src_net))
    if net.version == 4:
        lo = int(net.network_address)
        host_bits = 32 - net.prefixlen
    else:
        lo = int(net.network_address) & 0xFFFFFFFF
        host_bits = min(32, 128 - net.prefixlen)
    return lo, lo | ((1 << host_bits) - 1)


def check_addresses(src_net, dst):
    """Refuses what the loadgen refuses, and what the field engine cannot do: a prefix of the
    other family, or (IPv4) a prefix that holds the target's /24. The loadgen moves such
    sources out of the /24 by flipping a bit (the target would have to resolve each of them
    with ARP); one TRex random variable cannot skip a hole, so the profile refuses instead."""
    net = parse_prefix(str(src_net))
    d = ipaddress.ip_address(dst)
    if net.version != d.version:
        raise ValueError("source prefix %s and target %s are of different families" % (net, d))
    if d.version == 4:
        d24 = ipaddress.ip_network("%s/24" % d, strict=False)
        if net.overlaps(d24):
            raise ValueError(
                "source prefix %s holds addresses of the target's /24 %s: the target would "
                "resolve each of them with ARP; use a prefix outside it" % (net, d24))


def layout(family, opts):
    """Offsets in the frame (from its first byte) of what changes per frame."""
    l3 = ETH_LEN
    l4 = l3 + (IP4_LEN if family == 4 else IP6_LEN)
    return {
        "l3": l3,
        "l4": l4,
        # IPv4: the whole source address; IPv6: the last 32 bits of it
        "src": l3 + 12 if family == 4 else l3 + 8 + 12,
        "sport": l4,
        "seq": l4 + 4,
        # the TSval of the linux option set (MSS 4, SACK-permitted 2, kind and length 2)
        "tsval": l4 + TCP_LEN + 8 if opts == "linux" else None,
        "ip_csum": l3 + 10 if family == 4 else None,
        "tcp_csum": l4 + 16,
        "len": l4 + TCP_LEN + len(syn_options(opts, 0, 0)),
    }


def field_plan(family, src_net, opts):
    """The field engine of the flood, as the instruction dicts that TRex's packet builder
    compiles STLVmFlowVar / STLVmWrFlowVar / STLVmWrMaskFlowVar / STLVmFixChecksumHw into
    (the keys are those of its CTRexVmIns* objects; check_frames.py compares them with what
    TRex compiles when given --trex-lib).

    - src: a random source in the prefix (IPv4 address, or last 32 bits of the IPv6 one);
    - sport: random in [512, 32767], written shifted left by one into the port with mask
      0xfffe: an even port in [1024, 65534], the set the loadgen's flood draws from
      ((1024 + random % 64512) with the mark bit cleared);
    - isn: a random 32-bit ISN. The loadgen's ISN is fmix32(fmix32(addr ^ k0) ^ (port << 16 |
      port) ^ k1), a keyed hash of address and port: the field engine only has inc, dec and
      random variables and plain or masked writes, no arithmetic between variables, so it
      cannot compute it;
    - the IPv4 header and TCP checksums, by the NIC (TX checksum offload): the field engine
      has no software TCP checksum fix.
    """
    lay = layout(family, opts)
    lo, hi = source_range(src_net)
    var = lambda name, size, mn, mx: {  # noqa: E731
        "type": "flow_var", "name": name, "size": size, "op": "random",
        "init_value": mn, "min_value": mn, "max_value": mx, "step": 1,
        "split_to_cores": True, "next_var": None}
    return [
        var("src", 4, lo, hi),
        var("sport", 2, PORT_MIN >> 1, 0xFFFF >> 1),
        var("isn", 4, 0, 0xFFFFFFFF),
        {"type": "write_flow_var", "name": "src", "pkt_offset": lay["src"],
         "add_value": 0, "is_big_endian": True},
        {"type": "write_mask_flow_var", "name": "sport", "pkt_offset": lay["sport"],
         "pkt_cast_size": 2, "mask": 0xFFFF & ~PORT_MARK, "shift": 1, "add_value": 0,
         "is_big_endian": True},
        {"type": "write_flow_var", "name": "isn", "pkt_offset": lay["seq"],
         "add_value": 0, "is_big_endian": True},
        {"type": "fix_checksum_hw", "l2_len": lay["l3"], "l3_len": lay["l4"] - lay["l3"],
         "l4_type": L4_TYPE_TCP},
    ]


def syn_packet(src_net, dst, dport, opts, tsval, src_mac=None, dst_mac=None):
    """The template SYN as a scapy packet: the loadgen's template byte for byte (with the same
    MACs and TSval). Without MACs, Ether() leaves them to TRex (the port's own and the
    configured destination)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    net = parse_prefix(str(src_net))
    family = family_of(dst)
    eth = {}
    if src_mac:
        eth["src"] = src_mac
    if dst_mac:
        eth["dst"] = dst_mac
    if family == 4:
        l3 = IP(src=str(net.network_address), dst=str(dst), id=0, flags="DF", ttl=TTL, tos=0)
    else:
        l3 = IPv6(src=str(net.network_address), dst=str(dst), hlim=TTL, tc=0, fl=0)
    tcp = TCP(sport=PORT_MIN, dport=int(dport), seq=0, ack=0, flags="S", window=WINDOW,
              urgptr=0, options=scapy_tcp_options(opts, MSS[family], tsval))
    return Ether(**eth) / l3 / tcp
