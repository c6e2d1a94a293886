//! An application processor's TLB observed: it reads a page, the boot CPU
//! changes the page's mapping with a local flush only, the AP reads again
//! (stale or not?), then a one-page shootdown, and a last read. The demo
//! reports it, the SMP tests check it.

use myos_mm::frames::{FrameSource, OwnedFrame, Zone};
use myos_mm::paging::{AddressSpace, PagingMode, PteFlags};
use myos_mm::smp::{CpuId, CpuSet, Invalidate};
use myos_mm::{Page, Platform, VirtAddr};

use crate::mm::{with_kernel_space, Mm};
use crate::smp;

/// Run on another CPU: the word at kernel address `va` (mapped by the
/// caller in the kernel space, which every AP runs on).
fn read_word(va: u32) -> u32 {
    // SAFETY: the caller maps `va` before each call and keeps it mapped
    // until the call has returned.
    unsafe { (va as *const u32).read_volatile() }
}

/// A fresh direct-zone frame whose first word is `value`.
fn stamped_frame(mm: &Mm, value: u32) -> Result<OwnedFrame, &'static str> {
    let frame = mm
        .frames()
        .lock()
        .alloc(Zone::Direct)
        .map_err(|_| "out of frames")?;
    mm.platform().zero_frame(frame.frame());
    mm.platform()
        .write_frame(frame.frame(), 0, &value.to_le_bytes());
    Ok(frame)
}

/// What an AP read through a page whose mapping the boot CPU changed.
#[derive(Clone, Copy, Debug)]
pub struct TlbObservation {
    /// The CPU that read.
    pub cpu: CpuId,
    /// Its first read (caches the translation).
    pub first: u32,
    /// Its read after the remap, before any shootdown.
    pub without_shootdown: u32,
    /// Its read after the shootdown.
    pub after_shootdown: u32,
}

/// The page's first contents.
pub const OLD: u32 = 0x01D0_1D01;
/// Its contents after the remap.
pub const NEW: u32 = 0x0E0E_0E0E;

/// Maps a page at `va` (a free page of the kernel space's user half) to a
/// frame holding [`OLD`], has the first AP read it (its TLB caches the
/// translation), remaps it to a frame holding
/// [`NEW`] with a local flush only, has the AP read again, shoots the page
/// down on the AP and has it read a third time. `None` on one CPU.
pub fn observe_remote_tlb(mm: &Mm, va: u32) -> Result<Option<TlbObservation>, &'static str> {
    let others = smp::online().without(smp::cpu_id());
    let Some(cpu) = others.iter().next() else {
        return Ok(None);
    };
    let page = Page::from_start(VirtAddr::new(va)).map_err(|_| "misaligned")?;
    with_kernel_space!(mm, |kernel| observe_in(
        mm,
        &mut kernel.lock(),
        page,
        cpu,
        others
    ))
}

/// [`observe_remote_tlb`] in the kernel space `space` (locked).
fn observe_in<M: PagingMode>(
    mm: &Mm,
    space: &mut AddressSpace<M>,
    page: Page,
    cpu: CpuId,
    others: CpuSet,
) -> Result<Option<TlbObservation>, &'static str> {
    let va = page.start().as_u32();
    let old = stamped_frame(mm, OLD)?;
    space
        .map(
            mm.platform(),
            &mut mm.frames(),
            page,
            old,
            PteFlags::WRITABLE,
        )
        .map_err(|_| "map failed")?
        .flush(mm.platform());
    let first = smp::run_on(cpu, read_word, va);
    let new = stamped_frame(mm, NEW)?;
    let (replaced, flush) = space
        .remap(
            mm.platform(),
            &mut mm.frames(),
            page,
            new,
            PteFlags::WRITABLE,
        )
        .map_err(|_| "remap failed")?;
    flush.flush(mm.platform());
    let without_shootdown = smp::run_on(cpu, read_word, va);
    mm.platform()
        .shootdown(CpuSet::only(cpu), Invalidate::Pages(&[page]));
    let after_shootdown = smp::run_on(cpu, read_word, va);
    // Only now may the old frame go: no CPU can reach it any more.
    if let Some(f) = replaced {
        mm.frames()
            .lock()
            .release(f)
            .map_err(|_| "release failed")?;
    }
    let (frame, flush) = space
        .unmap(mm.platform(), &mut mm.frames(), page)
        .map_err(|_| "unmap failed")?;
    flush.flush(mm.platform());
    mm.platform().shootdown(others, Invalidate::AllNonGlobal);
    mm.frames()
        .lock()
        .release(frame)
        .map_err(|_| "release failed")?;
    Ok(Some(TlbObservation {
        cpu,
        first,
        without_shootdown,
        after_shootdown,
    }))
}

/// A line describing what the AP saw.
pub fn describe(o: &TlbObservation) -> &'static str {
    match (o.without_shootdown == OLD, o.without_shootdown == NEW) {
        (true, _) => "stale (its TLB kept the old translation until the shootdown)",
        (_, true) => "already new (its TLB had dropped the entry by itself)",
        _ => "neither old nor new (a bug)",
    }
}
