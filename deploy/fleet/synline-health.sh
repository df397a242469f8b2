#!/usr/bin/env bash
# Ties the BGP announcement of the service address to synline's health: while
# http://127.0.0.1:9464/healthz answers 200 (the daemon runs its workers), FRR has a static
# route for the VIP and announces it (frr.conf: redistribute static); when it stops answering
# for two checks in a row, the route goes and the routers stop sending new flows here.
# Connections already established keep their path only as long as the routers keep theirs:
# after a withdrawal their segments go to another host, which has no socket for them.
set -u
VIP=${VIP:-198.18.100.1/32}
URL=${URL:-http://127.0.0.1:9464/healthz}
announced=unknown
fails=0
announce() { vtysh -c 'configure terminal' -c "ip route $VIP Null0" >/dev/null && announced=yes; }
withdraw() { vtysh -c 'configure terminal' -c "no ip route $VIP Null0" >/dev/null && announced=no; }
trap 'withdraw; exit 0' TERM INT
while true; do
    if curl -fsS -m 1 -o /dev/null "$URL"; then
        fails=0
        [ "$announced" = yes ] || { announce; logger -t synline-health "announcing $VIP"; }
    else
        fails=$((fails + 1))
        if [ "$fails" -ge 2 ] && [ "$announced" != no ]; then
            withdraw
            logger -t synline-health "withdrew $VIP: synline unhealthy"
        fi
    fi
    sleep 1
done
