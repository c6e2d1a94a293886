//! Map, translate and unmap of 4 KiB pages in a user address space, in
//! either paging mode.

use std::hint::black_box;

use myos_mm::frames::{FrameSource, Zone};
use myos_mm::paging::{AddressSpace, PteFlags};
use myos_mm::{OwnedFrame, Page, VirtAddr};
use myos_sim::WorldMachine;

use crate::time;
use crate::world::World;

/// Pages mapped, translated and unmapped per round.
pub const BATCH: u32 = 1024;

/// A user space of a [`World`], the frames it maps and the pages it maps
/// them at (consecutive, from `0x1000_0000`).
pub struct PagingBench<'w, M: WorldMachine> {
    w: &'w World<M>,
    space: AddressSpace<M::Paging>,
    frames: Vec<OwnedFrame>,
    pages: Vec<Page>,
}

/// ns per operation of one [`PagingBench::round`].
#[derive(Clone, Copy, Debug)]
pub struct PagingTimes {
    /// `map` of a page (with its `invlpg`).
    pub map: f64,
    /// `translate` of a mapped address.
    pub translate: f64,
    /// `unmap` of a page (with its `invlpg`).
    pub unmap: f64,
}

impl<'w, M: WorldMachine> PagingBench<'w, M> {
    /// A new user space of `w` and [`BATCH`] frames from zone `High`.
    pub fn new(w: &'w World<M>) -> Self {
        let mut fa = w.fa.lock();
        let space = AddressSpace::new_user(&*w.m, &mut *fa, &w.kernel).expect("user space");
        let frames = (0..BATCH)
            .map(|_| fa.alloc(Zone::High).expect("frame"))
            .collect();
        let pages = (0..BATCH)
            .map(|i| Page::from_start(VirtAddr::new(0x1000_0000 + i * 0x1000)).expect("page"))
            .collect();
        PagingBench {
            w,
            space,
            frames,
            pages,
        }
    }

    /// Maps every page (the frames in order), translates each, unmaps each;
    /// each phase timed. The last unmap frees the page tables, so each
    /// round's maps create them again.
    pub fn round(&mut self) -> PagingTimes {
        self.space.activate(&*self.w.m);
        let map = time(BATCH, || self.map_all());
        let translate = time(BATCH, || self.translate_all());
        let unmap = time(BATCH, || self.unmap_all());
        PagingTimes {
            map,
            translate,
            unmap,
        }
    }

    /// Maps the pages, user read/write, flushing each.
    #[inline(never)]
    pub fn map_all(&mut self) {
        let (m, mut fa) = (&*self.w.m, self.w.fa.lock());
        let flags = PteFlags::WRITABLE | PteFlags::USER;
        for (p, f) in self.pages.iter().zip(self.frames.drain(..)) {
            self.space.map(m, &mut *fa, *p, f, flags).unwrap().flush(m);
        }
    }

    /// Translates each page's address.
    #[inline(never)]
    pub fn translate_all(&self) {
        for p in &self.pages {
            black_box(self.space.translate(&*self.w.m, p.start()));
        }
    }

    /// Unmaps the pages, flushing each, and takes their frames back.
    #[inline(never)]
    pub fn unmap_all(&mut self) {
        let (m, mut fa) = (&*self.w.m, self.w.fa.lock());
        for p in &self.pages {
            let (f, fl) = self.space.unmap(m, &mut *fa, *p).unwrap();
            fl.flush(m);
            self.frames.push(f);
        }
    }
}
