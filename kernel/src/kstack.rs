//! Process kernel stacks, each with an unmapped guard page below it.
//!
//! The stacks live in the top [`KSTACK_AREA_SIZE`] bytes of the kernel heap
//! window (`myos_mm::layout::KSTACK_START..KSTACK_END`; the kernel heap's
//! `max`, `KERNEL_HEAP_MAX`, stops below them), whose page tables are
//! preallocated and shared by every address space, so a stack is mapped in
//! every process at once. Each slot is one guard page followed by
//! [`KSTACK_PAGES`] mapped pages. A kernel stack overflow runs into the
//! guard page: the page fault cannot be delivered on that stack, the CPU
//! raises a double fault, and the double-fault task (its own TSS and stack)
//! reports it.
//!
//! ```text
//!  KSTACK_START + slot * SLOT_SIZE: | guard | stack page 0..3 | <- top (esp0)
//! ```

use myos_mm::frames::{FrameSource, Zone};
use myos_mm::layout::{KSTACK_END, KSTACK_START, PAGE_SIZE};
use myos_mm::paging::{unmap_kernel_pages, AddressSpace, PagingMode, PteFlags};
use myos_mm::{Page, Platform, VirtAddr};

use crate::mm::{self, with_kernel_space, Mm};
use crate::sync::Mutex;

/// Bytes of the kernel heap window given to kernel stacks.
pub const KSTACK_AREA_SIZE: u32 = KSTACK_END - KSTACK_START;
/// Mapped pages of one kernel stack.
pub const KSTACK_PAGES: u32 = 4;
/// Bytes of one kernel stack.
pub const KSTACK_SIZE: usize = (KSTACK_PAGES as usize) * PAGE_SIZE;
/// Pages of one slot: the guard page and the stack.
const SLOT_PAGES: u32 = KSTACK_PAGES + 1;
/// Bytes of one slot.
const SLOT_SIZE: u32 = SLOT_PAGES * PAGE_SIZE as u32;
/// Number of slots.
const SLOTS: usize = (KSTACK_AREA_SIZE / SLOT_SIZE) as usize;
/// Words of the slot bitmap.
const SLOT_WORDS: usize = SLOTS.div_ceil(64);

const _: () = assert!(KSTACK_START.is_multiple_of(myos_mm::layout::TABLE_SPAN));
const _: () = assert!(SLOTS >= 256);

/// Slots in use (bit set = used).
static USED: Mutex<[u64; SLOT_WORDS]> = Mutex::new([0; SLOT_WORDS]);

/// A kernel stack: mapped while the value lives, unmapped (frames freed)
/// on drop. Not `Clone`: it owns its frames.
pub struct KernelStack {
    slot: usize,
}

impl KernelStack {
    /// Maps a fresh, zeroed stack in a free slot. `None` when every slot is
    /// taken or no frame is left (nothing stays mapped then).
    pub fn new() -> Option<Self> {
        let slot = {
            let mut used = USED.lock();
            let slot = (0..SLOTS).find(|&s| used[s / 64] & (1 << (s % 64)) == 0)?;
            used[slot / 64] |= 1 << (slot % 64);
            slot
        };
        let stack = KernelStack { slot };
        let mm = mm::get();
        let mapped = with_kernel_space!(mm, |kernel| {
            let mut space = kernel.lock();
            (0..KSTACK_PAGES).all(|i| stack.map_page(mm, &mut space, i))
        });
        // Drop unmaps the pages mapped so far.
        mapped.then_some(stack)
    }

    /// Maps page `i` of the stack to a fresh, zeroed frame. False when no
    /// frame is left.
    fn map_page<M: PagingMode>(&self, mm: &Mm, space: &mut AddressSpace<M>, i: u32) -> bool {
        {
            let page = self.page(i);
            mm.frames()
                .alloc(Zone::High)
                .and_then(|frame| {
                    mm.platform().zero_frame(frame.frame());
                    space
                        .map(
                            mm.platform(),
                            &mut mm.frames(),
                            page,
                            frame,
                            PteFlags::WRITABLE,
                        )
                        .map(|flush| flush.flush(mm.platform()))
                        .map_err(|e| e.release(&mut mm.frames()))
                })
                .is_ok()
        }
    }

    /// The `i`-th page of the stack (above the guard page).
    fn page(&self, i: u32) -> Page {
        let addr = KSTACK_START + self.slot as u32 * SLOT_SIZE + (1 + i) * PAGE_SIZE as u32;
        VirtAddr::new(addr).page()
    }

    /// Lowest address of the stack.
    pub fn bottom(&self) -> u32 {
        self.page(0).start().as_u32()
    }

    /// One past the highest address (the initial stack pointer).
    pub fn top(&self) -> u32 {
        self.bottom() + KSTACK_SIZE as u32
    }

    /// The stack's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the stack's pages are mapped (in every address space)
        // while `self` lives, and only its owner reaches them.
        unsafe { core::slice::from_raw_parts(self.bottom() as *const u8, KSTACK_SIZE) }
    }

    /// The stack's bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.bottom() as *mut u8, KSTACK_SIZE) }
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        let mm = mm::get();
        {
            // Kernel stacks are global kernel-half pages: the core unmaps
            // them, flushes here, shoots every other online CPU down, and
            // only then frees the frames.
            with_kernel_space!(mm, |kernel| unmap_kernel_pages(
                mm.platform(),
                &mut *kernel.lock(),
                &mut mm.frames(),
                self.page(0),
                KSTACK_PAGES,
            ));
        }
        USED.lock()[self.slot / 64] &= !(1 << (self.slot % 64));
    }
}

/// True when `addr` lies in the guard page of a kernel stack.
pub fn is_guard(addr: u32) -> bool {
    addr.checked_sub(KSTACK_START)
        .is_some_and(|off| off < KSTACK_AREA_SIZE && (off % SLOT_SIZE) < PAGE_SIZE as u32)
}
