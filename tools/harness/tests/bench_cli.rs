// SPDX-License-Identifier: GPL-2.0

//! `vhost-blk-bench --qsd-args`, the daemon arguments the end-to-end demo
//! starts qemu-storage-daemon with: what it prints and what it refuses.

use std::path::Path;
use std::process::{Command, Output};
use vhost_blk_harness::vhost_user::StorageDaemon;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vhost-blk-bench"))
        .args(args)
        .output()
        .expect("run vhost-blk-bench")
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn qsd_args_are_the_benchmarks_daemon_arguments() {
    let out = bench(&["--qsd-args", "/dev/nullb0", "/tmp/vu.sock", "2"]);
    assert!(out.status.success(), "{out:?}");
    let want = StorageDaemon::args(Path::new("/dev/nullb0"), Path::new("/tmp/vu.sock"), 2);
    assert_eq!(lines(&out), want);
    assert!(want.iter().any(|a| a.contains("filename=/dev/nullb0,")));
    assert!(want
        .iter()
        .any(|a| a.contains("addr.path=/tmp/vu.sock,") && a.contains("num-queues=2,")));
}

#[test]
fn qsd_args_double_the_commas_of_paths() {
    let out = bench(&["--qsd-args", "/dev/disk/by-path/a,b", "/tmp/x,y.sock", "1"]);
    assert!(out.status.success(), "{out:?}");
    let got = lines(&out).join(" ");
    assert!(
        got.contains("filename=/dev/disk/by-path/a,,b,cache.direct=on"),
        "{got}"
    );
    assert!(
        got.contains("addr.path=/tmp/x,,y.sock,writable=on"),
        "{got}"
    );
}

#[test]
fn qsd_args_refuse_bad_input_with_a_clear_error() {
    let cases: [(&[&str], &str); 5] = [
        (&["--qsd-args"], "needs DEV SOCKET QUEUES"),
        (
            &["--qsd-args", "/dev/x", "/tmp/s"],
            "needs DEV SOCKET QUEUES",
        ),
        (
            &["--qsd-args", "/dev/x", "/tmp/s", "2", "3"],
            "needs DEV SOCKET QUEUES",
        ),
        (&["--qsd-args", "/dev/x", "/tmp/s", "two"], "queues two"),
        (
            &["--qsd-args", "/dev/x", "/tmp/s", "0"],
            "queues must be 1 or more",
        ),
    ];
    for (args, msg) in cases {
        let out = bench(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            err.contains(msg),
            "{args:?}: stderr {err:?}, expected {msg:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: printed {out:?}");
    }
    // A newline would split an argument in the demo's `mapfile`.
    let out = bench(&["--qsd-args", "/dev/x\ny", "/tmp/s", "1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("a newline in"));
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn an_unknown_scenario_is_refused_with_the_list() {
    let out = bench(&["--out", "/tmp/vb-cli", "--scenarios", "matrix,guestpolls"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown scenario guestpolls"), "{err}");
    assert!(
        err.contains("matrix,iocore,guestpoll,fairness"),
        "the usage lists every scenario: {err}"
    );
    assert!(!Path::new("/tmp/vb-cli").exists(), "nothing was created");
}

#[test]
fn unknown_peers_are_refused_before_anything_runs() {
    let dir = std::env::temp_dir().join(format!("bench-cli-peers-{}", std::process::id()));
    let out = bench(&[
        "--out",
        dir.to_str().unwrap(),
        "--peers",
        "qsd,qsd-matched,qsd-bogus",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(err.contains("--peers: unknown peer qsd-bogus"), "{err}");
    assert!(!dir.exists(), "created {}", dir.display());
}
