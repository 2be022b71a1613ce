// SPDX-License-Identifier: GPL-2.0

//! A vhost-user front-end (the VMM's side of the protocol) for the
//! benchmarks' fair peer: `qemu-storage-daemon --export
//! type=vhost-user-blk`.
//!
//! It speaks just enough of the protocol (docs/interop/vhost-user.rst in
//! QEMU) to hand the back-end a shared memory table and split rings, with
//! the same [`DriverRing`]s and eventfds the vhost-blk harness uses, so a
//! workload runs unchanged against either back-end.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use vhost_blk_core::features;

use crate::blk::{EventFd, Queue};
use crate::driver::DriverRing;
use crate::mem::{BumpAllocator, ProcessMemory};

/// How long a vhost-user request may wait for its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

const GET_FEATURES: u32 = 1;
const SET_FEATURES: u32 = 2;
const SET_OWNER: u32 = 3;
const SET_MEM_TABLE: u32 = 5;
const SET_VRING_NUM: u32 = 8;
const SET_VRING_ADDR: u32 = 9;
const SET_VRING_BASE: u32 = 10;
const GET_VRING_BASE: u32 = 11;
const SET_VRING_KICK: u32 = 12;
const SET_VRING_CALL: u32 = 13;
const SET_VRING_ERR: u32 = 14;
const GET_PROTOCOL_FEATURES: u32 = 15;
const SET_PROTOCOL_FEATURES: u32 = 16;
const GET_QUEUE_NUM: u32 = 17;
const SET_VRING_ENABLE: u32 = 18;

/// Message header flags: protocol version 1, and the reply bit.
const FLAG_VERSION: u32 = 0x1;
const FLAG_REPLY: u32 = 0x4;

/// `VHOST_USER_F_PROTOCOL_FEATURES`, a virtio feature bit of the protocol.
const F_PROTOCOL_FEATURES: u64 = 1 << 30;
/// `VHOST_USER_PROTOCOL_F_MQ`.
const PROTOCOL_F_MQ: u64 = 1 << 0;

/// A connection to a vhost-user back-end serving one virtio-blk device.
pub struct VhostUserBlk {
    sock: UnixStream,
    /// Guest memory, a shared memfd mapping the back-end maps too.
    pub mem: ProcessMemory,
    /// Allocator of guest buffers.
    pub alloc: BumpAllocator,
    /// The queues.
    pub queues: Vec<Queue>,
    /// The virtio features acked.
    pub features: u64,
}

impl VhostUserBlk {
    /// Connects to the socket at `path` (waiting up to `wait` for it to
    /// appear), negotiates `want` (intersected with what the back-end
    /// offers) and starts `queues` queues of `size` entries over `mem_mib`
    /// MiB of shared guest memory.
    pub fn connect(
        path: &Path,
        wait: Duration,
        want: u64,
        queues: u32,
        size: u16,
        mem_mib: usize,
    ) -> io::Result<Self> {
        let deadline = Instant::now() + wait;
        let sock = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("connect {}: {e}", path.display()),
                    ))
                }
            }
        };
        // A back-end that stops answering fails the caller, not hangs it.
        sock.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let mem = ProcessMemory::new_shared(mem_mib << 20)?;
        let alloc = BumpAllocator::new(mem.base(), mem.end());
        let mut me = Self {
            sock,
            mem,
            alloc,
            queues: Vec::new(),
            features: 0,
        };
        me.start(want, queues, size)?;
        Ok(me)
    }

    fn start(&mut self, want: u64, nqueues: u32, size: u16) -> io::Result<()> {
        let offered = self.get_u64(GET_FEATURES)?;
        if offered & F_PROTOCOL_FEATURES == 0 {
            return Err(proto("the back-end lacks VHOST_USER_F_PROTOCOL_FEATURES"));
        }
        let pf = self.get_u64(GET_PROTOCOL_FEATURES)?;
        self.send(
            SET_PROTOCOL_FEATURES,
            &(pf & PROTOCOL_F_MQ).to_le_bytes(),
            &[],
        )?;
        if nqueues > 1 {
            if pf & PROTOCOL_F_MQ == 0 {
                return Err(proto("the back-end has one queue only"));
            }
            let max = self.get_u64(GET_QUEUE_NUM)?;
            if u64::from(nqueues) > max {
                return Err(proto(&format!(
                    "the back-end has {max} queues, {nqueues} wanted"
                )));
            }
        }
        self.send(SET_OWNER, &[], &[])?;
        self.features = offered & (want | F_PROTOCOL_FEATURES);
        for f in [features::VIRTIO_F_VERSION_1] {
            if self.features & features::bit(f) == 0 {
                return Err(proto(&format!("the back-end lacks feature bit {f}")));
            }
        }
        self.send(SET_FEATURES, &self.features.to_le_bytes(), &[])?;

        let memfd = self
            .mem
            .memfd()
            .ok_or_else(|| proto("guest memory is not shared"))?
            .as_raw_fd();
        let r = self.mem.region();
        let mut table = Vec::with_capacity(40);
        table.extend(1u32.to_le_bytes());
        table.extend(0u32.to_le_bytes());
        for v in [r.guest_phys_addr, r.size, r.userspace_addr, 0] {
            table.extend(v.to_le_bytes());
        }
        self.send(SET_MEM_TABLE, &table, &[memfd])?;

        for q in 0..nqueues {
            let ring = DriverRing::new(&self.mem, &mut self.alloc, size);
            let queue = Queue {
                ring,
                kick: EventFd::new()?,
                call: EventFd::new()?,
                err: EventFd::new()?,
            };
            self.send(SET_VRING_NUM, &state(q, u32::from(size)), &[])?;
            self.send(SET_VRING_BASE, &state(q, 0), &[])?;
            let a = queue.ring.addrs();
            let mut addr = Vec::with_capacity(40);
            addr.extend(q.to_le_bytes());
            addr.extend(0u32.to_le_bytes());
            for v in [a.desc, a.used, a.avail, 0] {
                addr.extend(v.to_le_bytes());
            }
            self.send(SET_VRING_ADDR, &addr, &[])?;
            let idx = u64::from(q).to_le_bytes();
            self.send(SET_VRING_KICK, &idx, &[queue.kick.fd()])?;
            self.send(SET_VRING_CALL, &idx, &[queue.call.fd()])?;
            self.send(SET_VRING_ERR, &idx, &[queue.err.fd()])?;
            self.queues.push(queue);
        }
        for q in 0..nqueues {
            self.send(SET_VRING_ENABLE, &state(q, 1), &[])?;
        }
        Ok(())
    }

    /// Stops queue `q` (`GET_VRING_BASE`) and returns the back-end's next
    /// avail index.
    pub fn stop_queue(&mut self, q: u32) -> io::Result<u32> {
        self.send(SET_VRING_ENABLE, &state(q, 0), &[])?;
        self.send(GET_VRING_BASE, &state(q, 0), &[])?;
        let reply = self.recv(GET_VRING_BASE)?;
        if reply.len() != 8 {
            return Err(proto("short GET_VRING_BASE reply"));
        }
        Ok(u32::from_le_bytes(reply[4..8].try_into().unwrap()))
    }

    fn get_u64(&mut self, request: u32) -> io::Result<u64> {
        self.send(request, &[], &[])?;
        let reply = self.recv(request)?;
        let b: [u8; 8] = reply.as_slice().try_into().map_err(|_| {
            proto(&format!(
                "request {request}: reply of {} bytes",
                reply.len()
            ))
        })?;
        Ok(u64::from_le_bytes(b))
    }

    fn send(&self, request: u32, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
        let mut msg = Vec::with_capacity(12 + payload.len());
        msg.extend(request.to_le_bytes());
        msg.extend(FLAG_VERSION.to_le_bytes());
        msg.extend((payload.len() as u32).to_le_bytes());
        msg.extend_from_slice(payload);
        send_with_fds(self.sock.as_raw_fd(), &msg, fds)
    }

    fn recv(&self, request: u32) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut hdr = [0u8; 12];
        (&self.sock)
            .read_exact(&mut hdr)
            .map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no reply to vhost-user request {request} in {} s",
                        REPLY_TIMEOUT.as_secs()
                    ),
                ),
                _ => e,
            })?;
        let req = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
        let flags = u32::from_le_bytes(hdr[4..8].try_into().unwrap());
        let size = u32::from_le_bytes(hdr[8..12].try_into().unwrap());
        if req != request || flags & FLAG_REPLY == 0 || size > 4096 {
            return Err(proto(&format!(
                "reply {req} (flags {flags:#x}, {size} bytes) to request {request}"
            )));
        }
        let mut body = vec![0u8; size as usize];
        (&self.sock).read_exact(&mut body)?;
        Ok(body)
    }
}

fn state(index: u32, num: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&index.to_le_bytes());
    b[4..].copy_from_slice(&num.to_le_bytes());
    b
}

fn proto(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("vhost-user: {what}"))
}

/// Sends `buf` in one message, with `fds` as `SCM_RIGHTS`.
fn send_with_fds(sock: RawFd, buf: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let fd_bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
    let mut cmsg_buf = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = cmsg_buf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: `msg` has a control buffer of `space` bytes, enough for
        // one header and `fds`; CMSG_FIRSTHDR/CMSG_DATA point inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(fd_bytes) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(c),
                fd_bytes as usize,
            );
        }
    }
    // SAFETY: `msg` points at live buffers for the duration of the call.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != buf.len() {
        return Err(proto("short send"));
    }
    Ok(())
}

/// The daemon [`StorageDaemon::use_program`] chose.
static PROGRAM: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// A `qemu-storage-daemon` exporting one block device as vhost-user-blk,
/// killed when dropped. Its QMP monitor, on a socket beside the export's,
/// sets how long its iothread polls ([`StorageDaemon::set_poll_max_ns`]).
pub struct StorageDaemon {
    child: std::process::Child,
    sock: std::path::PathBuf,
    qmp: std::path::PathBuf,
    /// The iothread's `poll-max-ns` as the daemon started: QEMU's default.
    default_poll_max_ns: u64,
}

impl StorageDaemon {
    /// The program run: the one [`StorageDaemon::use_program`] chose,
    /// else `$QEMU_STORAGE_DAEMON`, else `qemu-storage-daemon` on the
    /// `PATH`.
    pub fn program() -> String {
        if let Some(p) = PROGRAM.get() {
            return p.display().to_string();
        }
        std::env::var("QEMU_STORAGE_DAEMON").unwrap_or_else(|_| "qemu-storage-daemon".into())
    }

    /// Runs the daemon at `path` from now on (`tools/testing/qemu.sh`
    /// builds QEMU's with the patched QEMU). The first choice stands.
    pub fn use_program(path: &Path) -> io::Result<()> {
        if !path.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no qemu-storage-daemon at {}", path.display()),
            ));
        }
        let _ = PROGRAM.set(path.to_path_buf());
        Ok(())
    }

    /// The first line of the program's `--version`, e.g.
    /// `qemu-storage-daemon version 10.0.2`.
    pub fn version() -> io::Result<String> {
        let out = std::process::Command::new(Self::program())
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", Self::program())))?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().next() {
            Some(line) if out.status.success() => Ok(line.trim().to_string()),
            _ => Err(io::Error::other(format!(
                "{} --version: {}",
                Self::program(),
                out.status
            ))),
        }
    }

    /// Exports `dev` with `num_queues` queues on a socket at `sock`, with
    /// `O_DIRECT` and Linux AIO, served by one iothread (the
    /// configuration QEMU's documentation recommends for performance;
    /// [`StorageDaemon::args`]).
    ///
    /// A daemon that dies before it listens is started again, up to three
    /// times in all, each death reported on stderr: Debian's 7.2 daemon
    /// once died of SIGSEGV while starting, between two benchmark phases
    /// that had both started it without trouble, which cost the whole run.
    pub fn start(dev: &Path, sock: &Path, num_queues: u32) -> io::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_once(dev, sock, num_queues) {
                Err(StartError::Died(why)) if attempt < 3 => {
                    eprintln!("{why}; starting it again (attempt {})", attempt + 1);
                    attempt += 1;
                }
                Err(StartError::Died(why)) => return Err(io::Error::other(why)),
                Err(StartError::Io(e)) => return Err(e),
                Ok(me) => return Ok(me),
            }
        }
    }

    /// The daemon's arguments for [`StorageDaemon::start`]: `dev` opened
    /// with `O_DIRECT` and Linux AIO, exported on `sock` with `num_queues`
    /// queues served by one iothread. The end-to-end demo
    /// (`tools/testing/e2e-l1.sh`) starts its daemon with the same ones
    /// (`vhost-blk-bench --qsd-args`). Commas in the paths are doubled,
    /// as QEMU's option syntax wants.
    pub fn args(dev: &Path, sock: &Path, num_queues: u32) -> Vec<String> {
        let escape = |p: &Path| p.display().to_string().replace(',', ",,");
        vec![
            "--blockdev".into(),
            format!(
                "driver=host_device,node-name=disk,filename={},cache.direct=on,aio=native",
                escape(dev)
            ),
            "--object".into(),
            "iothread,id=iot0".into(),
            "--export".into(),
            format!(
                "type=vhost-user-blk,id=exp0,node-name=disk,addr.type=unix,addr.path={},\
                 writable=on,num-queues={num_queues},iothread=iot0",
                escape(sock)
            ),
        ]
    }

    fn start_once(dev: &Path, sock: &Path, num_queues: u32) -> Result<Self, StartError> {
        let mut qmp = sock.as_os_str().to_owned();
        qmp.push(".qmp");
        let qmp = std::path::PathBuf::from(qmp);
        let _ = std::fs::remove_file(sock);
        let _ = std::fs::remove_file(&qmp);
        let escape = |p: &Path| p.display().to_string().replace(',', ",,");
        // The daemon sets up its options in order: the monitor first. Both
        // sockets are waited for below.
        let child = std::process::Command::new(Self::program())
            .args([
                "--chardev".into(),
                format!("socket,id=qmp0,path={},server=on,wait=off", escape(&qmp)),
                "--monitor".into(),
                "chardev=qmp0".into(),
            ])
            .args(Self::args(dev, sock, num_queues))
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", Self::program())))?;
        let mut me = Self {
            child,
            sock: sock.to_path_buf(),
            qmp,
            default_poll_max_ns: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for path in [me.qmp.clone(), me.sock.clone()] {
            while !path.exists() {
                if let Some(st) = me.child.try_wait()? {
                    return Err(StartError::Died(format!(
                        "{} exited with {st} before creating {}",
                        Self::program(),
                        path.display()
                    )));
                }
                if Instant::now() >= deadline {
                    return Err(StartError::Io(io::Error::other(format!(
                        "{} did not create {} in 30 s",
                        Self::program(),
                        path.display()
                    ))));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        me.default_poll_max_ns = me.poll_max_ns()?;
        Ok(me)
    }

    /// Runs one QMP command (a JSON object) on a fresh connection to the
    /// daemon's monitor and returns the value of its `"return"` member, as
    /// JSON text. A QMP error, or a monitor that does not answer in 10 s,
    /// is an error.
    fn qmp(&self, command: &str) -> io::Result<String> {
        use std::io::{BufRead, BufReader, Write};

        let what =
            |e: io::Error| io::Error::new(e.kind(), format!("QMP {}: {e}", self.qmp.display()));
        let stream = UnixStream::connect(&self.qmp).map_err(what)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(what)?;
        let mut writer = stream.try_clone().map_err(what)?;
        let mut reader = BufReader::new(stream);
        // The greeting, then the capabilities negotiation, then the command;
        // asynchronous events in between are skipped.
        let answer = |reader: &mut BufReader<UnixStream>, want: &str| -> io::Result<String> {
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).map_err(what)? == 0 {
                    return Err(io::Error::other(format!(
                        "QMP {}: monitor closed the connection",
                        self.qmp.display()
                    )));
                }
                let line = line.trim();
                if line.starts_with("{\"event\"") {
                    continue;
                }
                if let Some(v) = line.strip_prefix(want).and_then(|v| v.strip_suffix('}')) {
                    return Ok(v.trim().to_string());
                }
                return Err(io::Error::other(format!(
                    "QMP {}: unexpected answer {line}",
                    self.qmp.display()
                )));
            }
        };
        answer(&mut reader, "{\"QMP\":")?;
        let mut value = String::new();
        for cmd in ["{\"execute\": \"qmp_capabilities\"}", command] {
            writer.write_all(cmd.as_bytes()).map_err(what)?;
            writer.write_all(b"\n").map_err(what)?;
            value = answer(&mut reader, "{\"return\":")?;
        }
        Ok(value)
    }

    /// The iothread's `poll-max-ns`: how long it polls, at most, before it
    /// sleeps (adaptively: QEMU grows and shrinks the time it actually
    /// polls within this bound).
    pub fn poll_max_ns(&self) -> io::Result<u64> {
        let v = self.qmp(
            "{\"execute\": \"qom-get\", \"arguments\": \
             {\"path\": \"/objects/iot0\", \"property\": \"poll-max-ns\"}}",
        )?;
        v.parse()
            .map_err(|_| io::Error::other(format!("QMP qom-get poll-max-ns: not a number: {v}")))
    }

    /// Sets the iothread's `poll-max-ns` to `ns`, or back to the daemon's
    /// default (QEMU's, 32 us in QEMU 7.2) for `None`, and checks that it
    /// took.
    pub fn set_poll_max_ns(&self, ns: Option<u64>) -> io::Result<()> {
        let ns = ns.unwrap_or(self.default_poll_max_ns);
        self.qmp(&format!(
            "{{\"execute\": \"qom-set\", \"arguments\": \
             {{\"path\": \"/objects/iot0\", \"property\": \"poll-max-ns\", \"value\": {ns}}}}}"
        ))?;
        let got = self.poll_max_ns()?;
        if got != ns {
            return Err(io::Error::other(format!(
                "QMP qom-set poll-max-ns {ns}: reads back {got}"
            )));
        }
        Ok(())
    }

    /// The iothread's `poll-max-ns` when the daemon started.
    pub fn default_poll_max_ns(&self) -> u64 {
        self.default_poll_max_ns
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.sock
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Why [`StorageDaemon::start_once`] failed.
enum StartError {
    /// The daemon died before it listened.
    Died(String),
    /// Anything else: not retried.
    Io(io::Error),
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl Drop for StorageDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
        let _ = std::fs::remove_file(&self.qmp);
    }
}
