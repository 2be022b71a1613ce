// SPDX-License-Identifier: GPL-2.0

//! Worker kthreads, and borrowing the owner's mm.
//!
//! C header: [`include/linux/kthread.h`](srctree/include/linux/kthread.h).

use super::bdev::BdevFile;
use super::cpumask::CpuSet;
use super::glue::{self, task_struct};
use super::lent::LentArc;
use super::mm::OwnerMm;
use core::ffi::{c_int, c_void};
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::c_str;
use kernel::error::{from_err_ptr, Error};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;

/// What a kthread started by [`Kthread::spawn`] runs.
pub(crate) trait KthreadBody: Send + Sync + 'static {
    /// The thread's work, on the new kthread. It runs with no address
    /// space but what it adopts into `mm`, and should return once
    /// [`should_stop`] is true (if it returns earlier, the thread waits to
    /// be stopped).
    fn run(self: Arc<Self>, mm: &mut MmSlot);
}

/// The function of a kthread started by [`Kthread::spawn`].
///
/// # Safety
///
/// `data` must carry a reference of an `Arc<T>` (from `into_foreign`),
/// which this function takes over, and the current task must be a
/// kthread that uses no mm.
unsafe extern "C" fn kthread_body<T: KthreadBody>(data: *mut c_void) -> c_int {
    // SAFETY: guaranteed by the caller (`Kthread::spawn`).
    let body = unsafe { <Arc<T> as ForeignOwnable>::from_foreign(data) };
    {
        // SAFETY: a kthread that uses no mm (the caller's guarantee); the
        // slot stays on this stack and is dropped (letting go of its mm)
        // before the thread ends.
        let mut mm = unsafe { MmSlot::new() };
        body.run(&mut mm);
    }
    // `kthread_stop` needs the thread until it is asked to stop.
    while !should_stop() {
        sleep_unless(|| false);
    }
    0
}

/// Drops the reference [`kthread_body`] would have taken over, for a
/// thread stopped before it ran.
///
/// # Safety
///
/// `data` must carry a reference of an `Arc<T>` (from `into_foreign`)
/// that nothing else will consume.
unsafe fn reclaim_body<T: KthreadBody>(data: *mut c_void) {
    // SAFETY: guaranteed by the caller (`Kthread::drop`).
    drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(data) });
}

/// A running kthread.
///
/// A kthread stopped before it first runs never calls its function
/// (`kthread()` checks `KTHREAD_SHOULD_STOP` first), so whatever `data`
/// carries for the function would be lost. `kthread_stop` then returns
/// `-EINTR`, and the wrapper hands `data` to `reclaim` instead.
///
/// # Invariants
///
/// `task` is a kthread created and woken by [`Kthread::spawn`] that has not
/// been stopped;
/// its function returns only once `kthread_should_stop()` is true, and
/// never returns `-EINTR`. `reclaim(data)` is safe to call once if the
/// function never ran.
pub(crate) struct Kthread {
    task: NonNull<task_struct>,
    data: *mut c_void,
    reclaim: unsafe fn(*mut c_void),
}

// SAFETY: kthread_stop and wake_up_process may be called from any thread.
unsafe impl Send for Kthread {}
// SAFETY: `&Kthread` only allows `wake_up_process`, which is thread-safe.
unsafe impl Sync for Kthread {}

impl Kthread {
    /// Starts `vhost-blk-<id>` running `body`, on `cpu` only if given
    /// (unpinned if `cpu` went offline since it was chosen).
    pub(crate) fn spawn<T: KthreadBody>(body: Arc<T>, id: u32, cpu: Option<u32>) -> Result<Self> {
        let data = body.into_foreign().cast_mut();
        // SAFETY: `kthread_body` takes over the reference in `data` on a
        // new kthread, which uses no mm, returns 0 and only once asked to
        // stop; if it never runs, `reclaim_body` releases the reference.
        let thread = unsafe { Self::run(kthread_body::<T>, data, reclaim_body::<T>, id, cpu) };
        if thread.is_err() {
            // SAFETY: the thread never started: nothing took the reference.
            drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(data) });
        }
        thread
    }

    /// Starts `vhost-blk-<id>` running `f(data)`, on `cpu` only if given.
    ///
    /// # Safety
    ///
    /// `f` must be safe to call with `data` on the new thread, must return
    /// only once [`should_stop`] is true, and must never return `-EINTR`.
    /// `reclaim(data)` must be safe to call once, on any thread, if `f`
    /// never runs. If this fails, neither is called.
    unsafe fn run(
        f: unsafe extern "C" fn(*mut c_void) -> c_int,
        data: *mut c_void,
        reclaim: unsafe fn(*mut c_void),
        id: u32,
        cpu: Option<u32>,
    ) -> Result<Self> {
        // SAFETY: the caller vouches for `f`; the name is a format with
        // one `int` argument, which is given.
        let task = from_err_ptr(unsafe {
            bindings::kthread_create_on_node(
                Some(f),
                data,
                bindings::NUMA_NO_NODE,
                c_str!("vhost-blk-%d").as_char_ptr(),
                id as c_int,
            )
        })?;
        let task = NonNull::new(task).ok_or(ENOMEM)?.cast::<task_struct>();
        // INVARIANT: a created kthread whose function obeys kthread_stop,
        // with the caller's promises about `f` and `reclaim`; it starts
        // below.
        let thread = Self {
            task,
            data,
            reclaim,
        };
        // `cpu` was online when it was chosen; if it has gone offline
        // since, the worker runs unpinned, as it would had the CPU gone
        // offline under it.
        if let Some(cpu) = cpu {
            if thread.pin(cpu).is_err() && super::notice_ratelimit() {
                pr_notice!("worker_cpus: CPU {cpu} went offline; vhost-blk-{id} runs unpinned\n");
            }
        }
        // SAFETY: a created kthread, not yet woken.
        unsafe { bindings::wake_up_process(task.as_ptr().cast()) };
        Ok(thread)
    }

    /// The task, for wake-ups.
    pub(super) fn task(&self) -> *mut task_struct {
        self.task.as_ptr()
    }

    /// The thread's pid (in the initial pid namespace).
    pub(crate) fn pid(&self) -> i32 {
        // SAFETY: the task is alive (type invariant); the initial namespace
        // lives for ever.
        unsafe {
            bindings::__task_pid_nr_ns(
                self.task.as_ptr().cast(),
                bindings::pid_type_PIDTYPE_PID,
                core::ptr::addr_of_mut!(bindings::init_pid_ns),
            )
        }
    }

    /// Writes the CPUs the thread may run on, as a cpulist, into `buf`;
    /// returns the text.
    pub(crate) fn cpus<'a>(&self, buf: &'a mut [u8; 64]) -> &'a str {
        // SAFETY: the task is alive; `buf` is valid for its length.
        let n =
            unsafe { glue::vhost_blk_task_cpus(self.task.as_ptr(), buf.as_mut_ptr().cast(), 64) };
        let n = usize::try_from(n).unwrap_or(0).min(buf.len());
        core::str::from_utf8(&buf[..n]).unwrap_or("?")
    }

    /// Pins the thread to `cpu`; fails with `EINVAL` if it is not online.
    pub(crate) fn pin(&self, cpu: u32) -> Result {
        let set = CpuSet::single(cpu)?;
        // SAFETY: the task is alive (type invariant); the mask is copied.
        let ret =
            unsafe { bindings::set_cpus_allowed_ptr(self.task.as_ptr().cast(), set.as_cpumask()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Moves the thread to the CPUs of `bdev`'s NUMA node; returns the node,
    /// or `None` if it is unknown (the thread is left alone).
    pub(crate) fn follow_bdev(&self, bdev: &BdevFile) -> Option<i32> {
        // SAFETY: the task is alive and `bdev` a live block device file.
        let node =
            unsafe { glue::vhost_blk_kthread_follow_bdev(self.task.as_ptr(), bdev.as_ptr()) };
        (node >= 0).then_some(node)
    }
}

impl Drop for Kthread {
    fn drop(&mut self) {
        // SAFETY: the task is a running kthread (type invariant) and is
        // stopped exactly once, here; this waits for its function to return.
        let ret = unsafe { bindings::kthread_stop(self.task.as_ptr().cast()) };
        if ret == EINTR.to_errno() {
            // SAFETY: the function never ran (it never returns -EINTR, by
            // the type invariant), so `data` was never consumed.
            unsafe { (self.reclaim)(self.data) };
        }
    }
}

/// Whether the current kthread was asked to stop.
pub(crate) fn should_stop() -> bool {
    // SAFETY: no preconditions; called from a kthread's function.
    unsafe { bindings::kthread_should_stop() }
}

/// Sleeps unless `pending()` holds or the kthread must stop, without losing
/// a wake-up that races with the check.
pub(crate) fn sleep_unless(pending: impl Fn() -> bool) {
    // SAFETY: setting the current task's state has no preconditions.
    unsafe { glue::vhost_blk_sleep_prepare() };
    if !pending() && !should_stop() {
        // SAFETY: scheduling away is allowed here: process context, no
        // spinlocks held.
        unsafe { bindings::schedule() };
    }
    // SAFETY: no preconditions.
    unsafe { glue::vhost_blk_sleep_cancel() };
}

/// Yields the CPU if a reschedule is due; returns whether it did.
pub(crate) fn cond_resched() -> bool {
    // SAFETY: process context with no spinlocks held (callers' contract).
    unsafe { glue::vhost_blk_cond_resched() }
}

/// The number of online CPUs (a snapshot: CPUs may come and go).
pub(crate) fn online_cpus() -> u32 {
    // SAFETY: reads the kernel's count (`num_online_cpus`), an `atomic_t`
    // read whole, in any context.
    let n = unsafe {
        core::ptr::read_volatile(core::ptr::addr_of!(bindings::__num_online_cpus.counter))
    };
    n as u32
}

/// Tells the worker pool when a CPU comes online, so that it pins the
/// workers the scheduler unpinned when that CPU went offline; a dynamic
/// CPU-hotplug state whose online callback (`vhost_blk_rs_cpu_online` in
/// `entry.rs`) gets a reference of `T`.
///
/// # Invariants
///
/// The hotplug state `state` is registered while this value exists, and
/// its online callback gets the lent data's pointer; at most one exists (the
/// module's init registers it).
pub(crate) struct CpuOnlineHook<T: Send + Sync + 'static> {
    _data: LentArc<T>,
    state: c_int,
}

impl<T: Send + Sync> CpuOnlineHook<T> {
    /// Registers the hook for `data`.
    ///
    /// # Safety
    ///
    /// `T` must be the type `vhost_blk_rs_cpu_online` takes its data as,
    /// and no other `CpuOnlineHook` may exist.
    pub(crate) unsafe fn register(data: Arc<T>) -> Result<Self> {
        let data = LentArc::new(data);
        // SAFETY: `data` stays lent until the state is unregistered (in
        // `drop`), and is reclaimed on failure with nothing registered;
        // the callback takes it as a `T` (the caller's guarantee).
        let state = unsafe { glue::vhost_blk_cpuhp_register(data.as_ptr()) };
        if state < 0 {
            return Err(Error::from_errno(state));
        }
        // INVARIANT: registered above with `data`.
        Ok(Self { _data: data, state })
    }
}

impl<T: Send + Sync> Drop for CpuOnlineHook<T> {
    fn drop(&mut self) {
        // SAFETY: registered by `register`; unregistering waits for
        // running callbacks, so `data` may be reclaimed when it drops.
        unsafe { glue::vhost_blk_cpuhp_unregister(self.state) };
    }
}

/// Lets the worker pool stop, from a work item, the workers that let go
/// of their last queue themselves ([`reap_soon`]); the work's callback
/// (`vhost_blk_rs_reap` in `entry.rs`) gets a reference of `T`.
///
/// # Invariants
///
/// The reaping work of `glue.c` has the lent data's pointer while this value
/// exists; at most one exists (the module's init registers it).
pub(crate) struct ReapHook<T: Send + Sync + 'static> {
    _data: LentArc<T>,
}

impl<T: Send + Sync> ReapHook<T> {
    /// Registers the reaping of `data`.
    ///
    /// # Safety
    ///
    /// `T` must be the type `vhost_blk_rs_reap` takes its data as, and no
    /// other `ReapHook` may exist.
    pub(crate) unsafe fn register(data: Arc<T>) -> Self {
        let data = LentArc::new(data);
        // SAFETY: `data` stays lent until unregistered in `drop`; the
        // work takes it as a `T` (the caller's guarantee).
        unsafe { glue::vhost_blk_reap_register(data.as_ptr()) };
        // INVARIANT: registered above with `data`.
        Self { _data: data }
    }
}

impl<T: Send + Sync> Drop for ReapHook<T> {
    fn drop(&mut self) {
        // SAFETY: registered by `register`; unregistering waits for a
        // running reaping and prevents new ones, so `data` may be
        // reclaimed when it drops.
        unsafe { glue::vhost_blk_reap_unregister() };
    }
}

/// Asks for the reaping soon, from a work item. Never sleeps.
pub(crate) fn reap_soon() {
    // SAFETY: no preconditions; does nothing once the hook is gone.
    unsafe { glue::vhost_blk_reap_schedule() };
}

/// The owner mm a worker kthread has adopted (`kthread_use_mm`), so that
/// user copies and pinning reach the owner's address space. It is kept
/// from one turn to the next while the worker serves queues of the same
/// address space, and switched only for a queue of another one: adopting
/// an mm costs an address-space switch. The worker lets it go before it
/// sleeps ([`MmSlot::release`]), so an idle worker pins no process's mm.
///
/// # Invariants
///
/// While `mm` is `Some`, the kthread that created this value uses that mm,
/// and this value lives on that kthread (it is neither `Send` nor `Sync`).
pub(crate) struct MmSlot {
    mm: Option<Arc<OwnerMm>>,
    _not_send: PhantomData<*mut ()>,
}

impl MmSlot {
    /// An empty slot.
    ///
    /// # Safety
    ///
    /// Must be called on a kthread that uses no mm, which keeps the value
    /// and uses no mm other than through it.
    unsafe fn new() -> Self {
        // INVARIANT: `mm` is `None`.
        Self {
            mm: None,
            _not_send: PhantomData,
        }
    }

    /// Makes `mm`'s address space the kthread's, switching from the one
    /// it uses if that is another.
    pub(crate) fn adopt(&mut self, mm: &Arc<OwnerMm>) {
        // An mm held here stays live, so an equal pointer is the same mm.
        if self.mm.as_ref().map(|cur| cur.as_ptr()) == Some(mm.as_ptr()) {
            return;
        }
        self.release();
        // SAFETY: by the type invariant the kthread uses no mm now (the
        // slot is empty), and the clone kept below holds a reference that
        // keeps the mm live for as long as it is used.
        unsafe { bindings::kthread_use_mm(mm.as_ptr()) };
        // INVARIANT: adopted above.
        self.mm = Some(mm.clone());
    }

    /// Lets the adopted mm go, if any.
    pub(crate) fn release(&mut self) {
        if let Some(mm) = self.mm.take() {
            // SAFETY: by the type invariant the kthread uses this mm.
            unsafe { bindings::kthread_unuse_mm(mm.as_ptr()) };
        }
    }
}

impl Drop for MmSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Monotonic time in nanoseconds (`ktime_get_ns`).
pub(crate) fn now_ns() -> u64 {
    // SAFETY: no preconditions.
    let ns = unsafe { bindings::ktime_get() };
    ns as u64
}
