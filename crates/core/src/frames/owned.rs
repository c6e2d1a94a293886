//! Owned frame references: [`OwnedFrame`] and [`FrameRun`].
//!
//! A frame's reference count says how many owners it has (each mapping of a
//! shared or copy-on-write frame is one). An `OwnedFrame` *is* one of those
//! references, as a value: the allocator hands them out
//! ([`FrameSource::alloc`](super::FrameSource::alloc),
//! [`share`](super::FrameSource::share)), mapping consumes one
//! ([`AddressSpace::map`](crate::paging::AddressSpace::map)), unmapping gives
//! it back ([`AddressSpace::unmap`](crate::paging::AddressSpace::unmap)), and
//! freeing requires one ([`FrameSource::release`](super::FrameSource::release)).
//! It is neither `Copy` nor `Clone`, so a reference cannot be given away
//! twice. [`Frame`] stays the plain frame number: what a translation or a
//! page-table entry reports, what lookups and the `Platform` take.
//!
//! Dropping an `OwnedFrame` leaks the reference (the frame stays allocated);
//! there is no `Drop` that frees, because freeing needs the allocator.
//!
//! # Where the rule is broken
//!
//! Every way to make an `OwnedFrame` from a number is here, and `unsafe`:
//!
//! - [`OwnedFrame::from_raw`]: a reference the type system lost track of —
//!   a frame read back from a page-table entry (each present entry holds one
//!   reference), a frame the C API handed to C code (`alloc_frame` writes it
//!   into a `page_t`, `free_frame` takes it back), a table frame an address
//!   space keeps as a number, a frame the allocator itself just counted;
//!   or a frame no allocator manages (device memory, boot-reserved RAM),
//!   which carries no reference and may be mapped by address;
//! - [`FrameRun::from_raw`]: the same for a run of frames.
//!
//! The way back, [`OwnedFrame::into_raw`], is safe: it only forgets the type
//! (the reference is then the caller's to account for, or leaked).

use core::fmt;

use crate::addr::{Frame, PhysAddr};

/// One owned reference to an allocated frame (or a frame no allocator
/// manages, see [`from_raw`](Self::from_raw)). Not `Copy`, not `Clone`:
/// mapping it or releasing it consumes it.
#[must_use = "an owned frame must be mapped or released; dropping it leaks the frame"]
#[derive(PartialEq, Eq, Hash)]
pub struct OwnedFrame(Frame);

impl OwnedFrame {
    /// Makes `frame` an owned reference.
    ///
    /// # Safety
    ///
    /// One of:
    /// - the caller owns one reference to `frame` in the frame allocator it
    ///   will be released to, held by no other `OwnedFrame`, page-table
    ///   entry or object, and gives it up to the result (e.g. the frame of
    ///   an entry the caller has just cleared, or a frame C code got from
    ///   `alloc_frame` and gives back to `free_frame`);
    /// - `frame` is managed by no frame allocator (device memory, memory the
    ///   boot reserved): it carries no reference, releasing it fails
    ///   harmlessly (`FrameReserved`/`OutOfRange`), and mapping it must be
    ///   safe for the machine (the caller decides who may access it).
    pub const unsafe fn from_raw(frame: Frame) -> OwnedFrame {
        OwnedFrame(frame)
    }

    /// Gives up the type and returns the frame number; the reference is
    /// now the caller's to account for (or leaked).
    pub const fn into_raw(self) -> Frame {
        self.0
    }

    /// The frame (a plain number: for translation checks, `Platform` calls,
    /// reference-count queries).
    pub const fn frame(&self) -> Frame {
        self.0
    }

    /// The frame's first byte.
    pub const fn start(&self) -> PhysAddr {
        self.0.start()
    }

    /// The frame number.
    pub const fn number(&self) -> u32 {
        self.0.number()
    }
}

impl fmt::Debug for OwnedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Owned{:?}", self.0)
    }
}

impl PartialEq<Frame> for OwnedFrame {
    fn eq(&self, other: &Frame) -> bool {
        self.0 == *other
    }
}

/// A run of physically contiguous frames, one owned reference to each
/// (what [`FrameSource::alloc_contiguous`](super::FrameSource::alloc_contiguous)
/// returns). Not `Copy`, not `Clone`; split it into [`OwnedFrame`]s to map
/// or release them.
#[must_use = "the frames of a run must be mapped or released; dropping it leaks them"]
#[derive(Debug, PartialEq, Eq)]
pub struct FrameRun {
    first: Frame,
    count: u32,
}

impl FrameRun {
    /// Makes `count` frames from `first` an owned run.
    ///
    /// # Safety
    ///
    /// As [`OwnedFrame::from_raw`], for each frame of the run; `first + count`
    /// does not pass the last frame of the 4 GiB physical space.
    pub const unsafe fn from_raw(first: Frame, count: u32) -> FrameRun {
        FrameRun { first, count }
    }

    /// Gives up the type: `(first frame, count)`.
    pub const fn into_raw(self) -> (Frame, u32) {
        (self.first, self.count)
    }

    /// The first frame.
    pub const fn first(&self) -> Frame {
        self.first
    }

    /// Number of frames.
    pub const fn len(&self) -> u32 {
        self.count
    }

    /// True for a run of no frames.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Splits the run into its frames, lowest first.
    pub fn into_frames(self) -> impl Iterator<Item = OwnedFrame> {
        let first = self.first;
        (0..self.count).map(move |k| {
            let frame = first.checked_add(k).expect("a run ends below 4 GiB");
            // SAFETY: the run owned one reference to each of its frames
            // (`from_raw`'s contract) and is consumed: each is handed out once.
            unsafe { OwnedFrame::from_raw(frame) }
        })
    }
}
