// SPDX-License-Identifier: GPL-2.0

//! Forked children for the selftests that need a second process (a second
//! VMM, or one to kill): the child runs a closure and leaves with
//! `_exit`, telling the parent how far it got through a pipe of text
//! lines; the parent reads them with timeouts, and kills and reaps the
//! child within a deadline.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

/// The parent's end of a pipe of text lines from a child.
pub struct Lines {
    /// The pipe's read end.
    rx: File,
    /// Bytes read but not yet returned as a line.
    buf: Vec<u8>,
}

/// The child's end of a pipe of text lines to its parent.
pub struct Sender(File);

/// A pipe for lines from a child to its parent; both ends close on exec.
pub fn pipe() -> Result<(Lines, Sender), String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is valid for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: two fresh descriptors, each owned by one value from here.
    let (rx, tx) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    Ok((
        Lines {
            rx,
            buf: Vec::new(),
        },
        Sender(tx),
    ))
}

impl Sender {
    /// Sends `line` (a newline is added). Errors are ignored: they mean
    /// the parent is gone, and the child can only carry on.
    pub fn send(&self, line: &str) {
        let _ = (&self.0).write_all(format!("{line}\n").as_bytes());
    }
}

impl Lines {
    /// The next line, waiting up to `timeout`; `None` if none came in
    /// time. Fails once every writer is gone (the child exited) and no
    /// line is left.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<String>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Ok(Some(String::from_utf8_lossy(&line).trim_end().to_string()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut p = libc::pollfd {
                fd: self.rx.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(60_000) as i32) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll on the child's pipe: {e}"));
            }
            if n == 0 {
                if left.is_zero() {
                    return Ok(None);
                }
                continue;
            }
            let mut chunk = [0u8; 512];
            // SAFETY: reads into a live buffer of its length.
            let got =
                unsafe { libc::read(self.rx.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            match got {
                0 => return Err("the child closed its pipe (it exited)".into()),
                n if n < 0 => {
                    return Err(format!(
                        "read the child's pipe: {}",
                        std::io::Error::last_os_error()
                    ))
                }
                n => self.buf.extend_from_slice(&chunk[..n as usize]),
            }
        }
    }

    /// The next line, which must start with `word` and come within
    /// `timeout`; returns the rest of it. A line starting with `error`
    /// is the child's failure and is returned as the error.
    pub fn expect(&mut self, word: &str, timeout: Duration) -> Result<String, String> {
        match self.recv(timeout)? {
            None => Err(format!("the child sent no {word:?} within {timeout:?}")),
            Some(l) => {
                if let Some(why) = l.strip_prefix("error ") {
                    return Err(format!("child: {why}"));
                }
                match l.strip_prefix(word) {
                    Some(rest) => Ok(rest.trim().to_string()),
                    None => Err(format!("the child sent {l:?}, expected {word:?}")),
                }
            }
        }
    }
}

/// A forked child process, killed and reaped (within a deadline) when
/// dropped if the test did not reap it.
pub struct Child {
    /// The child's process id.
    pid: libc::pid_t,
    /// Whether it was reaped (its pid may then be reused).
    reaped: bool,
}

impl Child {
    /// Forks. The child runs `f`, then `_exit`s: with 0 if it returned
    /// `Ok`, 1 after sending `error <reason>` through `report` if it
    /// failed, 2 if it panicked. It never returns into the caller, so no
    /// destructor of the parent's values runs twice.
    ///
    /// Call it while the process has no other thread that could hold a
    /// lock the child needs (the case runner's watchdog thread only waits
    /// on a channel), and create the memory a test must not share
    /// copy-on-write with the child after the fork.
    pub fn spawn(report: &Sender, f: impl FnOnce() -> Result<(), String>) -> Result<Self, String> {
        // SAFETY: see above; the child leaves through `_exit` only.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let code = match r {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    report.send(&format!("error {e}"));
                    1
                }
                Err(_) => {
                    report.send("error the child panicked");
                    2
                }
            };
            // SAFETY: _exit is always safe to call.
            unsafe { libc::_exit(code) };
        }
        Ok(Self { pid, reaped: false })
    }

    /// The child's process id.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Sends SIGKILL.
    pub fn kill(&self) -> Result<(), String> {
        // SAFETY: a signal to our own unreaped child.
        if unsafe { libc::kill(self.pid, libc::SIGKILL) } != 0 {
            return Err(format!("kill: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Reaps the child if it has exited, within `timeout`: its wait status,
    /// or `None` if it is still running then.
    pub fn wait_for(&mut self, timeout: Duration) -> Result<Option<i32>, String> {
        if self.reaped {
            return Err("the child was already reaped".into());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let mut status = 0;
            // SAFETY: `status` is valid for writes.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                return Ok(Some(status));
            }
            if r < 0 {
                return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.kill();
            // A child stuck in the kernel is left behind rather than
            // hanging the runner; the test has failed by then.
            let _ = self.wait_for(Duration::from_secs(10));
        }
    }
}

/// Describes a wait status for messages.
pub fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}
