//! Backing objects of shared memory: shared anonymous memory and a file's
//! page cache (SerenityOS's `VMObject`).
//!
//! An object holds one frame reference per resident page (each mapping of the
//! page holds another). It lives as long as some region maps it (regions hold
//! an `Arc`); the region that drops the last `Arc` tears it down, which
//! writes dirty file pages back and releases the frames. Objects never free
//! frames on `Drop` (they have no frame allocator): a region must hand its
//! object to [`VmObject::release`].

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use super::file_io::FileIo;
use crate::addr::Frame;
use crate::error::MmError;
use crate::frames::{FrameSource, OwnedFrame, Zone};
use crate::layout::PAGE_SIZE;
use crate::lockorder::{Held, Level};
use crate::platform::Platform;

/// What fills an object's pages.
pub(crate) enum Source {
    /// Zero-filled on first touch.
    Anonymous,
    /// Read from the file on first touch; written back when dirty.
    File(Arc<dyn FileIo>),
}

/// One resident page of an object.
#[derive(Debug)]
struct ObjPage {
    /// The object's reference to the page's frame.
    frame: OwnedFrame,
    /// Written through a shared mapping since it was read (file objects).
    /// Never cleared while the object lives: a writable mapping of the page
    /// in another process may keep writing without faulting again.
    dirty: bool,
}

/// Why an object page could not be provided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageError {
    /// The page lies wholly past the end of the file (SIGBUS), or reading
    /// the file failed.
    PastEof,
    /// No frame.
    NoMemory,
}

/// A backing object.
pub(crate) struct VmObject {
    source: Source,
    pages: spin::Mutex<BTreeMap<u32, ObjPage>>,
}

/// Bytes copied per step between a file and a frame (bounded stack use).
const CHUNK: usize = 512;

impl VmObject {
    /// A new shared anonymous object.
    pub(crate) fn anonymous() -> Self {
        VmObject {
            source: Source::Anonymous,
            pages: spin::Mutex::new(BTreeMap::new()),
        }
    }

    /// A new page cache for `file`.
    pub(crate) fn file(file: Arc<dyn FileIo>) -> Self {
        VmObject {
            source: Source::File(file),
            pages: spin::Mutex::new(BTreeMap::new()),
        }
    }

    /// True for a file's page cache.
    pub(crate) fn is_file(&self) -> bool {
        matches!(self.source, Source::File(_))
    }

    /// The frame of page `index`, brought in (zeroed or read from the file)
    /// if not resident. The object keeps its reference; the caller adds its
    /// own with `share` before mapping it.
    pub(crate) fn page<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        &self,
        platform: &P,
        frames: &mut F,
        index: u32,
    ) -> Result<Frame, PageError> {
        let mut pages = self.pages.lock();
        let _held = Held::new(platform.cpu_id(), Level::Object);
        if let Some(p) = pages.get(&index) {
            return Ok(p.frame.frame());
        }
        let offset = u64::from(index) * PAGE_SIZE as u64;
        if let Source::File(file) = &self.source {
            if offset >= file.file_len() {
                return Err(PageError::PastEof);
            }
        }
        let owned = frames.alloc(Zone::High).map_err(|_| PageError::NoMemory)?;
        let frame = owned.frame();
        platform.zero_frame(frame);
        if let Source::File(file) = &self.source {
            if fill_from_file(platform, &**file, frame, offset).is_err() {
                let _ = frames.release(owned);
                return Err(PageError::PastEof);
            }
        }
        pages.insert(
            index,
            ObjPage {
                frame: owned,
                dirty: false,
            },
        );
        Ok(frame)
    }

    /// Marks page `index` dirty (it is resident: it was just mapped).
    pub(crate) fn mark_dirty(&self, index: u32) {
        if let Some(p) = self.pages.lock().get_mut(&index) {
            p.dirty = true;
        }
    }

    /// True when page `index` is resident and dirty.
    pub(crate) fn is_dirty(&self, index: u32) -> bool {
        self.pages.lock().get(&index).is_some_and(|p| p.dirty)
    }

    /// Writes the dirty pages with index in `lo..hi` back to the file
    /// (nothing for anonymous objects). Bytes past the file's end are never
    /// written (a mapping cannot extend its file).
    pub(crate) fn writeback<P: Platform + ?Sized>(
        &self,
        platform: &P,
        lo: u32,
        hi: u32,
    ) -> Result<(), MmError> {
        let Source::File(file) = &self.source else {
            return Ok(());
        };
        let pages = self.pages.lock();
        let mut result = Ok(());
        for (&index, p) in pages.range(lo..hi) {
            if p.dirty {
                if let Err(e) = write_to_file(platform, &**file, p.frame.frame(), index) {
                    result = Err(e);
                }
            }
        }
        result
    }

    /// Drops a region's hold on `object`: when it was the last, writes dirty
    /// pages back and releases every frame.
    pub(crate) fn release<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        object: Arc<VmObject>,
        platform: &P,
        frames: &mut F,
    ) {
        let Some(obj) = Arc::into_inner(object) else {
            return;
        };
        if let Source::File(file) = &obj.source {
            file.forget_dead_cache();
        }
        let _ = obj.writeback(platform, 0, u32::MAX);
        for (_, p) in obj.pages.into_inner() {
            let f = p.frame.frame();
            let r = frames.release(p.frame);
            debug_assert!(r.is_ok(), "object frame {f:?}: {r:?}");
        }
    }
}

/// Fills `frame` (already zeroed) from `file` at `offset`.
fn fill_from_file<P: Platform + ?Sized>(
    platform: &P,
    file: &dyn FileIo,
    frame: Frame,
    offset: u64,
) -> Result<(), MmError> {
    let mut buf = [0u8; CHUNK];
    let mut done = 0;
    while done < PAGE_SIZE {
        let n = file.read_file_at(offset + done as u64, &mut buf)?;
        if n == 0 {
            break;
        }
        let n = n.min(CHUNK).min(PAGE_SIZE - done);
        platform.write_frame(frame, done, &buf[..n]);
        done += n;
    }
    Ok(())
}

/// Writes page `index` (in `frame`) back to `file`, up to the file's end.
fn write_to_file<P: Platform + ?Sized>(
    platform: &P,
    file: &dyn FileIo,
    frame: Frame,
    index: u32,
) -> Result<(), MmError> {
    let offset = u64::from(index) * PAGE_SIZE as u64;
    let len = file.file_len();
    if offset >= len {
        return Ok(());
    }
    let bytes = (len - offset).min(PAGE_SIZE as u64) as usize;
    let mut buf = [0u8; CHUNK];
    let mut done = 0;
    while done < bytes {
        let n = CHUNK.min(bytes - done);
        platform.read_frame(frame, done, &mut buf[..n]);
        file.write_file_at(offset + done as u64, &buf[..n])?;
        done += n;
    }
    Ok(())
}
