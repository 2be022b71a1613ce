// SPDX-License-Identifier: GPL-2.0

//! The reader of `<debugfs>/vhost-blk/stats`: the versions it takes, and
//! the kinds and keys it must ignore.

use vhost_blk_harness::stats::{Stats, STATS_VERSION, STATS_VERSION_OLDEST};

const BODY: &str = "worker id=0 pid=93 cpus=0-1 queues=1 busy_ns=5 future=1\n\
                    device id=4 backend=251:0\n\
                    vq device=4 index=0 worker=0 requests=7 busy_ns=3\n\
                    newkind a=b\n";

#[test]
fn reads_every_version_it_knows() {
    for v in STATS_VERSION_OLDEST..=STATS_VERSION {
        let s = Stats::parse(&format!("version {v}\n{BODY}")).expect("parse");
        assert_eq!(s.workers.len(), 1, "version {v}");
        assert_eq!(s.vq(4, 0).expect("vq line").num("requests"), 7);
    }
}

#[test]
fn refuses_versions_it_does_not_know() {
    for first in [
        format!("version {}", STATS_VERSION_OLDEST - 1),
        format!("version {}", STATS_VERSION + 1),
        "version x".to_string(),
        "worker id=0".to_string(),
        String::new(),
    ] {
        assert!(
            Stats::parse(&format!("{first}\n{BODY}")).is_err(),
            "took {first:?}"
        );
    }
}
