// SPDX-License-Identifier: GPL-2.0

//! The guest's virtio-blk driver, over `/dev/vhost-blk`: sets a device up
//! like a VMM would, submits requests on its queues and waits for them.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use vhost_blk_core::blk::*;
use vhost_blk_core::features;
use vhost_blk_core::memory::UserMemory;
use vhost_blk_core::ring::VRING_AVAIL_F_NO_INTERRUPT;

use crate::device::VhostBlk;
use crate::driver::{Buf, DriverRing};
use crate::mem::{BumpAllocator, ProcessMemory};
use crate::request::header;

/// How long a device may take from publishing a used entry to signalling
/// the call eventfd. The signal follows the used index in the same worker
/// turn, so this covers only scheduling delay (a debug kernel under TCG
/// included), with a wide margin.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(5);

/// An eventfd.
pub struct EventFd(File);

impl EventFd {
    /// A new non-blocking eventfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: no pointer arguments.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        Ok(Self(unsafe { File::from_raw_fd(fd) }))
    }

    /// The descriptor.
    pub fn fd(&self) -> i32 {
        self.0.as_raw_fd()
    }

    /// Adds 1.
    pub fn signal(&self) {
        let v = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer.
        unsafe { libc::write(self.fd(), v.as_ptr().cast(), 8) };
    }

    /// Reads and resets the counter (0 if it was 0).
    pub fn take(&self) -> u64 {
        let mut v = [0u8; 8];
        // SAFETY: reads 8 bytes into a live buffer.
        let n = unsafe { libc::read(self.fd(), v.as_mut_ptr().cast(), 8) };
        if n == 8 {
            u64::from_ne_bytes(v)
        } else {
            0
        }
    }

    /// Waits up to `timeout` for the counter to become non-zero (without
    /// resetting it).
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
        n == 1
    }
}

/// One queue of a test device: its driver ring and eventfds.
pub struct Queue {
    /// The ring.
    pub ring: DriverRing,
    /// Kick (guest to host).
    pub kick: EventFd,
    /// Call (host to guest).
    pub call: EventFd,
    /// Err (ring broken).
    pub err: EventFd,
}

/// How to set a device up.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Number of queues.
    pub queues: u32,
    /// Queue size.
    pub size: u16,
    /// Features to ack.
    pub features: u64,
    /// Guest memory, in MiB.
    pub mem_mib: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            queues: 1,
            size: 128,
            features: features::SUPPORTED,
            mem_mib: 32,
        }
    }
}

/// A device set up with rings and a backend, and the guest memory.
pub struct TestDevice {
    /// The vhost-blk device.
    pub dev: VhostBlk,
    /// Guest memory (identity mapped).
    pub mem: ProcessMemory,
    /// Allocator of guest buffers.
    pub alloc: BumpAllocator,
    /// The queues.
    pub queues: Vec<Queue>,
    /// The configuration.
    pub cfg: Config,
}

/// The result of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// Head id from the used ring.
    pub id: u32,
    /// Used length.
    pub len: u32,
}

impl TestDevice {
    /// Opens, owns, configures `cfg.queues` queues and attaches `backend`.
    pub fn new(backend: &File, cfg: Config) -> io::Result<Self> {
        Self::with_memory(backend, cfg, ProcessMemory::new(cfg.mem_mib << 20)?)
    }

    /// [`TestDevice::new`] over the guest memory `mem` (`cfg.mem_mib` is
    /// not used).
    pub fn with_memory(backend: &File, cfg: Config, mem: ProcessMemory) -> io::Result<Self> {
        let dev = VhostBlk::open()?;
        dev.set_owner()?;
        dev.set_features(cfg.features)?;
        dev.set_mem_table(&[mem.region()])?;
        let mut alloc = BumpAllocator::new(mem.base(), mem.end());
        let mut queues = Vec::new();
        for q in 0..cfg.queues {
            let ring = DriverRing::new(&mem, &mut alloc, cfg.size);
            let queue = Queue {
                ring,
                kick: EventFd::new()?,
                call: EventFd::new()?,
                err: EventFd::new()?,
            };
            dev.set_vring_num(q, u32::from(cfg.size))?;
            dev.set_vring_base(q, 0)?;
            dev.set_vring_addr(q, &queue.ring.addrs())?;
            dev.set_vring_kick(q, queue.kick.fd())?;
            dev.set_vring_call(q, queue.call.fd())?;
            dev.set_vring_err(q, queue.err.fd())?;
            queues.push(queue);
        }
        dev.set_backend(backend.as_raw_fd())?;
        Ok(Self {
            dev,
            mem,
            alloc,
            queues,
            cfg,
        })
    }

    /// A guest buffer of `len` bytes aligned to `align`.
    pub fn buf(&mut self, len: u64, align: u64) -> u64 {
        self.alloc.alloc(len, align)
    }

    /// Writes a request header into guest memory; returns its address.
    pub fn header(&mut self, ty: u32, sector: u64) -> u64 {
        let h = self.buf(16, 16);
        self.mem.write(h, &header(ty, sector)).expect("header");
        h
    }

    /// A status byte preset to 0xff, so a status the device never wrote
    /// shows.
    pub fn status(&mut self) -> u64 {
        let s = self.buf(1, 1);
        self.mem.write(s, &[0xff]).expect("status");
        s
    }

    /// The status byte at `addr`.
    pub fn read_status(&self, addr: u64) -> u8 {
        status_at(&self.mem, addr)
    }

    /// Adds `bufs` to queue `q` (indirect if `table` is given) and kicks.
    pub fn submit(&mut self, q: usize, bufs: &[Buf], indirect: bool) -> u16 {
        let head = if indirect {
            let table = self.buf(16 * bufs.len() as u64, 16);
            self.queues[q].ring.add_indirect(&self.mem, table, bufs)
        } else {
            self.queues[q].ring.add_chain(&self.mem, bufs)
        };
        let head = head.expect("free descriptors");
        self.queues[q].kick.signal();
        head
    }

    /// Adds `bufs` to queue `q` as a direct chain and kicks only if the
    /// device asked for kicks (as a real driver does, so that the device's
    /// notification suppression is exercised). Returns the head and
    /// whether it kicked.
    pub fn submit_notify(&mut self, q: usize, bufs: &[Buf]) -> (u16, bool) {
        let old = self.queues[q].ring.avail_idx();
        let head = self.queues[q]
            .ring
            .add_chain(&self.mem, bufs)
            .expect("free descriptors");
        let event_idx = self.cfg.features & features::bit(features::VIRTIO_RING_F_EVENT_IDX) != 0;
        let kick = self.queues[q].ring.needs_kick(&self.mem, old, event_idx);
        if kick {
            self.queues[q].kick.signal();
        }
        (head, kick)
    }

    /// Completed requests of queue `q` so far, without waiting.
    pub fn poll_used(&mut self, q: usize) -> Vec<Done> {
        let mut done = Vec::new();
        while let Some((id, len)) = self.queues[q].ring.pop_used(&self.mem) {
            done.push(Done { id, len });
        }
        done
    }

    /// Whether the device's rings use EVENT_IDX.
    pub fn event_idx(&self) -> bool {
        self.cfg.features & features::bit(features::VIRTIO_RING_F_EVENT_IDX) != 0
    }

    /// Waits until `n` requests of queue `q` completed, up to `timeout`,
    /// asking for interrupts as a driver does: with EVENT_IDX, `used_event`
    /// follows the entries taken (`virtqueue_enable_cb`); without it, the
    /// avail flags are left as they are.
    ///
    /// The call eventfd is the oracle, not a hint: used entries the driver
    /// asked to be told of must be followed by a call signal within
    /// [`SIGNAL_GRACE`], or the wait fails. Entries published while
    /// `used_event` still pointed before them, and any entry while
    /// `VRING_AVAIL_F_NO_INTERRUPT` is set without EVENT_IDX, are not owed
    /// a signal. A signal is taken to cover every entry visible after it
    /// (a late signal for older entries may cover newer ones, so a device
    /// that drops some signals can slip through; one that never signals
    /// cannot).
    pub fn wait(&mut self, q: usize, n: usize, timeout: Duration) -> Result<Vec<Done>, String> {
        let event_idx = self.event_idx();
        let deadline = Instant::now() + timeout;
        let mut done = Vec::new();
        // The first used index that needs a signal (EVENT_IDX).
        let mut owed_from = self.arm_call(q);
        // Since when used entries owed a signal have been seen without it.
        let mut unsignalled: Option<Instant> = None;
        loop {
            let queue = &mut self.queues[q];
            let signalled = queue.call.take() != 0;
            if signalled {
                unsignalled = None;
            }
            let wanted =
                event_idx || queue.ring.avail_flags(&self.mem) & VRING_AVAIL_F_NO_INTERRUPT == 0;
            let mut owed = false;
            while let Some((id, len)) = queue.ring.pop_used(&self.mem) {
                let idx = queue.ring.last_used().wrapping_sub(1);
                owed |= wanted && (!event_idx || idx.wrapping_sub(owed_from) < 0x8000);
                done.push(Done { id, len });
            }
            if owed && !signalled {
                unsignalled.get_or_insert_with(Instant::now);
            }
            if event_idx {
                owed_from = self.arm_call(q);
            }
            let now = Instant::now();
            if let Some(since) = unsignalled {
                if now - since >= SIGNAL_GRACE {
                    return Err(format!(
                        "queue {q}: used entries published without the call signal the \
                         driver asked for ({} completed)",
                        done.len()
                    ));
                }
            }
            if done.len() >= n && unsignalled.is_none() {
                return Ok(done);
            }
            if self.queues[q].err.take() != 0 {
                return Err(format!("queue {q}: the device signalled a ring error"));
            }
            if done.len() < n && now >= deadline {
                return Err(format!(
                    "queue {q}: {} of {n} requests completed before the timeout",
                    done.len()
                ));
            }
            let left = match unsignalled {
                Some(since) => SIGNAL_GRACE.saturating_sub(now - since),
                None => deadline.saturating_duration_since(now),
            };
            // Re-reads the ring now and then anyway: entries the driver did
            // not ask to be told of arrive without a signal.
            self.queues[q]
                .call
                .wait(left.min(Duration::from_millis(100)));
        }
    }

    /// With EVENT_IDX, asks for a signal at the next used entry
    /// (`used_event` = the next entry to take) and returns the used index
    /// seen after that, from which entries are owed a signal: entries
    /// before it may have been published against the old `used_event`.
    /// Without EVENT_IDX returns the next entry to take.
    fn arm_call(&mut self, q: usize) -> u16 {
        let ring = &self.queues[q].ring;
        if !self.event_idx() {
            return ring.last_used();
        }
        ring.set_used_event(&self.mem, ring.last_used());
        // Dekker with the device's add_used/should_signal: either it sees
        // the new used_event, or this read sees its new used index.
        self.mem.full_barrier();
        ring.used_idx(&self.mem)
    }

    /// Waits until the device has consumed `n` chains of queue `q` (the
    /// `avail_event` it publishes with EVENT_IDX), up to `timeout`.
    pub fn wait_consumed(&self, q: usize, n: u16, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.queues[q].ring.avail_event(&self.mem);
            if seen >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "queue {q}: the device consumed {seen} of {n} chains"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Performs one request and returns (status, used length).
    pub fn request(
        &mut self,
        q: usize,
        ty: u32,
        sector: u64,
        data: &[Buf],
        indirect: bool,
    ) -> Result<(u8, u32), String> {
        let h = self.header(ty, sector);
        let s = self.status();
        let mut bufs = vec![Buf::r(h, 16)];
        bufs.extend_from_slice(data);
        bufs.push(Buf::w(s, 1));
        let head = self.submit(q, &bufs, indirect);
        let d = self.wait(q, 1, Duration::from_secs(30))?;
        if d[0].id != u32::from(head) {
            return Err(format!("used id {} for head {head}", d[0].id));
        }
        Ok((self.read_status(s), d[0].len))
    }
}

/// A deterministic byte pattern for `seed` at byte offset `off`.
pub fn pattern(seed: u64, off: u64) -> u8 {
    let x = (seed ^ off.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    (x >> 56) as u8
}

/// Status names for messages.
pub fn status_name(s: u8) -> &'static str {
    match s {
        VIRTIO_BLK_S_OK => "OK",
        VIRTIO_BLK_S_IOERR => "IOERR",
        VIRTIO_BLK_S_UNSUPP => "UNSUPP",
        _ => "not written",
    }
}

/// Performs one request on `queue` of any back-end whose rings live in
/// `mem` (vhost-blk or vhost-user): header, `data`, status; waits up to
/// `timeout` and returns (status, used length).
pub fn request_on(
    mem: &ProcessMemory,
    alloc: &mut BumpAllocator,
    queue: &mut Queue,
    ty: u32,
    sector: u64,
    data: &[Buf],
    timeout: Duration,
) -> Result<(u8, u32), String> {
    let h = alloc.alloc(16, 16);
    mem.write(h, &header(ty, sector))
        .map_err(|_| "header".to_string())?;
    let s = alloc.alloc(1, 1);
    mem.write(s, &[0xff]).map_err(|_| "status".to_string())?;
    let mut bufs = vec![Buf::r(h, 16)];
    bufs.extend_from_slice(data);
    bufs.push(Buf::w(s, 1));
    let head = queue
        .ring
        .add_chain(mem, &bufs)
        .ok_or("no free descriptors")?;
    queue.kick.signal();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((id, len)) = queue.ring.pop_used(mem) {
            if id != u32::from(head) {
                return Err(format!("used id {id} for head {head}"));
            }
            let mut st = [0u8];
            mem.read(s, &mut st).map_err(|_| "status".to_string())?;
            return Ok((st[0], len));
        }
        if queue.err.take() != 0 {
            return Err("the back-end signalled a ring error".into());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err("no completion before the timeout".into());
        }
        queue
            .call
            .wait((deadline - now).min(Duration::from_millis(100)));
        queue.call.take();
    }
}

/// The status byte at `addr` of `mem` (for memory kept after its device
/// was closed; [`TestDevice::read_status`] otherwise).
pub fn status_at(mem: &ProcessMemory, addr: u64) -> u8 {
    let mut b = [0u8];
    mem.read(addr, &mut b).expect("status");
    b[0]
}
