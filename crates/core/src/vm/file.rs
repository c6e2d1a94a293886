//! Files that can be mapped: the [`File`] trait, open files and descriptor
//! tables, and [`MemFs`], an in-memory file system for tests and the demo.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

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

/// A file of [`MemFs`]: bytes in kernel memory.
pub struct MemFile {
    data: spin::Mutex<Vec<u8>>,
    cache: PageCache,
}

impl MemFile {
    /// A file holding `data`.
    pub fn new(data: &[u8]) -> Self {
        MemFile {
            data: spin::Mutex::new(data.to_vec()),
            cache: PageCache::new(),
        }
    }

    /// A copy of the file's bytes.
    pub fn contents(&self) -> Vec<u8> {
        self.data.lock().clone()
    }
}

impl File for MemFile {
    fn len(&self) -> u64 {
        self.data.lock().len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, MmError> {
        let data = self.data.lock();
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize, MmError> {
        let mut data = self.data.lock();
        let start = usize::try_from(offset).map_err(|_| MmError::OutOfRange)?;
        let end = start.checked_add(buf.len()).ok_or(MmError::OutOfRange)?;
        if end > data.len() {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        Ok(buf.len())
    }

    fn page_cache(&self) -> &PageCache {
        &self.cache
    }
}

/// An in-memory file system: a flat namespace of [`MemFile`]s.
#[derive(Default)]
pub struct MemFs {
    files: spin::Mutex<BTreeMap<String, Arc<MemFile>>>,
}

impl MemFs {
    /// An empty file system.
    pub fn new() -> Self {
        MemFs {
            files: spin::Mutex::new(BTreeMap::new()),
        }
    }

    /// Creates (or replaces) `name` with `data`.
    pub fn create(&self, name: &str, data: &[u8]) -> Arc<MemFile> {
        let f = Arc::new(MemFile::new(data));
        self.files.lock().insert(String::from(name), f.clone());
        f
    }

    /// The file called `name`.
    pub fn lookup(&self, name: &str) -> Option<Arc<MemFile>> {
        self.files.lock().get(name).cloned()
    }

    /// Opens `name` with `mode`; `None` when there is no such file.
    pub fn open(&self, name: &str, mode: OpenMode) -> Option<OpenFile> {
        let f: Arc<dyn File> = self.lookup(name)?;
        Some(OpenFile::new(f, mode))
    }

    /// A copy of `name`'s bytes.
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        Some(self.lookup(name)?.contents())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_table_uses_the_lowest_free_descriptor() {
        let fs = MemFs::new();
        fs.create("a", b"hello");
        let mut t = FdTable::new();
        let a = t.insert(fs.open("a", OpenMode::ReadOnly).unwrap());
        let b = t.insert(fs.open("a", OpenMode::ReadWrite).unwrap());
        assert_eq!((a, b), (0, 1));
        t.close(0).unwrap();
        assert_eq!(t.insert(fs.open("a", OpenMode::WriteOnly).unwrap()), 0);
        assert_eq!(t.get(7).unwrap_err(), MmError::BadFileDescriptor);
        assert_eq!(t.close(-1).unwrap_err(), MmError::BadFileDescriptor);
        assert_eq!(t.len(), 2);
        assert!(fs.open("missing", OpenMode::ReadOnly).is_none());
    }

    #[test]
    fn memfile_reads_and_writes() {
        let f = MemFile::new(b"abcdef");
        let mut b = [0u8; 4];
        assert_eq!(f.read_at(4, &mut b).unwrap(), 2);
        assert_eq!(&b[..2], b"ef");
        assert_eq!(f.read_at(100, &mut b).unwrap(), 0);
        f.write_at(8, b"xy").unwrap();
        assert_eq!(f.contents(), b"abcdef\0\0xy");
        assert!(!f.is_empty());
        assert!(OpenMode::ReadWrite.writable() && !OpenMode::WriteOnly.readable());
    }
}
