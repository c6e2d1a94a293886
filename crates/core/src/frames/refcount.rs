//! Frame reference counts as atomics: the counter updates every CPU may
//! make without the allocator's lock (through [`FramePool`](super::FramePool)),
//! written once, generic over the counter so a loom model can check them.

use core::sync::atomic::{AtomicU16, Ordering};

use crate::error::MmError;

/// Reference-count value of a frame that is never handed out.
pub const RESERVED: u16 = u16::MAX;
/// Largest reference count of an allocated frame.
pub const MAX_REFCOUNT: u16 = u16::MAX - 1;

/// A 16-bit counter with compare-and-swap (the core's `AtomicU16`; a loom
/// model implements it on loom's).
#[doc(hidden)]
pub trait Counter {
    /// The value (acquire).
    fn get(&self) -> u16;
    /// `compare_exchange_weak(current, new, AcqRel, Acquire)`.
    fn swap_if(&self, current: u16, new: u16) -> Result<u16, u16>;
}

impl Counter for AtomicU16 {
    fn get(&self) -> u16 {
        self.load(Ordering::Acquire)
    }
    fn swap_if(&self, current: u16, new: u16) -> Result<u16, u16> {
        self.compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Acquire)
    }
}

/// The count: `FrameReserved` for a frame never handed out.
#[doc(hidden)]
pub fn get<C: Counter + ?Sized>(c: &C) -> Result<u16, MmError> {
    match c.get() {
        RESERVED => Err(MmError::FrameReserved),
        n => Ok(n),
    }
}

/// Adds a reference to an allocated frame.
#[doc(hidden)]
pub fn share<C: Counter + ?Sized>(c: &C) -> Result<(), MmError> {
    let mut n = c.get();
    loop {
        match n {
            0 => return Err(MmError::FrameNotAllocated),
            RESERVED => return Err(MmError::FrameReserved),
            MAX_REFCOUNT => return Err(MmError::RefcountOverflow),
            _ => match c.swap_if(n, n + 1) {
                Ok(_) => return Ok(()),
                Err(now) => n = now,
            },
        }
    }
}

/// Drops a reference; `true` when it was the last (the count is now 0 and
/// the caller alone decides where the frame goes). Acquire-release, so the
/// CPU that frees sees every write the other owners made to the frame
/// before they dropped theirs.
#[doc(hidden)]
pub fn release<C: Counter + ?Sized>(c: &C) -> Result<bool, MmError> {
    let mut n = c.get();
    loop {
        match n {
            0 => return Err(MmError::FrameNotAllocated),
            RESERVED => return Err(MmError::FrameReserved),
            _ => match c.swap_if(n, n - 1) {
                Ok(_) => return Ok(n == 1),
                Err(now) => n = now,
            },
        }
    }
}
