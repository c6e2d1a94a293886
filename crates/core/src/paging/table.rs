//! A page-table frame as the paging code sees it: a frame of entries of
//! either format read and written with volatile accesses, and the frame
//! references that tables and their entries hold (created with a table,
//! dropped with it).

use core::marker::PhantomData;
use core::ptr::NonNull;

use super::entry::Entry;
use crate::addr::Frame;
use crate::error::MmError;
use crate::frames::{FrameSource, OwnedFrame, Zone};
use crate::layout::PAGE_SIZE;
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

/// A page table or directory in memory: a frame of entries (1024 classic
/// or 512 PAE ones) read and written with volatile accesses (the MMU sets
/// Accessed and Dirty bits behind our back).
pub(super) struct Table<E>(NonNull<E>, PhantomData<E>);

impl<E> Clone for Table<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for Table<E> {}

impl<E: Entry> Table<E> {
    /// Entries in one table.
    const LEN: usize = PAGE_SIZE / core::mem::size_of::<E>();

    pub(super) fn of<P: Platform + ?Sized>(platform: &P, frame: Frame) -> Self {
        Table(platform.frame_ptr(frame).cast(), PhantomData)
    }
    pub(super) fn get(self, i: usize) -> E {
        assert!(i < Self::LEN);
        // SAFETY: the table is a direct-mapped frame of `LEN` entries (page
        // tables are allocated from `Zone::Direct`), valid per the platform
        // contract; `i` is in bounds.
        unsafe { read_entry(self.0.as_ptr().add(i)) }
    }
    pub(super) fn set(self, i: usize, e: E) {
        assert!(i < Self::LEN);
        // SAFETY: as in `get`; the address space owning the table is borrowed
        // mutably by every caller, so no other writer exists in the core.
        unsafe { write_entry(self.0.as_ptr().add(i), e) }
    }
    pub(super) fn entry_ptr(self, i: usize) -> NonNull<E> {
        assert!(i < Self::LEN);
        // SAFETY: in bounds of the table (checked above).
        unsafe { self.0.add(i) }
    }
    pub(super) fn live_entries(self) -> u16 {
        (0..Self::LEN).filter(|&i| !self.get(i).is_unused()).count() as u16
    }
}

/// Reads an entry the MMU may update (A and D bits) at the same time.
///
/// On a 32-bit CPU a 64-bit entry is read as two halves, low first: only
/// the core writes the high half (under the space's lock), and the MMU
/// changes only flag bits of the low half, so the two halves belong
/// together.
///
/// Public for code that holds entry pointers of its own (the C API's
/// `page64_t`).
///
/// # Safety
///
/// `p` points at a live, aligned entry of a page-table frame (or at any
/// aligned entry-sized memory the caller owns).
#[inline]
pub unsafe fn read_entry<E: Entry>(p: *mut E) -> E {
    if cfg!(target_pointer_width = "32") && core::mem::size_of::<E>() == 8 {
        let w = p.cast::<u32>();
        // SAFETY: the entry is 8 aligned bytes (caller); x86 is little-endian.
        let (lo, hi) = unsafe { (w.read_volatile(), w.add(1).read_volatile()) };
        E::from_raw64(u64::from(lo) | (u64::from(hi) << 32))
    } else {
        // SAFETY: the caller's contract.
        unsafe { p.read_volatile() }
    }
}

/// Writes an entry so that the MMU (which reads 64-bit entries at once)
/// never sees half of the old entry with half of the new one.
///
/// On a 32-bit CPU a 64-bit entry is written as two halves: a present
/// entry's high half first, then its low half (with P); a not-present
/// entry's low half first (clearing P), then its high half; a present
/// entry replaced by one with another high half goes through not-present
/// (low half cleared first), so a walk in between faults rather than
/// reaching a frame made of both (the fault is retried once the lock
/// holder is done).
///
/// # Safety
///
/// As [`read_entry`], and the caller is the only writer.
#[inline]
pub unsafe fn write_entry<E: Entry>(p: *mut E, e: E) {
    if cfg!(target_pointer_width = "32") && core::mem::size_of::<E>() == 8 {
        let w = p.cast::<u32>();
        let raw = e.raw64();
        let (lo, hi) = (raw as u32, (raw >> 32) as u32);
        // SAFETY: the entry is 8 aligned bytes (caller); x86 is little-endian.
        unsafe {
            if e.is_present() {
                if w.add(1).read_volatile() != hi {
                    w.write_volatile(0);
                    w.add(1).write_volatile(hi);
                }
                w.write_volatile(lo);
            } else {
                w.write_volatile(lo);
                w.add(1).write_volatile(hi);
            }
        }
    } else {
        // SAFETY: the caller's contract.
        unsafe { p.write_volatile(e) }
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
pub(super) fn release_table<E: Entry, P: Platform + ?Sized, F: FrameSource + ?Sized>(
    platform: &P,
    frames: &mut F,
    table: Frame,
) {
    let t = Table::<E>::of(platform, table);
    for i in 0..Table::<E>::LEN {
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
