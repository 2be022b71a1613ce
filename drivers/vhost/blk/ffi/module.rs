// SPDX-License-Identifier: GPL-2.0

//! References on this module, for work that outlives the file that
//! started it.
//!
//! C header: [`include/linux/module.h`](srctree/include/linux/module.h).

use core::marker::PhantomData;
use kernel::bindings;

/// Proof that this module is held (cannot unload) for as long as the
/// value lives: a file of it being released, say. It stays on the thread
/// that holds the module (it is neither `Send` nor `Sync`).
///
/// # Invariants
///
/// The module is held while the value lives.
pub(crate) struct ModuleHeld(PhantomData<*mut ()>);

impl ModuleHeld {
    /// # Safety
    ///
    /// The caller must hold a reference on the module until the value is
    /// dropped.
    pub(crate) unsafe fn new() -> Self {
        // INVARIANT: guaranteed by the caller.
        Self(PhantomData)
    }

    /// One more reference on the module.
    pub(crate) fn get(&self) -> ModuleRef {
        // SAFETY: the module is held (type invariant), so it is live.
        unsafe { bindings::__module_get(crate::THIS_MODULE.as_ptr()) };
        // INVARIANT: taken above.
        ModuleRef(())
    }
}

/// A reference on this module: it stays loaded until the value is
/// dropped. Held by the queues of a closed device that still had bios in
/// flight.
///
/// # Invariants
///
/// Holds one reference on the module.
pub(crate) struct ModuleRef(());

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: the reference this value holds (type invariant).
        unsafe { bindings::module_put(crate::THIS_MODULE.as_ptr()) };
    }
}
