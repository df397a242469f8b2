"""TRex stateless (STL) profile: the SYN flood of synline-loadgen, for a real NIC.

Every frame is the loadgen's template SYN (bench/src/bin/loadgen/frame.rs: same Ethernet, IP
and TCP header bytes, same options for --options none|mss|linux) with, per frame, a random
source address within --src-net, a random even source port in [1024, 65534] (the loadgen's
flood clears the low bit, which marks completing flows) and a random ISN, checksums fixed by
the NIC. One difference: the ISN. The loadgen's is a keyed hash of address and port
(fmix32(fmix32(addr ^ k0) ^ (port << 16 | port) ^ k1)), which its XDP program recomputes to
check each SYN-ACK without keeping state; TRex's field engine cannot compute it (see
synline_frames.field_plan), so the ISN here is random, and nothing on the TRex side checks the
SYN-ACKs: count them with TRex's port counters (ipackets on the port that receives them) and
the target's own counters instead.

    start -f synline_syn_flood.py -m 1mpps --port 0 -t options=linux,dst=198.18.0.1,port=8080
    start -f synline_syn_flood.py -m 1mpps --port 0 -t --options mss --dst 2001:2::1
    start -f synline_syn_flood.py -t --help

The family follows --dst. --src-net defaults to the loadgen's: 198.18.128.0/17 (IPv4, in the
benchmarking range 198.18.0.0/15) or 2001:2:0:8000::/64 (IPv6: only the last 32 bits are
drawn). The target needs a route back to it through the TRex port. MACs are TRex's (the port's
and trex_cfg.yaml's dest_mac or default_gw) unless --src-mac / --dst-mac are given.

Checksums use STLVmFixChecksumHw: the NIC must offer IPv4 and TCP transmit checksum offload
(Intel X710/E810, NVIDIA ConnectX and most server NICs do; do not start TRex with
--checksum-offload-disable). Without it the TCP checksum of every frame is wrong and the target
drops them all (its TcpInCsumErrors counter shows it: the kernel's, or synline's own).

`direction` (the port's parity) is ignored: the flood goes one way, to --dst.
"""

import argparse
import os
import random
import sys

from trex_stl_lib.api import (CTRexVmInsFixHwCs, STLPktBuilder, STLScVmRaw, STLStream,
                              STLTXCont, STLTXSingleBurst, STLVmFixChecksumHw, STLVmFlowVar,
                              STLVmWrFlowVar, STLVmWrMaskFlowVar)

# TRex puts the profile's directory on sys.path while it loads it; so does this, for any other
# loader.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synline_frames as sf  # noqa: E402


def to_vm(plan):
    """The field-engine objects for synline_frames.field_plan()'s instructions."""
    ins = []
    for p in plan:
        t = p["type"]
        if t == "flow_var":
            ins.append(STLVmFlowVar(name=p["name"], min_value=p["min_value"],
                                    max_value=p["max_value"], size=p["size"], op=p["op"]))
        elif t == "write_flow_var":
            ins.append(STLVmWrFlowVar(fv_name=p["name"], pkt_offset=p["pkt_offset"],
                                      add_val=p["add_value"], is_big=p["is_big_endian"]))
        elif t == "write_mask_flow_var":
            ins.append(STLVmWrMaskFlowVar(fv_name=p["name"], pkt_offset=p["pkt_offset"],
                                          pkt_cast_size=p["pkt_cast_size"], mask=p["mask"],
                                          shift=p["shift"], add_value=p["add_value"],
                                          is_big=p["is_big_endian"]))
        elif t == "fix_checksum_hw":
            assert p["l4_type"] == CTRexVmInsFixHwCs.L4_TYPE_TCP
            ins.append(STLVmFixChecksumHw(l3_offset=p["l2_len"],
                                          l4_offset=p["l2_len"] + p["l3_len"],
                                          l4_type=CTRexVmInsFixHwCs.L4_TYPE_TCP))
        else:
            raise ValueError("unknown instruction %r" % t)
    return STLScVmRaw(ins)


def parse_args(tunables):
    p = argparse.ArgumentParser(
        prog=os.path.basename(__file__),
        description="SYN flood with synline-loadgen's frames (TRex STL)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--options", choices=sf.OPTION_SETS, default=sf.DEFAULT_OPTIONS,
                   help="TCP options of the SYNs: none; MSS; MSS, SACK-permitted, TS, NOP, "
                        "WS 7 in Linux's order")
    p.add_argument("--dst", default=sf.DEFAULT_DST,
                   help="target address (IPv4 or IPv6: the family of the frames)")
    p.add_argument("--port", "--dport", type=int, default=sf.DEFAULT_PORT,
                   help="target port")
    p.add_argument("--src-net", "--src_net", default=None,
                   help="client prefix: sources are drawn at random within it [default: "
                        "%s, or %s for an IPv6 target]" % (sf.DEFAULT_SRC_NET[4],
                                                          sf.DEFAULT_SRC_NET[6]))
    p.add_argument("--tsval", type=lambda s: int(s, 0), default=None,
                   help="TSval of the linux option set, one per run as in the loadgen "
                        "[default: random, odd]")
    p.add_argument("--src-mac", "--src_mac", default=None,
                   help="source MAC [default: the TRex port's]")
    p.add_argument("--dst-mac", "--dst_mac", default=None,
                   help="destination MAC [default: trex_cfg.yaml's dest_mac / default_gw]")
    p.add_argument("--count", type=int, default=0,
                   help="SYNs to send, then stop (0: until stopped)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the field engine's random values (0: a new one each run)")
    a = p.parse_args(list(tunables))
    family = sf.family_of(a.dst)
    if a.src_net is None:
        a.src_net = sf.DEFAULT_SRC_NET[family]
    sf.check_addresses(a.src_net, a.dst)
    if not 0 < a.port < 65536:
        p.error("--port %d: out of range" % a.port)
    if a.tsval is None:
        a.tsval = random.getrandbits(32) | 1
    return a


class SynlineSynFlood(object):
    def get_streams(self, direction=0, tunables=(), **kwargs):
        a = parse_args(tunables)
        family = sf.family_of(a.dst)
        pkt = sf.syn_packet(a.src_net, a.dst, a.port, a.options, a.tsval,
                            src_mac=a.src_mac, dst_mac=a.dst_mac)
        vm = to_vm(sf.field_plan(family, a.src_net, a.options))
        mode = STLTXSingleBurst(total_pkts=a.count) if a.count > 0 else STLTXCont()
        return [STLStream(packet=STLPktBuilder(pkt=pkt, vm=vm), mode=mode,
                          random_seed=a.seed)]


def register():
    return SynlineSynFlood()
