//! The CPUs that may cache an address space's translations, kept where a
//! scheduler reaches them without the space's lock.
//!
//! A context switch must add the CPU to the set of the space it loads and
//! remove it from the set of the space it left, and it must do so without
//! waiting for whoever holds the space's lock (a `munmap` of a large range
//! holds it for long, and is itself waiting for this CPU to answer its
//! shootdown). So the set is not a field of [`AddressSpace`] — a field
//! would sit behind whatever lock guards the space, and reading it through
//! a second path while another CPU holds `&mut` would be undefined
//! behaviour — but a word in the space's metadata frame, a frame the space
//! owns for its whole life and that no Rust reference covers. Linux keeps
//! `mm_cpumask` outside `mmap_lock` for the same reason.
//!
//! [`SpaceCpus`] is the handle a scheduler keeps beside the space. It is
//! plain data (two frame numbers, `Copy`); using it is `unsafe`, because
//! after the space is destroyed its frames belong to someone else.
//!
//! [`AddressSpace`]: super::AddressSpace

use core::sync::atomic::AtomicU32;

use super::mode::{Classic, Pae, PagingMode};
use crate::addr::Frame;
use crate::layout::PAGE_SIZE;
use crate::platform::Platform;
use crate::smp::{AtomicCpuSet, CpuSet};

/// Where the set lives in the metadata frame: its last word. The first
/// two bytes per user directory entry (1.5 KiB classic, 3 KiB PAE) hold the
/// page tables' live-entry counts.
pub(super) const CPU_SET_OFFSET: usize = PAGE_SIZE - core::mem::size_of::<u32>();
const _: () = assert!(2 * Classic::KERNEL_DIR_INDEX <= CPU_SET_OFFSET);
const _: () = assert!(2 * Pae::KERNEL_DIR_INDEX <= CPU_SET_OFFSET);
const _: () = assert!(CPU_SET_OFFSET.is_multiple_of(core::mem::align_of::<AtomicU32>()));

/// A handle on one address space's CPU set (and its page directory), for a
/// scheduler that switches CPUs between spaces without taking their locks.
/// Get it from [`AddressSpace::cpus`](super::AddressSpace::cpus).
///
/// The protocol (see `docs/smp.md`): a CPU joins the set before it loads
/// the space's directory ([`activate`](Self::activate)) and leaves it only
/// after it loaded another one ([`leave`](Self::leave)); every operation
/// that narrows a translation reads the set after a `SeqCst` fence and
/// shoots the CPUs in it down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceCpus {
    dir: Frame,
    meta: Frame,
}

impl SpaceCpus {
    /// The handle of the space with directory `dir` and metadata frame
    /// `meta` (a direct-zone frame, zeroed when the space was made).
    pub(super) const fn new(dir: Frame, meta: Frame) -> SpaceCpus {
        SpaceCpus { dir, meta }
    }

    /// The space's page directory (what CR3 holds while it runs).
    pub fn directory(self) -> Frame {
        self.dir
    }

    /// The set itself.
    ///
    /// # Safety
    ///
    /// The space must not have been destroyed, and must not be while the
    /// returned reference lives.
    unsafe fn set<P: Platform + ?Sized>(self, platform: &P) -> &AtomicCpuSet {
        let word = platform.frame_ptr(self.meta).cast::<u8>();
        // SAFETY: the metadata frame is a direct-zone frame the space owns
        // while it lives (the caller's promise), so `frame_ptr` is valid for
        // the frame; the offset is in bounds and aligned (asserted above);
        // the word is only ever accessed atomically, here.
        unsafe { AtomicCpuSet::from_ptr(word.as_ptr().add(CPU_SET_OFFSET).cast()) }
    }

    /// The calling CPU joins the set, then loads the space's directory.
    ///
    /// The order matters: the CPU is added (a `SeqCst` read-modify-write)
    /// before CR3 is loaded, so any walk it makes of this space happens
    /// after it joined. An operation that changes entries and then (after
    /// a `SeqCst` fence, in [`TlbBatch::finish`](super::TlbBatch::finish))
    /// reads the set either sees this CPU and shoots it down, or this
    /// CPU's insert came after the fence and its walks see the changed
    /// entries.
    ///
    /// # Safety
    ///
    /// The space must be alive (not destroyed) and must stay alive while
    /// its directory is loaded; every space's kernel half maps the code
    /// the caller runs, as [`AddressSpace`](super::AddressSpace)s do.
    pub unsafe fn activate<P: Platform + ?Sized>(self, platform: &P) {
        // SAFETY: the caller keeps the space alive.
        unsafe { self.set(platform) }.insert(platform.cpu_id());
        // SAFETY: a live space's directory shares the kernel half, so the
        // code and data the caller runs on stay mapped across the switch.
        unsafe { platform.set_root(self.dir) }
    }

    /// The calling CPU leaves the set. Call it only once the CPU has
    /// loaded another directory (or when it goes offline): the CR3 load is
    /// what drops this space's translations from its TLB. A shootdown that
    /// read the set before the removal targets this CPU needlessly, which
    /// is harmless.
    ///
    /// # Safety
    ///
    /// The space must be alive (not destroyed).
    pub unsafe fn leave<P: Platform + ?Sized>(self, platform: &P) {
        debug_assert!(
            platform.root() != self.dir,
            "leaving the CPU set of the loaded space"
        );
        // SAFETY: the caller keeps the space alive.
        unsafe { self.set(platform) }.remove(platform.cpu_id());
    }

    /// The CPUs that may cache the space's non-global translations now.
    ///
    /// # Safety
    ///
    /// The space must be alive (not destroyed).
    pub unsafe fn load<P: Platform + ?Sized>(self, platform: &P) -> CpuSet {
        // SAFETY: the caller keeps the space alive.
        unsafe { self.set(platform) }.load()
    }
}
