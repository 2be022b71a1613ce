// SPDX-License-Identifier: GPL-2.0

//! Fuzzes descriptor-chain walking and virtio-blk request parsing of the
//! pure core; see `vhost_blk_harness::fuzz::chain_and_request`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vhost_blk_harness::fuzz::chain_and_request(data);
});
