//! [`FileIo`]: what a backing object needs from the file whose pages it
//! caches — its length, reading and writing its bytes, and telling it that
//! its page cache is gone.
//!
//! The trait sits below both users so neither imports the other: `object`
//! pages through it, and `file` implements it for every [`File`] (it is a
//! supertrait of `File`, sealed: nothing else can name or implement it).
//! A `File` (which owns its [`PageCache`] slot, which holds a `VmObject`)
//! and a `VmObject` (which holds its file) refer to each other; this trait
//! is the one place where the object's side of that link is declared.
//!
//! [`File`]: super::File
//! [`PageCache`]: super::PageCache

use crate::error::MmError;

/// The file operations a backing object uses. Implemented for every
/// [`File`](super::File) by forwarding; the names differ from `File`'s so
/// that calls on a `File` are never ambiguous.
pub trait FileIo: Send + Sync {
    /// [`File::len`](super::File::len).
    fn file_len(&self) -> u64;

    /// [`File::read_at`](super::File::read_at).
    fn read_file_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, MmError>;

    /// [`File::write_at`](super::File::write_at).
    fn write_file_at(&self, offset: u64, buf: &[u8]) -> Result<usize, MmError>;

    /// The page-cache object of this file no longer lives: forget it (see
    /// `PageCache::forget_dead`).
    fn forget_dead_cache(&self);
}
