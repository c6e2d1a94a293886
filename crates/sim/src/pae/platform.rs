//! [`PaeMachine`] as the core's [`Platform`], for the core's
//! [`Pae`](myos_mm::paging::Pae) paging mode: CR3 holds the PDPT (loading
//! it loads the PDPTE registers), the direct map reaches the frames below
//! the direct-map limit, and the frame data methods reach every RAM frame,
//! those above 4 GiB included (the simulator's stand-in for kmap).

use std::ptr::NonNull;

use myos_mm::frames::{MemoryRegion, RegionKind};
use myos_mm::layout::{DIRECT_ZONE_END, PAGE_SIZE};
use myos_mm::{Frame, Page, PhysAddr, Platform};

use super::PaeMachine;
use crate::error::FaultError;
use crate::fault::PageFault;

impl PaeMachine {
    /// The memory map of the machine: one usable region per RAM bank.
    pub fn memory_map(&self) -> Vec<MemoryRegion> {
        self.mem
            .banks
            .iter()
            .map(|(base, ram)| MemoryRegion {
                start: *base,
                end: base + ram.len(),
                kind: RegionKind::Usable,
            })
            .collect()
    }

    /// One past the highest RAM byte (what
    /// [`FrameAllocator::new_below`](myos_mm::frames::FrameAllocator::new_below)
    /// needs to cover every bank).
    pub fn ram_end(&self) -> u64 {
        self.mem
            .banks
            .iter()
            .map(|(base, ram)| base + ram.len())
            .max()
            .unwrap_or(0)
    }

    /// Pointer to `frame` in the RAM bank holding it.
    ///
    /// Panics when the frame lies outside RAM (the core only asks for frames
    /// of the memory map, so that is a core bug).
    fn frame_in_ram(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        let addr = frame.start().as_u64();
        let (ram, off) = self
            .mem
            .find(addr, PAGE_SIZE)
            .unwrap_or_else(|| panic!("core bug: {frame:?} is outside the simulated RAM"));
        // SAFETY: the whole frame lies inside the bank (`find` checked it).
        unsafe { ram.ptr(off) }.cast()
    }

    /// Runs `op`, letting `handler` deal with each page fault (as
    /// [`SimMachine::run_with_faults`](crate::SimMachine::run_with_faults)).
    pub fn run_with_faults<T, Op, H>(
        &self,
        max_faults: usize,
        op: Op,
        handler: H,
    ) -> Result<T, FaultError>
    where
        Op: FnMut(&Self) -> Result<T, PageFault>,
        H: FnMut(PageFault) -> bool,
    {
        crate::fault::retry_faults(self, max_faults, op, handler)
    }
}

// SAFETY: `frame_ptr` returns, for frames below the direct-map limit that
// lie in RAM, a pointer into the bank holding them, valid for PAGE_SIZE
// bytes while the machine lives; frames of one bank are consecutive (the
// core keeps its metadata in one usable region, so in one bank). The data
// methods reach every RAM frame, above 4 GiB too, through the banks. The
// sim hands RAM to nobody but its user.
unsafe impl Platform for PaeMachine {
    /// Pointer into the RAM bank. Panics for a frame at or above the
    /// direct-map limit (the core must reach those through the data
    /// methods, as through kmap on x86) or outside RAM: a core bug.
    fn frame_ptr(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        assert!(
            frame.start().as_u64() < DIRECT_ZONE_END,
            "core bug: direct-map access to {frame:?}, above the direct map"
        );
        self.frame_in_ram(frame)
    }

    fn root(&self) -> Frame {
        PhysAddr::new(self.cr3()).frame()
    }

    /// Loads CR3 with the PDPT's address, which loads the PDPTE registers
    /// (see [`PaeMachine::set_cr3`]). Panics on a PDPTE the CPU refuses
    /// (#GP): the core wrote a bad PDPT.
    unsafe fn set_root(&self, root: Frame) {
        let cr3 = root
            .start()
            .to_u32()
            .unwrap_or_else(|| panic!("core bug: PDPT {root:?} above 4 GiB"));
        if let Err(e) = self.set_cr3(cr3) {
            panic!("core bug: loading CR3 {cr3:#x}: {e}");
        }
    }

    fn flush(&self, page: Page) {
        self.invlpg(page.start().as_u32());
    }

    fn flush_all(&self) {
        self.flush_tlb();
    }

    fn zero_frame(&self, frame: Frame) {
        let p = self.frame_in_ram(frame);
        // SAFETY: `p` is valid for PAGE_SIZE bytes of writes (inside a bank).
        unsafe { p.as_ptr().write_bytes(0, 1) }
    }

    fn copy_frame(&self, dst: Frame, src: Frame) {
        assert_ne!(dst, src);
        let (d, s) = (self.frame_in_ram(dst), self.frame_in_ram(src));
        // SAFETY: both are valid for PAGE_SIZE bytes, distinct frames.
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), d.as_ptr(), 1) }
    }

    fn read_frame(&self, frame: Frame, offset: usize, buf: &mut [u8]) {
        assert!(offset <= PAGE_SIZE && buf.len() <= PAGE_SIZE - offset);
        let p = self.frame_in_ram(frame).as_ptr().cast::<u8>();
        // SAFETY: inside the frame (checked), which is inside a bank.
        unsafe { std::ptr::copy_nonoverlapping(p.add(offset), buf.as_mut_ptr(), buf.len()) }
    }

    fn write_frame(&self, frame: Frame, offset: usize, buf: &[u8]) {
        assert!(offset <= PAGE_SIZE && buf.len() <= PAGE_SIZE - offset);
        let p = self.frame_in_ram(frame).as_ptr().cast::<u8>();
        // SAFETY: as in `read_frame`, for writes.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), p.add(offset), buf.len()) }
    }
}
