//! One handshake end to end through the harness: the base the rule tests build on.
mod util;
use synline_core::{ListenerConfig, Mib};
use util::*;

#[test]
fn handshake_v4_and_v6_make_children() {
    for (mut h, mut p) in [
        (
            Harness::new(ListenerConfig::default(), 128),
            Peer::v4(40000),
        ),
        (
            Harness::on(v6_server(), ListenerConfig::default(), 128),
            Peer::v6(40000),
        ),
    ] {
        let synack = handshake(&mut h, &mut p);
        assert!(synack.is_synack());
        let c = h.accept().expect("child on the accept list");
        assert_eq!(c.remote, p.addr);
        assert_eq!(c.iss, p.iss);
        assert_eq!(c.irs, p.isn);
        assert_eq!(c.snd_wscale, Some(7));
        assert!(c.sack);
        assert!(c.timestamps.is_some());
        let s = h.stats();
        assert_eq!(s.get(Mib::PassiveOpens), 1);
        assert_eq!(h.qlen(), 0);
        assert_eq!(h.young(), 0);
        assert_eq!(h.stack.live_requests(), 0);
    }
}
