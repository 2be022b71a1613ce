// SPDX-License-Identifier: GPL-2.0

//! Randomized hostile use: a VMM issuing random ioctl sequences with valid
//! and invalid arguments, over rings full of random bytes that the device
//! may really serve. Seeded and time-bounded, so failures reproduce.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use vhost_blk_core::features;
use vhost_blk_core::memory::{MemRegion, UserMemory};
use vhost_blk_core::ring::VringAddrs;
use vhost_blk_core::uapi;

use crate::blk::{pattern, Config, EventFd, TestDevice};
use crate::device::VhostBlk;
use crate::driver::Buf;
use crate::mem::ProcessMemory;
use crate::request::{header, range};
use crate::selftests::io::backend;
use crate::testing::{ctx, CaseResult, Rng, Runner};
use vhost_blk_core::blk::*;
use vhost_blk_core::ring::Descriptor;

/// Registers this area's cases.
pub fn run(r: &mut Runner) {
    crate::cases!(r, hostile_vmm_random_ioctls, hostile_guest_random_rings);
}

/// What the random VMM can pass as a file descriptor.
struct Fds {
    eventfd: EventFd,
    devnull: File,
    disk: File,
    disk_ro: File,
}

impl Fds {
    fn pick(&self, rng: &mut Rng) -> i32 {
        match rng.below(7) {
            0 => -1,
            1 => self.eventfd.fd(),
            2 => self.devnull.as_raw_fd(),
            3 => self.disk.as_raw_fd(),
            4 => self.disk_ro.as_raw_fd(),
            5 => 9999,
            _ => rng.next() as i32,
        }
    }
}

fn random_addr(rng: &mut Rng, mem: &ProcessMemory) -> u64 {
    match rng.below(6) {
        0 => rng.next(),
        1 => 0,
        2 => u64::MAX - rng.below(64),
        _ => mem.base() + (rng.below(mem.end() - mem.base()) & !0xf),
    }
}

fn random_region(rng: &mut Rng, mem: &ProcessMemory) -> MemRegion {
    match rng.below(4) {
        0 => mem.region(),
        1 => MemRegion {
            guest_phys_addr: rng.next(),
            size: rng.next(),
            userspace_addr: rng.next(),
        },
        2 => MemRegion {
            guest_phys_addr: rng.below(1 << 32),
            size: rng.below(1 << 24),
            userspace_addr: mem.base(),
        },
        _ => MemRegion {
            guest_phys_addr: 0,
            size: 0,
            userspace_addr: 0,
        },
    }
}

/// One random ioctl on `dev`; its result is ignored, only the host's
/// survival and the device's later usability matter. Returns whether it
/// attached a backend (and so started whatever queues were configured).
fn random_op(rng: &mut Rng, dev: &VhostBlk, mem: &ProcessMemory, fds: &Fds) -> bool {
    let q = if rng.below(8) == 0 {
        rng.next() as u32
    } else {
        rng.below(4) as u32
    };
    let _ = match rng.below(16) {
        0 => dev.set_owner(),
        1 => dev.reset_owner(),
        2 => dev.set_features(if rng.below(2) == 0 {
            features::SUPPORTED & rng.next()
        } else {
            rng.next()
        }),
        3 => {
            let n = rng.below(5) as usize;
            let regions: Vec<_> = (0..n).map(|_| random_region(rng, mem)).collect();
            dev.set_mem_table(&regions)
        }
        4 => dev.set_vring_num(q, 1 << rng.below(17)),
        5 => {
            let a = VringAddrs {
                desc: random_addr(rng, mem),
                avail: random_addr(rng, mem),
                used: random_addr(rng, mem),
            };
            dev.set_vring_addr(q, &a)
        }
        6 => dev.set_vring_base(q, rng.below(0x1_0002) as u32),
        7 => dev.get_vring_base(q).map(|_| ()),
        8 => dev.set_vring_kick(q, fds.pick(rng)),
        9 => dev.set_vring_call(q, fds.pick(rng)),
        10 => dev.set_vring_err(q, fds.pick(rng)),
        11 => {
            let fd = fds.pick(rng);
            let r = dev.set_backend_flags(fd, if rng.below(8) == 0 { 1 } else { 0 });
            if r.is_ok() && fd >= 0 {
                return true;
            }
            r
        }
        12 => dev.set_serial(&[rng.next() as u8; 20]),
        13 => {
            fds.eventfd.signal();
            Ok(())
        }
        14 => {
            // Scribble over guest memory, rings included.
            let a = mem.base() + rng.below(mem.end() - mem.base() - 64);
            let junk: Vec<u8> = (0..64).map(|_| rng.next() as u8).collect();
            let _ = mem.write(a, &junk);
            Ok(())
        }
        _ => {
            // Any vhost ioctl number with a bad or random pointer.
            let cmd = uapi::ioc(
                rng.below(4) as u32,
                uapi::VHOST_VIRTIO,
                rng.below(0x60) as u32,
                rng.below(64) as usize,
            );
            let ptr = match rng.below(3) {
                0 => std::ptr::null_mut(),
                1 => 0xffff_ffff_8100_0000usize as *mut libc::c_void,
                _ => (mem.base() + rng.below(4096)) as *mut libc::c_void,
            };
            // SAFETY: NULL, a kernel address, or guest memory, which this
            // process only accesses with volatile copies: whatever the
            // random command writes there (64 bytes at most) harms nothing.
            unsafe { dev.ioctl_ptr(cmd, ptr) }.map(|_| ())
        }
    };
    false
}

fn hostile_vmm_random_ioctls() -> CaseResult {
    let (nb, disk) = backend("vbhostile", 16, &[])?;
    let fds = Fds {
        eventfd: ctx(EventFd::new(), "eventfd")?,
        devnull: ctx(File::open("/dev/null"), "/dev/null")?,
        disk_ro: ctx(File::open(nb.path()), "open null_blk ro")?,
        disk,
    };
    let mem = ctx(ProcessMemory::new(1 << 20), "guest memory")?;
    // Random bytes everywhere: whatever rings the VMM points at are junk.
    let mut rng = Rng::new(0x5eed_0001);
    let junk: Vec<u8> = (0..(1 << 20)).map(|_| rng.next() as u8).collect();
    mem.write(mem.base(), &junk)
        .map_err(|_| "fill".to_string())?;
    let deadline = Instant::now() + Duration::from_secs(40);
    let (mut seeds, mut ops, mut attached) = (0u64, 0u64, 0u64);
    for seed in 1.. {
        if Instant::now() >= deadline {
            break;
        }
        let mut rng = Rng::new(seed);
        let dev = ctx(VhostBlk::open(), "open")?;
        for _ in 0..400 {
            attached += u64::from(random_op(&mut rng, &dev, &mem, &fds));
            ops += 1;
        }
        // Closing with whatever the sequence left running must be clean.
        drop(dev);
        seeds += 1;
    }
    println!("  {seeds} seeds, {ops} random ioctls, {attached} backend attaches");
    if attached == 0 {
        return Err("no sequence ever attached a backend: the data plane was not exercised".into());
    }
    // The module still serves a well-behaved VMM.
    let mut t = ctx(
        TestDevice::new(&fds.disk, Config::default()),
        "device after",
    )?;
    let a = t.buf(4096, 4096);
    let r = t.request(
        0,
        vhost_blk_core::blk::VIRTIO_BLK_T_IN,
        0,
        &[crate::driver::Buf::w(a, 4096)],
        false,
    )?;
    if r.0 != vhost_blk_core::blk::VIRTIO_BLK_S_OK {
        return Err(format!("read after the hostile run: status {}", r.0));
    }
    Ok(())
}

/// One random act of a hostile guest on queue 0 of `t`.
/// The healthy queue's sectors (queue 1 of the device).
const HEALTHY_SECTORS: std::ops::Range<u64> = 8192..8704;

/// Queue 0 of a device in the hands of a hostile guest.
struct HostileGuest {
    /// 32 KiB the random acts play in: headers, data, scribbles.
    scratch: u64,
    /// 4 KiB for the writes aimed at the healthy queue's sectors, which
    /// scribbles leave alone.
    aimed: u64,
    /// Descriptors of those writes, which random descriptors leave alone:
    /// they must stay malformed for as long as the device may read them.
    pinned: Vec<u16>,
    /// Aimed writes the device answered (with IOERR or UNSUPP).
    refused: u64,
    /// An aimed write the device answered OK.
    accepted: bool,
}

impl HostileGuest {
    fn act(&mut self, rng: &mut Rng, t: &mut TestDevice) {
        let num = t.cfg.size;
        let scratch = self.scratch;
        match rng.below(7) {
            0 => {
                let d = Descriptor {
                    addr: if rng.below(2) == 0 {
                        scratch + rng.below(8192)
                    } else {
                        rng.next()
                    },
                    // Short enough to stay in the scratch area, or at
                    // least 2 GiB: past guest memory and the module's
                    // 8 MiB bound. A length in between could let a read
                    // land on the aimed status byte or the healthy
                    // queue's buffers, which the checks would blame on
                    // the device.
                    len: if rng.below(3) == 0 {
                        rng.next() as u32 | 1 << 31
                    } else {
                        rng.below(8192) as u32
                    },
                    flags: rng.below(8) as u16,
                    next: rng.below(u64::from(num) + 2) as u16,
                };
                let i = rng.below(u64::from(num)) as u16;
                if !self.pinned.contains(&i) {
                    t.queues[0].ring.write_desc(&t.mem, i, d);
                }
            }
            1 => t.queues[0]
                .ring
                .push_avail(&t.mem, rng.below(u64::from(num) + 2) as u16),
            2 => {
                let idx = t.queues[0]
                    .ring
                    .avail_idx()
                    .wrapping_add(rng.below(3) as u16);
                t.queues[0].ring.set_avail_idx(&t.mem, idx);
            }
            3 => {
                // A request of random type, sector and shape, its data
                // readable (a disk write, for the types that write) or
                // writable.
                let h = scratch + 16 * rng.below(64);
                let ty = rng.below(16) as u32;
                // Far below the healthy queue's sectors (a chain carries at
                // most 256 buffers of under 8 KiB: 4096 sectors), or far
                // past the end: a guest may write its own disk, not the
                // test's reference data (the aimed writes below go there).
                let sector = if rng.below(2) == 0 {
                    rng.below(HEALTHY_SECTORS.start - 4096)
                } else {
                    rng.next() | 1 << 40
                };
                let _ = t.mem.write(h, &header(ty, sector));
                let len = (rng.below(16) * 512) as u32 + if rng.below(4) == 0 { 7 } else { 0 };
                let data = if rng.below(2) == 0 {
                    Buf::w(scratch + 4096, len)
                } else {
                    Buf::r(scratch + 4096, len)
                };
                let bufs = [Buf::r(h, 16), data, Buf::w(scratch + 8191, 1)];
                let _ = t.queues[0]
                    .ring
                    .add_chain(&t.mem, &bufs[..1 + rng.below(3) as usize]);
            }
            4 => {
                let junk: Vec<u8> = (0..32).map(|_| rng.next() as u8).collect();
                let _ = t.mem.write(scratch + rng.below(8192 - 32), &junk);
            }
            5 => self.aimed_write(rng, t),
            _ => {}
        }
        t.queues[0].kick.signal();
    }

    /// A write or write-zeroes at the healthy queue's sectors, with
    /// readable data, malformed so that the device must refuse it: a
    /// length off the 512-byte grid, a range with reserved flags, data
    /// after the status's writable part, or data outside guest memory.
    fn aimed_write(&mut self, rng: &mut Rng, t: &mut TestDevice) {
        let (h, data, s) = (self.aimed, self.aimed + 512, self.aimed + 4095);
        self.check_answer(t);
        let sector =
            HEALTHY_SECTORS.start + rng.below(HEALTHY_SECTORS.end - HEALTHY_SECTORS.start - 8);
        let zeroes = rng.below(2) == 0;
        let ty = if zeroes {
            VIRTIO_BLK_T_WRITE_ZEROES
        } else {
            VIRTIO_BLK_T_OUT
        };
        let _ = t.mem.write(h, &header(ty, sector));
        let _ = t.mem.write(data, &range(sector, 8, 0x80));
        let bufs = match rng.below(3) {
            // OUT: 519 bytes; WRITE_ZEROES: one range, reserved flags.
            0 if zeroes => vec![Buf::r(h, 16), Buf::r(data, 16), Buf::w(s, 1)],
            0 => vec![Buf::r(h, 16), Buf::r(data, 519), Buf::w(s, 1)],
            1 => vec![
                Buf::r(h, 16),
                Buf::w(data + 2048, 512),
                Buf::r(data, 512),
                Buf::w(s, 1),
            ],
            _ => vec![
                Buf::r(h, 16),
                Buf::r(rng.next() | 1 << 47, 512),
                Buf::w(s, 1),
            ],
        };
        let _ = t.mem.write(s, &[0xff]);
        let Some(head) = t.queues[0].ring.add_chain(&t.mem, &bufs) else {
            return;
        };
        self.pinned
            .extend_from_slice(t.queues[0].ring.chain_ids(head));
    }

    /// Counts the last aimed write's answer, if it came.
    fn check_answer(&mut self, t: &TestDevice) {
        match t.read_status(self.aimed + 4095) {
            0xff => {}
            VIRTIO_BLK_S_OK => self.accepted = true,
            _ => self.refused += 1,
        }
    }
}

/// Random acts on queue 0 while queue 1 writes and verifies its own
/// sectors. Each round ends with a head out of range: by then the hostile
/// ring must be broken (err eventfd), and a broken ring serves nothing
/// more. The healthy queue must never lose a byte, whatever queue 0 did,
/// writes aimed at its sectors included.
fn hostile_guest_random_rings() -> CaseResult {
    let (_nb, disk) = backend("vbguest", 16, &[])?;
    let deadline = Instant::now() + Duration::from_secs(40);
    let (mut rounds, mut acts, mut early, mut verified) = (0u64, 0u64, 0u64, 0u64);
    let mut refused = 0u64;
    for seed in 1.. {
        if Instant::now() >= deadline {
            break;
        }
        let mut rng = Rng::new(seed ^ 0x6a09_e667);
        let cfg = Config {
            queues: 2,
            size: 16,
            ..Config::default()
        };
        let mut t = ctx(TestDevice::new(&disk, cfg), "device")?;
        // Hostile buffers start in the first 8 KiB and are shorter than
        // 8 KiB (or unmapped), so they stay inside these 32 KiB: a guest
        // reading into its own buffers must not clobber the healthy
        // queue's.
        let mut g = HostileGuest {
            scratch: t.buf(32768, 4096),
            aimed: t.buf(4096, 4096),
            pinned: Vec::new(),
            refused: 0,
            accepted: false,
        };
        // No aimed write answered yet.
        t.mem
            .write(g.aimed + 4095, &[0xff])
            .map_err(|_| "status".to_string())?;
        let (wbuf, rbuf) = (t.buf(4096, 4096), t.buf(4096, 4096));
        for i in 0..40u64 {
            for _ in 0..5 {
                g.act(&mut rng, &mut t);
                acts += 1;
            }
            // Meanwhile queue 1 writes and reads back its own sectors.
            let sector = HEALTHY_SECTORS.start + (seed % 64) * 8;
            let data: Vec<u8> = (0..4096).map(|o| pattern(seed + i, o)).collect();
            t.mem.write(wbuf, &data).map_err(|_| "fill".to_string())?;
            let (st, _) = t.request(1, VIRTIO_BLK_T_OUT, sector, &[Buf::r(wbuf, 4096)], false)?;
            let (st2, _) = t.request(1, VIRTIO_BLK_T_IN, sector, &[Buf::w(rbuf, 4096)], false)?;
            let mut got = vec![0u8; 4096];
            t.mem.read(rbuf, &mut got).map_err(|_| "read".to_string())?;
            if st != VIRTIO_BLK_S_OK || st2 != VIRTIO_BLK_S_OK || got != data {
                return Err(format!(
                    "seed {seed}: the healthy queue lost data ({st}/{st2})"
                ));
            }
            verified += 4096;
        }
        g.check_answer(&t);
        if g.accepted {
            return Err(format!(
                "seed {seed}: a malformed write at the healthy queue's sectors got OK"
            ));
        }
        refused += g.refused;
        // End the round with a ring error, unless one came already.
        let q = &mut t.queues[0];
        if q.err.take() != 0 {
            early += 1;
        } else {
            q.ring.push_avail(&t.mem, t.cfg.size + 3);
            q.kick.signal();
            if !q.err.wait(Duration::from_secs(10)) {
                return Err(format!(
                    "seed {seed}: a head out of range did not break the hostile ring"
                ));
            }
        }
        // Broken means stopped: a good request is not served.
        let used = q.ring.used_idx(&t.mem);
        let (h, a, s) = (g.aimed, g.aimed + 1024, g.aimed + 2048);
        t.mem
            .write(h, &header(VIRTIO_BLK_T_IN, 0))
            .map_err(|_| "header".to_string())?;
        if let Some(head) = q
            .ring
            .build_chain(&t.mem, &[Buf::r(h, 16), Buf::w(a, 512), Buf::w(s, 1)])
        {
            q.ring.push_avail(&t.mem, head);
            q.kick.signal();
            std::thread::sleep(Duration::from_millis(50));
            if q.ring.used_idx(&t.mem) != used {
                return Err(format!("seed {seed}: the broken hostile ring kept serving"));
            }
        }
        rounds += 1;
        // Closed in whatever state the hostile queue reached.
    }
    println!(
        "  {rounds} rounds, {acts} hostile acts, {early} rings broken by the acts themselves, {refused} malformed writes at the healthy sectors refused, {verified} bytes verified on the healthy queue"
    );
    if refused == 0 {
        return Err("no malformed write at the healthy sectors was ever answered".into());
    }
    if early * 2 < rounds {
        return Err(format!(
            "only {early} of {rounds} rounds broke their ring by random acts: the acts are too tame"
        ));
    }
    Ok(())
}
