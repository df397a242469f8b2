-- syn_flood_run.lua -- unattended, timed run of the range set up by syn_flood.pkt
-- Pktgen-DPDK 26.02.x (falls back to the <= 25.08 portStats() signature).
--
--   SYN_SECONDS=10 SYN_OUT=/tmp/pktgen_syn.txt [SYN_DMAC=aa:bb:cc:dd:ee:ff] \
--   pktgen -l 0-2 -n 4 --proc-type auto <port/vdev args> -- -P -m "[1:2].0" \
--          -f syn_flood.pkt -f syn_flood_run.lua
--
-- Writes one line:  pktgen_syn seconds=<s> opackets=<n> obytes=<n> oerrors=<n>
-- to $SYN_OUT and stdout, then quits Pktgen.

local port    = 0
local pl      = tostring(port)
local seconds = tonumber(os.getenv("SYN_SECONDS") or "10")
local dmac    = os.getenv("SYN_DMAC")
local outpath = os.getenv("SYN_OUT") or "/tmp/pktgen_syn.txt"

if dmac ~= nil and #dmac > 0 then
    pktgen.range.dst_mac(pl, "start", dmac)
end

local function tx_stats()
    -- 26.02.x: portStats(portlist) -> t[pid].curr.{opackets,obytes,oerrors}
    local ok, st = pcall(pktgen.portStats, pl)
    if ok and st and st[port] and st[port].curr then
        local c = st[port].curr
        return c.opackets, c.obytes, c.oerrors
    end
    -- <= 25.08.x: portStats(portlist, "port") -> t[pid].{opackets,obytes,oerrors}
    ok, st = pcall(pktgen.portStats, pl, "port")
    if ok and st and st[port] then
        return st[port].opackets, st[port].obytes, st[port].oerrors
    end
    return -1, -1, -1
end

pktgen.stop(pl)
pktgen.clear(pl)          -- zero base line (pktgen_clear_stats)
pktgen.delay(1500)        -- stats are refreshed by a 1 s timer thread
pktgen.start(pl)
pktgen.sleep(seconds)
pktgen.stop(pl)
pktgen.delay(1500)        -- let the timer fold in the last second

local opk, oby, oerr = tx_stats()
local line = string.format("pktgen_syn seconds=%d opackets=%d obytes=%d oerrors=%d\n",
                           seconds, opk, oby, oerr)
local f = io.open(outpath, "w")
if f then f:write(line); f:close() end
io.stdout:write(line)

pktgen.quit()
