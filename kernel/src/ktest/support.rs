//! What every test subject shares: the result type, the `check!` macro,
//! the test addresses, and helpers that stamp frames and map fresh ones.

use myos_mm::frames::{FrameSource, Zone};
use myos_mm::paging::{AddressSpace, PagingMode, PteFlags};
use myos_mm::{Frame, Page, Platform, VirtAddr};

use crate::mm::Mm;

/// A failed check: what went wrong.
pub type TestResult = Result<(), &'static str>;

/// Fails the test with `msg` unless `cond` holds.
macro_rules! check {
    ($cond:expr, $msg:expr) => {
        if !$cond {
            return Err($msg);
        }
    };
}
pub(crate) use check;

/// A kernel-half test address in the user half of the kernel space (no
/// process runs there): mapped supervisor-only, page by page.
pub(super) const TEST_VA: u32 = 0x1000_0000;
/// A second test address, in another page table.
pub(super) const TEST_VA2: u32 = 0x2040_0000;

/// Writes `value` into the first word of `frame`.
pub(super) fn stamp(mm: &Mm, frame: Frame, value: u32) {
    mm.platform().write_frame(frame, 0, &value.to_le_bytes());
}

/// Reads the first word of `frame`.
pub(super) fn read_stamp(mm: &Mm, frame: Frame) -> u32 {
    let mut b = [0u8; 4];
    mm.platform().read_frame(frame, 0, &mut b);
    u32::from_le_bytes(b)
}

/// Maps a fresh frame at `va` in the kernel space with `flags`.
pub(super) fn map_fresh<M: PagingMode>(
    mm: &Mm,
    space: &mut AddressSpace<M>,
    va: u32,
    flags: PteFlags,
    zone: Zone,
) -> Result<Frame, &'static str> {
    let frame = mm
        .frames()
        .lock()
        .alloc(zone)
        .map_err(|_| "out of frames")?;
    let number = frame.frame();
    mm.platform().zero_frame(number);
    let page = Page::from_start(VirtAddr::new(va)).map_err(|_| "misaligned")?;
    space
        .map(mm.platform(), &mut mm.frames(), page, frame, flags)
        .map_err(|_| "map failed")?
        .flush(mm.platform());
    Ok(number)
}

/// Unmaps `va` in `space` and releases its frame.
pub(super) fn unmap_release<M: PagingMode>(
    mm: &Mm,
    space: &mut AddressSpace<M>,
    va: u32,
) -> TestResult {
    let page = Page::from_start(VirtAddr::new(va)).map_err(|_| "misaligned")?;
    let (frame, flush) = space
        .unmap(mm.platform(), &mut mm.frames(), page)
        .map_err(|_| "unmap failed")?;
    flush.flush(mm.platform());
    mm.frames()
        .lock()
        .release(frame)
        .map_err(|_| "release failed")?;
    Ok(())
}
