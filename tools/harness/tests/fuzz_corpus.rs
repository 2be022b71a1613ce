// SPDX-License-Identifier: GPL-2.0

//! Replays the `cargo fuzz` corpus of `tools/fuzz/` through the same fuzz
//! body with stable Rust, so every input that once found something, and
//! every seed, keeps being checked by `cargo test`.

use std::fs;
use std::path::Path;

#[test]
fn replay_chain_and_request_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/chain_and_request");
    let mut n = 0;
    for e in fs::read_dir(&dir).expect("corpus directory") {
        let p = e.expect("entry").path();
        let data = fs::read(&p).expect("corpus file");
        vhost_blk_harness::fuzz::chain_and_request(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus at {}", dir.display());
    println!("replayed {n} inputs");
}
