#!/usr/bin/env bash
# The upstream Linux router of a synline fleet: hash flows on the 4-tuple (policy 1: L4) so a
# connection's segments take one next hop, and let BGP install every equal path.
set -eu
sysctl -w net.ipv4.fib_multipath_hash_policy=1
sysctl -w net.ipv6.fib_multipath_hash_policy=1
# In FRR on the router:  router bgp 65000 / address-family ipv4 unicast / maximum-paths 8
# Check:  ip route show 198.18.100.1   ->  "nexthop via 198.18.2.2 ... nexthop via 198.18.3.2 ..."
