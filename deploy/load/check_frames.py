#!/usr/bin/env python3
"""Checks that the TRex flood profile (trex/synline_syn_flood.py) sends synline-loadgen's frames.

Without TRex, a NIC or DPDK. Three levels, each a superset of the one before:

  python3 deploy/load/check_frames.py
      Needs scapy (pip install scapy). The reference is the loadgen's own source: a port of
      tcp_frame / syn_template with every constant read out of bench/src/bin/loadgen/frame.rs
      (and bench/src/bin/loadgen/loadgen.h), first shown to rebuild frame.rs's own fixture frame byte for byte
      (a SYN captured from Linux that frame.rs's unit test rebuilds too). Checked: the profile's
      base packet (built by synline_frames.syn_packet, as the profile builds it) equals the
      loadgen's template, every byte, for each option set and both families; the field
      engine's random ranges (source address, port) equal the loadgen's; and the field engine,
      emulated on random values, turns the base packet into the loadgen's frame for the same
      source, port and ISN, checksums included.

  python3 deploy/load/check_frames.py --trex-lib DIR
      Also loads both profiles through TRex's own Python library (DIR: a TRex release's
      automation/trex_control_plane/interactive, or trex-core's
      scripts/automation/trex_control_plane/interactive; it brings its own scapy), as
      trex-console does, in both tunable syntaxes, and checks what TRex compiles: the packet
      bytes against the loadgen's template, the field-engine instructions against the
      emulated ones (then emulates the compiled ones), and the ASTF profile's JSON.

  sudo python3 deploy/load/check_frames.py --live [--loadgen PATH]
      Also runs the real loadgen (default: target/release/synline-loadgen) in two throwaway
      network namespaces joined by a veth pair, captures the SYNs it sends for each option
      set and family, and checks each one against the profile's frame for the same source,
      port, ISN and TSval: every other byte equal, both sets of checksums valid.

Compared "byte for byte except the per-frame fields": those are the source address, source
port, ISN and the two checksums, plus the TSval of the linux option set, which both draw once
per run (the loadgen at random, the profile from --tsval). What cannot match and is not
compared: the ISN's value (the loadgen's is a keyed hash, TRex's random, see
synline_frames.field_plan) and the MACs (TRex uses its port's unless told).

Exit status 0 when every check passed; the last line reads "check_frames: N passed, M failed".
"""

import argparse
import base64
import ipaddress
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
FRAME_RS = os.path.join(REPO, "bench", "src", "bin", "loadgen", "frame.rs")
LOADGEN_H = os.path.join(REPO, "bpf", "loadgen.h")
TREX_DIR = os.path.join(HERE, "trex")
STL_PROFILE = os.path.join(TREX_DIR, "synline_syn_flood.py")
ASTF_PROFILE = os.path.join(TREX_DIR, "synline_mix.py")

sys.path.insert(0, TREX_DIR)
import synline_frames as sf  # noqa: E402

SRC_MAC = bytes.fromhex("020000000002")
DST_MAC = bytes.fromhex("020000000001")
DST = {4: "198.18.0.1", 6: "2001:2::1"}
DPORT = 8080


class Checks(object):
    def __init__(self, verbose=False):
        self.passed = 0
        self.failed = 0
        self.verbose = verbose

    def ok(self, cond, what, detail="", show=False):
        """Counts a check; prints it when it fails, or when show (or -v) is set."""
        if cond:
            self.passed += 1
            if show or self.verbose:
                print("ok: %s" % what)
        else:
            self.failed += 1
            print("FAIL: %s%s" % (what, ("\n      " + detail) if detail else ""))
        return cond

    def section(self, title):
        print("== %s" % title)


# ------------------------------------------------------------------------------------------
# The loadgen's frames, from frame.rs
# ------------------------------------------------------------------------------------------

def _between(text, start, end):
    i = text.index(start)
    j = text.index(end, i)
    return text[i:j]


def _bracketed(text, start):
    """The text inside the [...] that opens at text[start], nested brackets included."""
    assert text[start] == "["
    depth = 0
    for i in range(start, len(text)):
        depth += {"[": 1, "]": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1:i]
    raise ValueError("unbalanced [")


def _arrays_after(text, marker):
    """The contents of every `marker[...]` literal in text, in order."""
    return [_bracketed(text, m.end() - 1) for m in re.finditer(re.escape(marker) + r"\[", text)]


def _int(tok, env):
    tok = tok.strip()
    if tok in env:
        return env[tok]
    return int(tok, 0)


class FrameRs(object):
    """tcp_frame() and syn_template() of frame.rs, with their constants read from the source.
    The field order is this port's; the fixture check shows it is frame.rs's."""

    def __init__(self, path=FRAME_RS, header=LOADGEN_H):
        self.src = open(path).read()
        s = self.src

        def const(name):
            m = re.search(r"pub const %s: \w+ = (\w+);" % name, s)
            if not m:
                raise ValueError("frame.rs: no constant %s" % name)
            return int(m.group(1), 0)

        self.ipproto_tcp = const("IPPROTO_TCP")
        self.port_min = const("PORT_MIN")
        self.port_mark = const("PORT_MARK")
        env = {"IPPROTO_TCP": self.ipproto_tcp}

        opts = _between(s, "pub fn syn_options", "\n    }\n}")
        vecs = _arrays_after(opts, "vec!")
        if ("OptSet::None => Vec::new()" not in opts or len(vecs) != 2
                or opts.index("OptSet::Mss") > opts.index("OptSet::Linux")):
            raise ValueError("frame.rs: syn_options changed shape; update check_frames.py")
        self.opt_tokens = {"none": [], "mss": self._tokens(vecs[0]),
                           "linux": self._tokens(vecs[1])}

        body = _between(s, "pub fn tcp_frame", "pub fn syn_template")
        arrays = [self._tokens(a) for a in _arrays_after(body, "extend_from_slice(&")]
        if len(arrays) != 5:
            raise ValueError("frame.rs: tcp_frame changed shape (%d literal arrays, expected 5); "
                             "update check_frames.py" % len(arrays))
        ev = lambda a: bytes(_int(t, env) for t in a)  # noqa: E731
        self.ip4_vihl_tos, self.ip4_id_to_csum, self.ip6_vtcfl, self.ip6_nh_hlim, \
            self.tcp_csum_urg = [ev(a) for a in arrays]

        tmpl = _between(s, "pub fn syn_template", "pub struct Parsed")
        m = re.search(r"if dst\.is_ipv4\(\) \{ (\d+) \} else \{ (\d+) \}", tmpl)
        fields = dict(re.findall(r"(\w+): (\w+),", tmpl))
        if not m or fields.get("sport") != "PORT_MIN" or "src_net.addr" not in tmpl:
            raise ValueError("frame.rs: syn_template changed shape; update check_frames.py")
        self.mss = {4: int(m.group(1)), 6: int(m.group(2))}
        self.t_seq = int(fields["seq"], 0)
        self.t_ack = int(fields["ack"], 0)
        self.t_flags = int(fields["flags"], 0)
        self.t_window = int(fields["window"], 0)

        h = open(header).read()
        hdef = lambda n: int(re.search(r"#define %s (\w+)" % n, h).group(1), 0)  # noqa: E731
        self.lg_port_min = hdef("LG_PORT_MIN")
        self.lg_port_span = hdef("LG_PORT_SPAN")
        self.lg_port_mark = hdef("LG_PORT_MARK")

    @staticmethod
    def _tokens(text):
        return [t.strip() for t in text.split(",") if t.strip()]

    def syn_options(self, opts, mss, tsval):
        env = {"m[0]": mss >> 8, "m[1]": mss & 0xFF}
        for i, b in enumerate(tsval.to_bytes(4, "big")):
            env["t[%d]" % i] = b
        return bytes(_int(t, env) for t in self.opt_tokens[opts])

    def tcp_frame(self, src_mac, dst_mac, src, dst, sport, dport, seq, ack, flags, window,
                  options):
        assert len(options) % 4 == 0
        src, dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        tcp_len = 20 + len(options)
        f = bytearray(dst_mac + src_mac)
        if src.version == 4:
            f += b"\x08\x00"
            ip = len(f)
            f += self.ip4_vihl_tos + (20 + tcp_len).to_bytes(2, "big") + self.ip4_id_to_csum
            f += src.packed + dst.packed
            f[ip + 10:ip + 12] = (~fold(sum16(f[ip:])) & 0xFFFF).to_bytes(2, "big")
        else:
            f += b"\x86\xdd" + self.ip6_vtcfl + tcp_len.to_bytes(2, "big") + self.ip6_nh_hlim
            f += src.packed + dst.packed
        t = len(f)
        f += sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
        f += seq.to_bytes(4, "big") + ack.to_bytes(4, "big")
        f += bytes([(tcp_len // 4) << 4, flags]) + window.to_bytes(2, "big")
        f += self.tcp_csum_urg + options
        c = ~fold(pseudo_sum(src, dst, tcp_len, self.ipproto_tcp) + sum16(f[t:])) & 0xFFFF
        f[t + 16:t + 18] = c.to_bytes(2, "big")
        return bytes(f)

    def syn_template(self, src_mac, dst_mac, src_net, dst, dport, opts, tsval):
        net = ipaddress.ip_network(src_net, strict=False)
        return self.syn_frame(src_mac, dst_mac, net.network_address, dst, dport, opts, tsval,
                              self.port_min, self.t_seq)

    def syn_frame(self, src_mac, dst_mac, src, dst, dport, opts, tsval, sport, seq):
        """The template with the per-frame fields the generator writes."""
        family = ipaddress.ip_address(dst).version
        return self.tcp_frame(src_mac, dst_mac, src, dst, sport, dport, seq, self.t_ack,
                              self.t_flags, self.t_window,
                              self.syn_options(opts, self.mss[family], tsval))

    def fixture(self):
        """The frame of frame.rs's test checksum_of_a_linux_syn."""
        m = re.search(r"let want: \[u8; (\d+)\] = \[(.*?)\];", self.src, re.S)
        if not m:
            raise ValueError("frame.rs: fixture `want` not found")
        b = bytes(int(t, 0) for t in self._tokens(m.group(2)))
        assert len(b) == int(m.group(1))
        return b

    def flood_ports(self):
        """The ports the generator's flood draws (pick_port(0) in loadgen.bpf.c)."""
        return {(self.lg_port_min + r) & ~self.lg_port_mark & 0xFFFF
                for r in range(self.lg_port_span)}

    def sources(self, src_net):
        """The set of 32-bit source values drawn, as (lo, hi): frame.rs's Prefix::v4_net_mask /
        v6_parts and loadgen.bpf.c's gen4 / gen6 (net | (random & ~mask))."""
        net = ipaddress.ip_network(src_net, strict=False)
        if net.version == 4:
            mask = mask32(net.prefixlen)
            base = int(net.network_address)
        else:
            mask = mask32(max(0, net.prefixlen - 96))
            base = int(net.network_address) & 0xFFFFFFFF & mask
        return base, base | (~mask & 0xFFFFFFFF)


def mask32(n):
    return 0 if n == 0 else (0xFFFFFFFF << (32 - min(n, 32))) & 0xFFFFFFFF


def sum16(b):
    b = bytes(b)
    if len(b) % 2:
        b += b"\x00"
    return sum(int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b), 2))


def fold(s):
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def pseudo_sum(src, dst, tcp_len, proto=6):
    return sum16(src.packed) + sum16(dst.packed) + proto + tcp_len


def parse_syn(f):
    """(family, src, dst, l4 offset) of an Ethernet + IPv4/IPv6 + TCP frame, or None."""
    et = int.from_bytes(f[12:14], "big")
    if et == 0x0800 and len(f) >= 34 and f[14] == 0x45 and f[23] == 6:
        return 4, ipaddress.ip_address(f[26:30]), ipaddress.ip_address(f[30:34]), 34
    if et == 0x86DD and len(f) >= 54 and f[20] == 6:
        return 6, ipaddress.ip_address(f[22:38]), ipaddress.ip_address(f[38:54]), 54
    return None


def checksums_ok(f):
    family, src, dst, l4 = parse_syn(f)
    ip_ok = family == 6 or fold(sum16(f[14:34])) == 0xFFFF
    tcp_ok = fold(pseudo_sum(src, dst, len(f) - l4) + sum16(f[l4:])) == 0xFFFF
    return ip_ok and tcp_ok


# ------------------------------------------------------------------------------------------
# TRex's field engine, emulated (the instruction types the flood uses)
# ------------------------------------------------------------------------------------------

def random_values(instructions, rng):
    return {i["name"]: rng.randint(i["min_value"], i["max_value"])
            for i in instructions if i["type"] == "flow_var"}


def run_field_engine(pkt, instructions, values):
    """What TRex's data path does to the base packet for one frame, given the value each flow
    variable took (src/stx/stl/trex_stl_stream_vm.h: write, masked write, HW checksum)."""
    f = bytearray(pkt)
    sizes = {}
    for i in instructions:
        t = i["type"]
        if t == "flow_var":
            assert i["op"] == "random" and i["min_value"] <= values[i["name"]] <= i["max_value"]
            sizes[i["name"]] = i["size"]
        elif t == "write_flow_var":
            n, o = sizes[i["name"]], i["pkt_offset"]
            v = (values[i["name"]] + i["add_value"]) & ((1 << (8 * n)) - 1)
            f[o:o + n] = v.to_bytes(n, "big" if i["is_big_endian"] else "little")
        elif t == "write_mask_flow_var":
            n, o = i["pkt_cast_size"], i["pkt_offset"]
            bo = "big" if i["is_big_endian"] else "little"
            v = (values[i["name"]] & ((1 << (8 * sizes[i["name"]])) - 1)) + i["add_value"]
            v = v << i["shift"] if i["shift"] >= 0 else v >> -i["shift"]
            cur = int.from_bytes(f[o:o + n], bo)
            new = (cur & ~i["mask"]) | (v & i["mask"])
            f[o:o + n] = (new & ((1 << (8 * n)) - 1)).to_bytes(n, bo)
        elif t == "fix_checksum_hw":
            assert i["l4_type"] == sf.L4_TYPE_TCP
            l3, l4 = i["l2_len"], i["l2_len"] + i["l3_len"]
            if f[l3] >> 4 == 4:
                f[l3 + 10:l3 + 12] = b"\x00\x00"
                f[l3 + 10:l3 + 12] = (~fold(sum16(f[l3:l4])) & 0xFFFF).to_bytes(2, "big")
                src, dst = ipaddress.ip_address(bytes(f[l3 + 12:l3 + 16])), \
                    ipaddress.ip_address(bytes(f[l3 + 16:l3 + 20]))
            else:
                src, dst = ipaddress.ip_address(bytes(f[l3 + 8:l3 + 24])), \
                    ipaddress.ip_address(bytes(f[l3 + 24:l3 + 40]))
            f[l4 + 16:l4 + 18] = b"\x00\x00"
            c = ~fold(pseudo_sum(src, dst, len(f) - l4) + sum16(f[l4:])) & 0xFFFF
            f[l4 + 16:l4 + 18] = c.to_bytes(2, "big")
        else:
            raise ValueError("instruction %r not emulated" % t)
    return bytes(f)


def source_address(src_net, family, value):
    net = ipaddress.ip_network(src_net, strict=False)
    if family == 4:
        return ipaddress.IPv4Address(value)
    return ipaddress.IPv6Address((int(net.network_address) & ~0xFFFFFFFF) | value)


def diff(a, b):
    if len(a) != len(b):
        return "lengths %d and %d" % (len(a), len(b))
    at = [i for i in range(len(a)) if a[i] != b[i]]
    return "bytes differ at offsets %s\n      profile %s\n      loadgen %s" % (
        at[:12], a.hex(), b.hex())


# ------------------------------------------------------------------------------------------
# Level 1: the profile's frames against frame.rs
# ------------------------------------------------------------------------------------------

PREFIXES = {4: ["198.18.128.0/17", "198.19.7.0/24", "10.9.8.7/32", "198.19.0.0/16"],
            6: ["2001:2:0:8000::/64", "2001:2:0:9000::abcd:0/112", "2001:2::9:0/127",
                "2001:2:0:8000::/48"]}


def check_static(c, fr, rng, rounds):
    c.section("frame.rs port against frame.rs's own fixture (a Linux SYN)")
    want = fr.fixture()
    family, src, dst, l4 = parse_syn(want)
    tcp = want[l4:]
    doff = (tcp[12] >> 4) * 4
    got = bytearray(fr.tcp_frame(want[6:12], want[0:6], src, dst,
                                 int.from_bytes(tcp[0:2], "big"), int.from_bytes(tcp[2:4], "big"),
                                 int.from_bytes(tcp[4:8], "big"), int.from_bytes(tcp[8:12], "big"),
                                 tcp[13], int.from_bytes(tcp[14:16], "big"), tcp[20:doff]))
    # As the Rust test does: the capture's IP ID, then the header checksum again.
    got[18:20] = want[18:20]
    got[24:26] = b"\x00\x00"
    got[24:26] = (~fold(sum16(got[14:34])) & 0xFFFF).to_bytes(2, "big")
    c.ok(bytes(got) == want, "rebuilding frame.rs's fixture (%d bytes) from its fields" % len(want),
         diff(bytes(got), want), show=True)
    tsval = int.from_bytes(tcp[28:32], "big")
    c.ok(fr.syn_options("linux", fr.mss[4], tsval) == tcp[20:doff],
         "frame.rs's linux option set against the fixture's options")

    c.section("option bytes, template and field engine, per option set and family")
    ports = fr.flood_ports()
    for opts in sf.OPTION_SETS:
        for family in (4, 6):
            tsval = rng.getrandbits(32) | 1
            mss = fr.mss[family]
            c.ok(sf.syn_options(opts, mss, tsval) == fr.syn_options(opts, mss, tsval),
                 "%s/v%d: option bytes" % (opts, family))
            c.ok(sf.MSS[family] == mss and sf.PORT_MIN == fr.port_min
                 and sf.WINDOW == fr.t_window and sf.PORT_MARK == fr.port_mark,
                 "%s/v%d: constants (MSS, port, window, mark) as in frame.rs" % (opts, family))
            for src_net in PREFIXES[family]:
                dst = DST[family]
                tag = "%s/v%d/%s" % (opts, family, src_net)
                ref = fr.syn_template(SRC_MAC, DST_MAC, src_net, dst, DPORT, opts, tsval)
                pkt = bytes(sf.syn_packet(src_net, dst, DPORT, opts, tsval,
                                          src_mac=SRC_MAC.hex(":"), dst_mac=DST_MAC.hex(":")))
                c.ok(pkt == ref, "%s: base packet == loadgen template" % tag, diff(pkt, ref))
                plan = sf.field_plan(family, src_net, opts)
                check_plan(c, fr, tag, plan, family, src_net, ports)
                bad = 0
                for _ in range(rounds):
                    vals = random_values(plan, rng)
                    got = run_field_engine(pkt, plan, vals)
                    want = fr.syn_frame(SRC_MAC, DST_MAC,
                                        source_address(src_net, family, vals["src"]), dst,
                                        DPORT, opts, tsval, vals["sport"] << 1, vals["isn"])
                    if got != want:
                        bad += 1
                        if bad == 1:
                            c.ok(False, "%s: field engine output" % tag, diff(got, want))
                c.ok(bad == 0, "%s: base packet == template; %d field-engine frames == "
                     "loadgen frames for the same source, port, ISN" % (tag, rounds),
                     "%d differed" % bad, show=True)


def check_plan(c, fr, tag, plan, family, src_net, ports):
    """The random ranges: the same sources and ports as the loadgen's flood."""
    var = {i["name"]: i for i in plan if i["type"] == "flow_var"}
    lo, hi = fr.sources(src_net)
    c.ok((var["src"]["min_value"], var["src"]["max_value"]) == (lo, hi),
         "%s: source range == the loadgen's" % tag,
         "plan %#x-%#x, loadgen %#x-%#x" % (var["src"]["min_value"], var["src"]["max_value"],
                                            lo, hi))
    wr = [i for i in plan if i["type"] == "write_mask_flow_var" and i["name"] == "sport"][0]
    got = set()
    for v in range(var["sport"]["min_value"], var["sport"]["max_value"] + 1):
        f = run_field_engine(bytes(100), [var["sport"], wr], {"sport": v})
        got.add(int.from_bytes(f[wr["pkt_offset"]:wr["pkt_offset"] + 2], "big"))
    c.ok(got == ports, "%s: port set == the loadgen flood's (%d even ports %d-%d)"
         % (tag, len(ports), min(ports), max(ports)))
    isn = var["isn"]
    c.ok((isn["size"], isn["min_value"], isn["max_value"]) == (4, 0, 0xFFFFFFFF),
         "%s: ISN random over 32 bits" % tag)


# ------------------------------------------------------------------------------------------
# Level 2: through TRex's own library
# ------------------------------------------------------------------------------------------

def check_trex(c, fr, rng, rounds, trex_lib):
    c.section("the profiles through TRex's Python library (%s)" % trex_lib)
    sys.path.insert(0, trex_lib)
    # TRex's bundled scapy 2.4.3 warns about newer cryptography; not ours to fix.
    warnings.simplefilter("ignore")
    for m in [m for m in sys.modules if m == "scapy" or m.startswith("scapy.")]:
        del sys.modules[m]  # let TRex load its own scapy
    sys.modules.pop("synline_frames", None)
    from trex.astf.api import ASTFProfile
    from trex.stl.api import STLProfile
    from trex.utils import parsing_opts
    import scapy
    print("   (scapy %s from %s)" % (scapy.VERSION, os.path.dirname(scapy.__file__)))

    def load(tunables):
        prof = STLProfile.load_py(STL_PROFILE, direction=0, port_id=0, tunables=tunables)
        streams = prof.get_streams()
        c.ok(len(streams) == 1, "one stream")
        j = streams[0].to_json()
        return j, base64.b64decode(j["packet"]["binary"])

    ports = fr.flood_ports()
    for opts in sf.OPTION_SETS:
        for family in (4, 6):
            dst = DST[family]
            src_net = PREFIXES[family][1]
            tsval = rng.getrandbits(32) | 1
            tag = "trex %s/v%d" % (opts, family)
            j, pkt = load(["--options", opts, "--dst", dst, "--port", str(DPORT),
                           "--src-net", src_net, "--tsval", str(tsval),
                           "--src-mac", SRC_MAC.hex(":"), "--dst-mac", DST_MAC.hex(":")])
            ref = fr.syn_template(SRC_MAC, DST_MAC, src_net, dst, DPORT, opts, tsval)
            c.ok(pkt == ref, "%s: compiled packet == loadgen template" % tag, diff(pkt, ref))
            ins = j["vm"]["instructions"]
            plan = sf.field_plan(family, src_net, opts)
            c.ok(ins == plan, "%s: compiled field engine == the emulated one" % tag,
                 json.dumps(ins))
            check_plan(c, fr, tag, ins, family, src_net, ports)
            bad = 0
            for _ in range(rounds):
                vals = random_values(ins, rng)
                got = run_field_engine(pkt, ins, vals)
                want = fr.syn_frame(SRC_MAC, DST_MAC, source_address(src_net, family, vals["src"]),
                                    dst, DPORT, opts, tsval, vals["sport"] << 1, vals["isn"])
                bad += got != want
            c.ok(bad == 0, "%s: compiled packet and field engine as emulated; %d frames "
                 "from the compiled field engine == loadgen frames" % (tag, rounds),
                 "%d differed" % bad, show=True)
            c.ok(j["flags"] & 3 == 3, "%s: MACs from the packet when given" % tag)

    # Defaults, and the console's old tunable syntax (-t key=val,...), converted as the
    # console converts it.
    for line, family, opts in (("options=mss,dst=198.18.0.1,port=8080", 4, "mss"),
                               ("dst=2001:2::1,options=none", 6, "none"),
                               ("count=1000", 4, "linux")):
        tun = parsing_opts.convert_old_tunables_to_new_tunables(line)
        j, pkt = load(tun)
        lay = sf.layout(family, opts)
        tsval = int.from_bytes(pkt[lay["tsval"]:lay["tsval"] + 4], "big") if lay["tsval"] else 0
        ref = fr.syn_template(pkt[6:12], pkt[0:6], sf.DEFAULT_SRC_NET[family], DST[family],
                              DPORT, opts, tsval)
        c.ok(pkt == ref, "trex -t %s: packet == loadgen template (default prefix)" % line,
             diff(pkt, ref), show=True)
        c.ok(j["flags"] & 3 == 0, "trex -t %s: MACs left to TRex" % line)
        c.ok(opts != "linux" or tsval & 1, "trex -t %s: random TSval is odd" % line)
        want_mode = "single_burst" if "count" in line else "continuous"
        c.ok(j["mode"]["type"] == want_mode, "trex -t %s: mode %s" % (line, want_mode),
             str(j["mode"]))
    try:
        load(["--dst", "198.18.0.1", "--src-net", "198.18.0.0/16"])
        refused = False
    except Exception as e:  # TRex wraps the profile's ValueError
        refused = "target's /24" in str(e)
    c.ok(refused, "trex: a prefix holding the target's /24 is refused", show=True)

    c.section("the ASTF profile through TRex's Python library")
    for tun, family in ((["--dst", "198.18.0.1", "--cps", "2500"], 4),
                        (["--dst", "2001:2::1", "--port", "80", "--close", "rst"], 6),
                        (parsing_opts.convert_old_tunables_to_new_tunables(
                            "cps=100,dst=198.18.0.1,close=wait,limit=5000"), 4)):
        tag = "astf %s" % " ".join(tun)
        j = ASTFProfile.load_py(ASTF_PROFILE, tunables=tun).to_json()
        tmpl = j["templates"][0]["client_template"]
        port = int(tun[tun.index("--port") + 1]) if "--port" in tun else DPORT
        cps = float(tun[tun.index("--cps") + 1]) if "--cps" in tun else 1000.0
        c.ok(tmpl["port"] == port and tmpl["cps"] == cps, "%s: port %d, cps %g" % (tag, port, cps),
             json.dumps(tmpl))
        dists = {d["dir"]: d for d in j["ip_gen_dist_list"]}
        dst = ipaddress.ip_address(DST[family])
        low = str(ipaddress.IPv4Address(int(dst) & 0xFFFFFFFF))
        c.ok(dists["s"]["ip_start"] == dists["s"]["ip_end"] == low, "%s: server address" % tag,
             json.dumps(dists["s"]))
        if family == 4:
            c.ok((dists["c"]["ip_start"], dists["c"]["ip_end"]) == ("198.18.64.0", "198.18.127.255"),
                 "%s: client range" % tag, json.dumps(dists["c"]))
        else:
            v6 = j["c_glob_info"].get("ipv6", {})
            c.ok(v6.get("enable") == 1 and bytes(v6["dst_msb"]) == dst.packed[:12] + bytes(4),
                 "%s: IPv6 on, target's upper 96 bits" % tag, json.dumps(v6))
        c.ok(j["c_glob_info"]["tcp"]["mss"] == sf.MSS[family], "%s: MSS %d" % (tag, sf.MSS[family]),
             json.dumps(j["c_glob_info"]))
        names = [x["name"] for x in j["program_list"][0]["commands"]]
        close = tun[tun.index("--close") + 1] if "--close" in tun else "fin"
        want = ["connect", "tx"] + {"fin": [], "rst": ["reset"], "wait": ["nc"]}[close]
        c.ok(names == want, "%s: addresses, port, cps, client program %s" % (tag, want),
             str(names), show=True)


# ------------------------------------------------------------------------------------------
# Level 3: the real loadgen's frames
# ------------------------------------------------------------------------------------------

def capture(iface, want, timeout):
    """Runs inside the receiving namespace: prints 'ready', then the hex of each TCP SYN
    (SYN set, ACK clear) received on iface, until `want` of them or the timeout."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    s.settimeout(0.2)
    print("ready", flush=True)
    n, end = 0, time.time() + timeout
    while n < want and time.time() < end:
        try:
            f, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        p = parse_syn(f)
        if p and f[p[3] + 13] & 0x12 == 0x02:
            print(f.hex(), flush=True)
            n += 1


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def check_live(c, fr, loadgen, count):
    c.section("the real loadgen's frames (%s), captured on a veth pair" % loadgen)
    if os.geteuid() != 0:
        c.ok(False, "--live needs root (network namespaces, XDP)")
        return
    tag = "lgchk%d" % os.getpid()
    cns, sns = tag + "-c", tag + "-s"
    try:
        sh("ip", "netns", "add", cns)
        sh("ip", "netns", "add", sns)
        sh("ip", "-n", cns, "link", "add", "c0", "type", "veth", "peer", "name", "s0",
           "netns", sns)
        for ns, dev in ((cns, "c0"), (sns, "s0")):
            sh("ip", "-n", ns, "link", "set", "dev", dev, "up")
        c_mac = sh("ip", "netns", "exec", cns, "cat", "/sys/class/net/c0/address").strip()
        s_mac = sh("ip", "netns", "exec", sns, "cat", "/sys/class/net/s0/address").strip()
        # A veth only takes XDP frames when its receiving end runs XDP.
        sh("ip", "netns", "exec", sns, loadgen, "xdp-pass", "--iface", "s0")
        for opts in sf.OPTION_SETS:
            for family in (4, 6):
                live_run(c, fr, loadgen, cns, sns, c_mac, s_mac, opts, family, count)
    except subprocess.CalledProcessError as e:
        c.ok(False, "live setup: %s" % " ".join(e.cmd), (e.stderr or "").strip())
    finally:
        for ns in (cns, sns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def live_run(c, fr, loadgen, cns, sns, c_mac, s_mac, opts, family, count):
    tag = "live %s/v%d" % (opts, family)
    dst = DST[family]
    src_net = sf.DEFAULT_SRC_NET[family]
    cap = subprocess.Popen(["ip", "netns", "exec", sns, sys.executable, os.path.abspath(__file__),
                            "--capture", "s0", "--want", str(count), "--timeout", "10"],
                           stdout=subprocess.PIPE, text=True)
    try:
        if cap.stdout.readline().strip() != "ready":
            c.ok(False, "%s: capture did not start" % tag)
            return
        target = "%s:%d" % (dst, DPORT) if family == 4 else "[%s]:%d" % (dst, DPORT)
        out = subprocess.run(["ip", "netns", "exec", cns, loadgen, "--iface", "c0",
                              "--dst", target, "--dst-mac", s_mac, "--src-mac", c_mac,
                              "--options", opts, "--count", str(count), "--rate", "2000",
                              "--drain-ms", "0", "--quiet", "--json"],
                             capture_output=True, text=True)
        if not c.ok(out.returncode == 0, "%s: loadgen ran" % tag, out.stderr.strip()):
            return
        frames = [bytes.fromhex(x) for x in cap.stdout.read().split()]
    finally:
        cap.kill()
        cap.wait()
    c.ok(len(frames) == count, "%s: captured %d of %d SYNs" % (tag, len(frames), count))
    if not frames:
        return
    lay = sf.layout(family, opts)
    plan = sf.field_plan(family, src_net, opts)
    var = {i["name"]: i for i in plan if i["type"] == "flow_var"}
    mask = {lay["tcp_csum"], lay["tcp_csum"] + 1}
    if lay["ip_csum"]:
        mask |= {lay["ip_csum"], lay["ip_csum"] + 1}
    same_csum = bad = 0
    for f in frames:
        f = f[:lay["len"]]
        src = int.from_bytes(f[lay["src"]:lay["src"] + 4], "big")
        sport = int.from_bytes(f[lay["sport"]:lay["sport"] + 2], "big")
        isn = int.from_bytes(f[lay["seq"]:lay["seq"] + 4], "big")
        tsval = int.from_bytes(f[lay["tsval"]:lay["tsval"] + 4], "big") if lay["tsval"] else 0
        in_range = (var["src"]["min_value"] <= src <= var["src"]["max_value"]
                    and sport & 1 == 0
                    and var["sport"]["min_value"] <= sport >> 1 <= var["sport"]["max_value"])
        base = bytes(sf.syn_packet(src_net, dst, DPORT, opts, tsval,
                                   src_mac=f[6:12].hex(":"), dst_mac=f[0:6].hex(":")))
        emu = run_field_engine(base, plan, {"src": src, "sport": sport >> 1, "isn": isn})
        masked_equal = len(emu) == len(f) and all(
            emu[i] == f[i] for i in range(len(f)) if i not in mask)
        if not (in_range and masked_equal and checksums_ok(f) and checksums_ok(emu)):
            bad += 1
            if bad == 1:
                c.ok(False, "%s: a captured SYN" % tag,
                     "in range %s, equal but checksums %s, checksums valid %s/%s\n      %s"
                     % (in_range, masked_equal, checksums_ok(f), checksums_ok(emu),
                        diff(emu, f)))
        same_csum += emu == f
    c.ok(bad == 0, "%s: %d captured SYNs == profile frames for their source, port, ISN%s "
         "(checksums valid on both; %d of them identical too)"
         % (tag, len(frames), ", TSval" if lay["tsval"] else "", same_csum), show=True)


# ------------------------------------------------------------------------------------------

def print_template(fr):
    tsval = 0x01020305
    f = fr.syn_template(SRC_MAC, DST_MAC, sf.DEFAULT_SRC_NET[4], DST[4], DPORT, "linux", tsval)
    print("IPv4 linux template: %s -> %s:%d, TSval %#010x, MACs %s -> %s (%d bytes)"
          % (sf.DEFAULT_SRC_NET[4], DST[4], DPORT, tsval, SRC_MAC.hex(":"), DST_MAC.hex(":"),
             len(f)))
    for i in range(0, len(f), 16):
        print("%04x  %s" % (i, " ".join("%02x" % b for b in f[i:i + 16])))


def default_loadgen():
    for sub in ("release", "debug"):
        p = os.path.join(REPO, "target", sub, "synline-loadgen")
        if os.access(p, os.X_OK):
            return p
    return shutil.which("synline-loadgen") or os.path.join(REPO, "target", "release",
                                                           "synline-loadgen")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trex-lib", help="TRex's interactive Python library directory")
    ap.add_argument("--live", action="store_true",
                    help="also capture the real loadgen's SYNs on a veth pair (root)")
    ap.add_argument("--loadgen", default=None, help="synline-loadgen binary for --live")
    ap.add_argument("--count", type=int, default=32, help="SYNs per live run")
    ap.add_argument("--rounds", type=int, default=200,
                    help="random frames per emulated field-engine check")
    ap.add_argument("--seed", type=int, default=None, help="seed of the random values")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every check")
    ap.add_argument("--print-template", action="store_true",
                    help="print the IPv4 linux template from frame.rs and exit")
    ap.add_argument("--capture", help=argparse.SUPPRESS)
    ap.add_argument("--want", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=10, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.capture:
        return capture(a.capture, a.want, a.timeout)

    fr = FrameRs()
    if a.print_template:
        return print_template(fr)
    try:
        import scapy
    except ImportError:
        sys.exit("check_frames: needs scapy for the profile's packets: pip install scapy")
    print("check_frames: scapy %s, frame.rs %s" % (scapy.VERSION, os.path.relpath(FRAME_RS, REPO)))

    seed = a.seed if a.seed is not None else random.getrandbits(32)
    print("check_frames: random seed %d" % seed)
    rng = random.Random(seed)
    c = Checks(a.verbose)
    check_static(c, fr, rng, a.rounds)
    if a.live:
        check_live(c, fr, os.path.abspath(a.loadgen or default_loadgen()), a.count)
    if a.trex_lib:
        # Last: it replaces scapy with TRex's own.
        check_trex(c, fr, rng, a.rounds, os.path.abspath(a.trex_lib))
    print("check_frames: %d passed, %d failed" % (c.passed, c.failed))
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
