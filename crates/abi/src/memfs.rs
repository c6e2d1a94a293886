//! [`MemFs`]: an in-memory file system, a flat namespace of [`MemFile`]s.
//!
//! The reference kernel serves `open` from it and the C API's memory files
//! are [`MemFile`]s, so it must be `no_std` (not in the `std` simulator);
//! the tests and fuzz targets map its files too.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use myos_mm::vm::{File, OpenFile, OpenMode, PageCache};
use myos_mm::MmError;

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
    use myos_mm::vm::FdTable;

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
