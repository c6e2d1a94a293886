//! Files that can be mapped: the [`File`] trait, open files and descriptor
//! tables. (An in-memory file system, `MemFs`, is in `myos-abi`.)

use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};

use super::file_io::FileIo;
use super::object::VmObject;
use crate::error::MmError;

/// A file the memory manager can map.
///
/// Offsets and lengths are bytes. Implementations are shared between
/// processes (`Send + Sync`) and synchronize internally. (`FileIo`, the
/// view of a file that page-cache objects use, is implemented for every
/// `File`; implementors never see it.)
pub trait File: FileIo + Send + Sync {
    /// Current length in bytes.
    fn len(&self) -> u64;

    /// True when the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (fewer at the end of the file, 0 past it).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, MmError>;

    /// Writes `buf` at `offset` (the memory manager writes back a mapped
    /// page's bytes this way; it never writes past the current length).
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize, MmError>;

    /// The file's page cache: one per file (like Linux's `inode->i_mapping`),
    /// shared by every mapping of the file in every process. Implementors
    /// embed a [`PageCache::new`] and return it.
    fn page_cache(&self) -> &PageCache;
}

impl<T: File + ?Sized> FileIo for T {
    #[inline]
    fn file_len(&self) -> u64 {
        self.len()
    }

    #[inline]
    fn read_file_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, MmError> {
        self.read_at(offset, buf)
    }

    #[inline]
    fn write_file_at(&self, offset: u64, buf: &[u8]) -> Result<usize, MmError> {
        self.write_at(offset, buf)
    }

    #[inline]
    fn forget_dead_cache(&self) {
        self.page_cache().forget_dead();
    }
}

/// The slot through which every mapping of one file finds the file's page
/// cache. The cache itself (frames and dirty bits) exists while at least one
/// region maps the file, and is written back and freed with the last one.
pub struct PageCache {
    object: spin::Mutex<Weak<VmObject>>,
}

impl PageCache {
    /// An empty slot (no cache until the file is first mapped).
    pub const fn new() -> Self {
        PageCache {
            object: spin::Mutex::new(Weak::new()),
        }
    }

    /// Forgets a cache object that no longer lives, so its (empty)
    /// allocation goes back to the heap when the last mapping goes, not at
    /// the next mapping of the file.
    pub(crate) fn forget_dead(&self) {
        let mut slot = self.object.lock();
        if slot.strong_count() == 0 {
            *slot = Weak::new();
        }
    }

    /// The cache object of `file`, created on first use.
    pub(crate) fn object(file: &Arc<dyn File>) -> Arc<VmObject> {
        let mut slot = file.page_cache().object.lock();
        if let Some(obj) = slot.upgrade() {
            return obj;
        }
        let obj = Arc::new(VmObject::file(file.clone()));
        *slot = Arc::downgrade(&obj);
        obj
    }
}

impl Default for PageCache {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PageCache")
    }
}

/// How a file was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenMode {
    /// `O_RDONLY`.
    ReadOnly,
    /// `O_WRONLY` (cannot be mapped: every mapping reads).
    WriteOnly,
    /// `O_RDWR`.
    ReadWrite,
}

impl OpenMode {
    /// True when reads are allowed.
    pub fn readable(self) -> bool {
        matches!(self, OpenMode::ReadOnly | OpenMode::ReadWrite)
    }
    /// True when writes are allowed.
    pub fn writable(self) -> bool {
        matches!(self, OpenMode::WriteOnly | OpenMode::ReadWrite)
    }
}

/// An open file: the file and the mode it was opened with (what a
/// descriptor refers to).
#[derive(Clone)]
pub struct OpenFile {
    file: Arc<dyn File>,
    mode: OpenMode,
}

impl OpenFile {
    /// `file` opened with `mode`.
    pub fn new(file: Arc<dyn File>, mode: OpenMode) -> Self {
        OpenFile { file, mode }
    }
    /// The file.
    pub fn file(&self) -> &Arc<dyn File> {
        &self.file
    }
    /// The open mode.
    pub fn mode(&self) -> OpenMode {
        self.mode
    }
}

impl core::fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenFile")
            .field("len", &self.file.len())
            .field("mode", &self.mode)
            .finish()
    }
}

/// A process's descriptor table: `fd` (a small non-negative integer) to
/// [`OpenFile`]. Cloning it is what `fork` does to descriptors.
#[derive(Clone, Debug, Default)]
pub struct FdTable {
    files: BTreeMap<i32, OpenFile>,
}

impl FdTable {
    /// An empty table.
    pub fn new() -> Self {
        FdTable {
            files: BTreeMap::new(),
        }
    }

    /// Installs `file` at the lowest free descriptor and returns it.
    pub fn insert(&mut self, file: OpenFile) -> i32 {
        let mut fd = 0;
        for &k in self.files.keys() {
            if k != fd {
                break;
            }
            fd += 1;
        }
        self.files.insert(fd, file);
        fd
    }

    /// The open file `fd` names; `BadFileDescriptor` (EBADF) if none.
    pub fn get(&self, fd: i32) -> Result<&OpenFile, MmError> {
        self.files.get(&fd).ok_or(MmError::BadFileDescriptor)
    }

    /// Closes `fd` (mappings made through it stay valid).
    pub fn close(&mut self, fd: i32) -> Result<OpenFile, MmError> {
        self.files.remove(&fd).ok_or(MmError::BadFileDescriptor)
    }

    /// Number of open descriptors.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when no descriptor is open.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
