// SPDX-License-Identifier: GPL-2.0

//! Sets of CPUs, and which CPUs are online.
//!
//! C header: [`include/linux/cpumask.h`](srctree/include/linux/cpumask.h).
//!
//! A set is `NR_CPUS` bits in words, as `struct cpumask`; only the first
//! `nr_cpu_ids` bits are used. The cpumask operations are static inlines,
//! so the few needed are written here over the words.

use core::ffi::{c_int, c_ulong, CStr};
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::bindings;
use kernel::prelude::*;

/// Words in a set (`BITS_TO_LONGS(NR_CPUS)`).
const WORDS: usize = core::mem::size_of::<bindings::cpumask>() / core::mem::size_of::<c_ulong>();
const BITS: u32 = c_ulong::BITS;

/// The number of possible CPU ids (`nr_cpu_ids`): every CPU id is below it.
fn nr_cpu_ids() -> u32 {
    // SAFETY: set at boot and never written afterwards.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(bindings::nr_cpu_ids)) }
}

/// Word `i` of `cpu_online_mask`, now. Hotplug changes its bits with atomic
/// bit operations; a reader takes one word at a time, as the C ones do.
fn online_word(i: usize) -> usize {
    debug_assert!(i < WORDS);
    // SAFETY: a word of the kernel's mask (`i` is below `WORDS`), read
    // whole.
    let word = unsafe {
        core::ptr::read_volatile(core::ptr::addr_of!(bindings::__cpu_online_mask.bits[i]))
    };
    word as usize
}

/// Whether `cpu` is online now.
pub(crate) fn cpu_online(cpu: u32) -> bool {
    cpu < nr_cpu_ids() && online_word((cpu / BITS) as usize) & (1 << (cpu % BITS)) != 0
}

/// Writes the CPUs below `nr_cpu_ids` for which `has` holds as a cpulist
/// (`%*pbl`): `0-3,6`, nothing for none.
fn write_list(f: &mut fmt::Formatter<'_>, has: impl Fn(u32) -> bool) -> fmt::Result {
    let n = nr_cpu_ids();
    let mut sep = "";
    let mut cpu = 0;
    while cpu < n {
        if !has(cpu) {
            cpu += 1;
            continue;
        }
        let first = cpu;
        while cpu + 1 < n && has(cpu + 1) {
            cpu += 1;
        }
        if first == cpu {
            write!(f, "{sep}{first}")?;
        } else {
            write!(f, "{sep}{first}-{cpu}")?;
        }
        sep = ",";
        cpu += 1;
    }
    Ok(())
}

/// A set of CPUs.
pub(crate) struct CpuSet {
    words: [usize; WORDS],
}

impl CpuSet {
    /// The set a cpulist (`0-3,6`, as `cpulist_parse` reads it; a trailing
    /// newline is allowed) names; `EINVAL` if it is not one, or names a
    /// CPU id that cannot exist.
    pub(crate) fn parse_list(text: &CStr) -> Result<KBox<Self>> {
        let mut set = KBox::new(Self { words: [0; WORDS] }, GFP_KERNEL)?;
        let nbits = c_int::try_from(nr_cpu_ids()).map_err(|_| EINVAL)?;
        // SAFETY: a NUL-terminated string, and `WORDS` words of bits, at
        // least `nr_cpu_ids` (`c_ulong` is `usize` on every architecture
        // the kernel's Rust supports).
        let ret = unsafe {
            bindings::bitmap_parselist(text.as_ptr().cast(), set.words.as_mut_ptr().cast(), nbits)
        };
        if ret != 0 {
            return Err(EINVAL);
        }
        Ok(set)
    }

    /// The set of `cpu` alone; `EINVAL` if no CPU can have that id.
    pub(crate) fn single(cpu: u32) -> Result<KBox<Self>> {
        if cpu >= nr_cpu_ids() {
            return Err(EINVAL);
        }
        let mut set = KBox::new(Self { words: [0; WORDS] }, GFP_KERNEL)?;
        set.words[(cpu / BITS) as usize] |= 1 << (cpu % BITS);
        Ok(set)
    }

    /// The set as a `struct cpumask`, for the kernel to copy.
    pub(crate) fn as_cpumask(&self) -> *const bindings::cpumask {
        // `words` is `NR_CPUS` bits in `c_ulong`s, as `struct cpumask`.
        self.words.as_ptr().cast()
    }

    /// Whether `cpu` is in the set.
    pub(crate) fn contains(&self, cpu: u32) -> bool {
        self.words
            .get((cpu / BITS) as usize)
            .is_some_and(|w| w & (1 << (cpu % BITS)) != 0)
    }

    /// Whether every CPU of the set is online now.
    pub(crate) fn all_online(&self) -> bool {
        (0..WORDS).all(|i| self.words[i] & !online_word(i) == 0)
    }

    /// The CPUs of the set that are not online now, as a cpulist.
    pub(crate) fn offline(&self) -> impl fmt::Display + '_ {
        Offline(self)
    }
}

struct Offline<'a>(&'a CpuSet);

impl fmt::Display for Offline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, |cpu| self.0.contains(cpu) && !cpu_online(cpu))
    }
}

/// A set of CPUs that readers may use while a writer replaces it, word by
/// word: a reader racing a writer may see words of both sets, each whole.
pub(crate) struct AtomicCpuSet {
    words: [AtomicUsize; WORDS],
}

impl AtomicCpuSet {
    /// The empty set.
    pub(crate) const fn new() -> Self {
        Self {
            words: [const { AtomicUsize::new(0) }; WORDS],
        }
    }

    /// Replaces the set with `set`.
    pub(crate) fn store(&self, set: &CpuSet) {
        for (w, &v) in self.words.iter().zip(set.words.iter()) {
            w.store(v, Ordering::Relaxed);
        }
    }

    fn word(&self, i: usize) -> usize {
        self.words[i].load(Ordering::Relaxed)
    }

    /// Whether `cpu` is in the set.
    pub(crate) fn contains(&self, cpu: u32) -> bool {
        self.words
            .get((cpu / BITS) as usize)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (cpu % BITS)) != 0)
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        (0..WORDS).all(|i| self.word(i) == 0)
    }

    /// How many CPUs of the set are online now.
    pub(crate) fn online_count(&self) -> u32 {
        (0..WORDS)
            .map(|i| (self.word(i) & online_word(i)).count_ones())
            .sum()
    }

    /// The `n`-th (from 0) CPU of the set that is online now, if there is
    /// one.
    pub(crate) fn nth_online(&self, mut n: u32) -> Option<u32> {
        for i in 0..WORDS {
            let mut word = self.word(i) & online_word(i);
            let ones = word.count_ones();
            if n >= ones {
                n -= ones;
                continue;
            }
            for _ in 0..n {
                word &= word - 1;
            }
            let cpu = i as u32 * BITS + word.trailing_zeros();
            return (cpu < nr_cpu_ids()).then_some(cpu);
        }
        None
    }
}

/// As a cpulist (`%*pbl`): `0-3,6`, empty for the empty set.
impl fmt::Display for AtomicCpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, |cpu| self.contains(cpu))
    }
}
