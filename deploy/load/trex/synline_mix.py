"""TRex advanced stateful (ASTF) profile: the completing clients of synline-loadgen's mix mode.

The loadgen's mix mode is a SYN flood plus a given rate of clients that complete their
handshake. TRex stateless (STL, synline_syn_flood.py) sends prepared frames and never answers a
SYN-ACK, so it cannot complete a handshake; TRex's TCP stack (ASTF) can. This profile opens
--cps connections per second (times the -m multiplier) to --dst:--port; each client connects,
sends --request and closes (--close fin), resets (--close rst) or waits for the server to close
first (--close wait). Run it next to the flood: one TRex instance runs in one mode, STL or
ASTF, so the mix takes two instances (see deploy/load/README.md).

    ./t-rex-64 --astf -f synline_mix.py -m 1 -d 60 --astf-client-mask 0x1 -t cps=10000,dst=198.18.0.1
    (or interactively: ./t-rex-64 -i --astf, then in trex-console:
     start -f synline_mix.py -m 1 -t --cps 10000 --dst 198.18.0.1 --port 8080)

Client addresses come from --src-net, by default 198.18.64.0/18: in the benchmarking range,
outside the flood's default prefix (198.18.128.0/17) and the target's /24, so the target's
counters and a capture can tell the two kinds of clients apart (the loadgen tells them apart
by the low bit of the port instead; TRex's TCP stack picks its own ports). The target needs a
route back to it through the TRex client port.

What differs from the loadgen's completing clients: the SYNs are TRex's TCP stack's (its own
options: MSS, and WS and TS when tcp.do_rfc1323 is on, in its own order; its own ISNs and
ports), not the loadgen's template; and the clients send a request and close instead of only
sending the third ACK. The target's server side is the target itself: TRex's server port sees
no SYN (its template only serves a loopback test without a target).

An IPv6 --dst makes every client IPv6: the upper 96 bits of the addresses are the prefixes'
(ipv6.src_msb / ipv6.dst_msb), the lower 32 come from the IPv4 generator, as ASTF does it; the
default client prefix is then 2001:2:0:4000::/112 (a pool of 65536 clients, the order of the
IPv4 default's 16384, not the 2^32 a /64 would give) and the MSS 1440.
"""

import argparse
import ipaddress
import os
import sys

from trex.astf.api import (ASTFAssociationRule, ASTFGlobalInfo, ASTFIPGen, ASTFIPGenDist,
                           ASTFIPGenGlobal, ASTFProfile, ASTFProgram, ASTFTCPClientTemplate,
                           ASTFTCPServerTemplate, ASTFTemplate)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synline_frames as sf  # noqa: E402

DEFAULT_CLIENT_NET = {4: "198.18.64.0/18", 6: "2001:2:0:4000::/112"}
DEFAULT_REQUEST = "GET / HTTP/1.0\r\n\r\n"


def v4_dotted(x):
    return str(ipaddress.IPv4Address(x & 0xFFFFFFFF))


def parse_args(tunables):
    p = argparse.ArgumentParser(
        prog=os.path.basename(__file__),
        description="completing clients for a synline mix run (TRex ASTF)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dst", default=sf.DEFAULT_DST, help="target address (IPv4 or IPv6)")
    p.add_argument("--port", "--dport", type=int, default=sf.DEFAULT_PORT, help="target port")
    p.add_argument("--cps", type=float, default=1000.0,
                   help="new connections per second (before the -m multiplier)")
    p.add_argument("--src-net", "--src_net", default=None,
                   help="client prefix [default: %s, or %s for an IPv6 target]"
                        % (DEFAULT_CLIENT_NET[4], DEFAULT_CLIENT_NET[6]))
    p.add_argument("--request", default=DEFAULT_REQUEST,
                   help="bytes each client sends once connected (\\r and \\n understood)")
    p.add_argument("--close", choices=("fin", "rst", "wait"), default="fin",
                   help="after the request: close (FIN), reset (RST), or wait for the "
                        "server to close first")
    p.add_argument("--mss", type=int, default=None,
                   help="tcp.mss of the clients [default: %d, or %d for an IPv6 target]"
                        % (sf.MSS[4], sf.MSS[6]))
    p.add_argument("--no-ts-ws", "--no_ts_ws", action="store_true",
                   help="no TS or WS option in the SYNs (tcp.do_rfc1323 = 0)")
    p.add_argument("--limit", type=int, default=0,
                   help="connections to open, then stop (0: no limit)")
    a = p.parse_args(list(tunables))
    family = sf.family_of(a.dst)
    if a.src_net is None:
        a.src_net = DEFAULT_CLIENT_NET[family]
    if a.mss is None:
        a.mss = sf.MSS[family]
    sf.check_addresses(a.src_net, a.dst)
    if a.cps < 0.5:
        p.error("--cps %g: ASTF's lowest rate is 0.5" % a.cps)
    if not 0 < a.port < 65536:
        p.error("--port %d: out of range" % a.port)
    a.request = a.request.replace("\\r", "\r").replace("\\n", "\n").encode()
    return a


class SynlineMix(object):
    def get_profile(self, tunables=(), **kwargs):
        a = parse_args(tunables)
        family = sf.family_of(a.dst)
        lo, hi = sf.source_range(a.src_net)
        dst = int(ipaddress.ip_address(a.dst))

        prog_c = ASTFProgram()
        prog_c.connect()
        if a.request:
            prog_c.send(a.request)
        if a.close == "rst":
            prog_c.reset()
        elif a.close == "wait":
            prog_c.wait_for_peer_close()
        # "fin": the program ends, the client closes.

        # Only for a loopback test (TRex's own server port in place of the target).
        prog_s = ASTFProgram()
        prog_s.accept()
        if a.request:
            prog_s.recv(len(a.request))
        if a.close != "wait":
            prog_s.wait_for_peer_close()
        # else the server closes first, at the end of its program.

        ip_gen = ASTFIPGen(
            # No offset: with more client ports than one, they would target other addresses.
            glob=ASTFIPGenGlobal(ip_offset="0.0.0.0"),
            dist_client=ASTFIPGenDist(ip_range=[v4_dotted(lo), v4_dotted(hi)],
                                      distribution="seq"),
            dist_server=ASTFIPGenDist(ip_range=[v4_dotted(dst), v4_dotted(dst)],
                                      distribution="seq"))

        c_info = ASTFGlobalInfo()
        c_info.tcp.mss = a.mss
        if a.no_ts_ws:
            c_info.tcp.do_rfc1323 = 0
        if family == 6:
            net = sf.parse_prefix(a.src_net)
            src_msb = str(ipaddress.IPv6Address(int(net.network_address) & ~0xFFFFFFFF))
            dst_msb = str(ipaddress.IPv6Address(dst & ~0xFFFFFFFF))
            c_info.ipv6.src_msb = src_msb
            c_info.ipv6.dst_msb = dst_msb
            c_info.ipv6.enable = 1

        client = ASTFTCPClientTemplate(program=prog_c, ip_gen=ip_gen, port=a.port, cps=a.cps,
                                       limit=a.limit or None)
        server = ASTFTCPServerTemplate(program=prog_s, assoc=ASTFAssociationRule(port=a.port))
        return ASTFProfile(default_ip_gen=ip_gen,
                           templates=ASTFTemplate(client_template=client,
                                                  server_template=server),
                           default_c_glob_info=c_info)


def register():
    return SynlineMix()
