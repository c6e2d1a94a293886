//! A page-table frame as the paging code sees it: 1024 entries read and
//! written with volatile accesses, and the frame references that tables
//! and their entries hold (created with a table, dropped with it).

use core::ptr::NonNull;

use super::entry::PageTableEntry;
use crate::addr::Frame;
use crate::error::MmError;
use crate::frames::{FrameSource, OwnedFrame, Zone};
use crate::layout::ENTRIES;
use crate::platform::Platform;

/// Drops one reference. Frames the allocator doesn't manage (device memory
/// mapped by address) carry none and are skipped; any other failure is a
/// bug in the core's accounting.
pub(super) fn drop_reference<F: FrameSource + ?Sized>(frames: &mut F, frame: OwnedFrame) {
    let f = frame.frame();
    match frames.release(frame) {
        Ok(_) | Err(MmError::FrameReserved) | Err(MmError::OutOfRange) => {}
        Err(e) => debug_assert!(false, "releasing {f:?}: {e:?}"),
    }
}

/// The reference a present entry (or a table frame the space keeps as a
/// number) holds, as a value, once the entry is gone.
///
/// # Safety
///
/// `frame` is what a present entry the caller has just cleared (or will
/// never read again) pointed at, or a directory/table/counts frame of a
/// space being torn down: the paging rule gives each exactly one reference
/// (or none, for a frame no allocator manages), which the entry no longer
/// claims.
pub(crate) unsafe fn entry_reference(frame: Frame) -> OwnedFrame {
    // SAFETY: forwarded to the caller (the first or second case of
    // `OwnedFrame::from_raw`).
    unsafe { OwnedFrame::from_raw(frame) }
}

/// A page table or directory in memory: 1024 entries read and written with
/// volatile accesses (the MMU sets Accessed and Dirty bits behind our back).
#[derive(Clone, Copy)]
pub(super) struct Table(NonNull<u32>);

impl Table {
    pub(super) fn of<P: Platform + ?Sized>(platform: &P, frame: Frame) -> Table {
        Table(platform.frame_ptr(frame).cast())
    }
    pub(super) fn get(self, i: usize) -> PageTableEntry {
        assert!(i < ENTRIES);
        // SAFETY: the table is a direct-mapped frame of 1024 entries (page
        // tables are allocated from `Zone::Direct`), valid per the platform
        // contract; `i` is in bounds.
        PageTableEntry::from_raw(unsafe { self.0.as_ptr().add(i).read_volatile() })
    }
    pub(super) fn set(self, i: usize, e: PageTableEntry) {
        assert!(i < ENTRIES);
        // SAFETY: as in `get`; the address space owning the table is borrowed
        // mutably by every caller, so no other writer exists in the core.
        unsafe { self.0.as_ptr().add(i).write_volatile(e.raw()) }
    }
    pub(super) fn entry_ptr(self, i: usize) -> NonNull<PageTableEntry> {
        assert!(i < ENTRIES);
        // SAFETY: in bounds of the table (checked above).
        unsafe { self.0.add(i).cast() }
    }
    pub(super) fn live_entries(self) -> u16 {
        (0..ENTRIES).filter(|&i| !self.get(i).is_unused()).count() as u16
    }
}

/// A zeroed page table (or directory) from the direct-mapped zone.
pub(super) fn new_table<P: Platform + ?Sized, F: FrameSource + ?Sized>(
    platform: &P,
    frames: &mut F,
) -> Result<Frame, MmError> {
    let t = frames.alloc(Zone::Direct)?;
    platform.zero_frame(t.frame());
    // The space keeps its tables as numbers (in directory entries and its
    // fields); `release_owned` turns them back into references.
    Ok(t.into_raw())
}

/// Drops the references held by a page table's entries, then the table.
pub(super) fn release_table<P: Platform + ?Sized, F: FrameSource + ?Sized>(
    platform: &P,
    frames: &mut F,
    table: Frame,
) {
    let t = Table::of(platform, table);
    for i in 0..ENTRIES {
        let e = t.get(i);
        if e.is_present() {
            // Frames the allocator doesn't manage (device memory mapped by
            // address) carry no reference; anything else is a core bug.
            // SAFETY: the table is being freed: no entry of it is read again.
            match frames.release(unsafe { entry_reference(e.frame()) }) {
                Ok(_) | Err(MmError::FrameReserved) | Err(MmError::OutOfRange) => {}
                Err(err) => debug_assert!(false, "releasing {:?}: {err}", e.frame()),
            }
        }
    }
    release_owned(frames, table);
}

/// Releases a frame the paging code allocated itself.
pub(super) fn release_owned<F: FrameSource + ?Sized>(frames: &mut F, frame: Frame) {
    // SAFETY: callers pass a table, directory or counts frame of this space
    // that is being freed (`new_table` gave up its reference to the space).
    let r = frames.release(unsafe { entry_reference(frame) });
    debug_assert_eq!(r, Ok(true), "page-table frame {frame:?} had other owners");
}
