//! The allocators under test behind one trait, [`Contender`]: ours, the
//! peers, and the harness-only floor.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::ptr::{self, NonNull};

use myos_mm::heap::{grow_step, ArenaBackend, Heap, HeapFlags};

use crate::params::PAGE;

/// What the harness needs from an allocator. `init` gets a page-aligned arena
/// of `arena` bytes and must start with `initial` bytes of it.
pub(crate) trait Contender {
    const NAME: &'static str;
    /// # Safety
    /// `base..base + arena` is owned by the contender until it is dropped.
    unsafe fn init(base: *mut u8, arena: usize, initial: usize) -> Self;
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8;
    /// # Safety
    /// `p` is live, from `alloc`/`realloc` with this size and alignment.
    unsafe fn free(&mut self, p: *mut u8, size: usize, align: usize);
    /// # Safety
    /// As for `free`.
    unsafe fn realloc(&mut self, p: *mut u8, size: usize, align: usize, new: usize) -> *mut u8;
    /// Gives the allocator more of its arena after a failed allocation (only
    /// in `growth`); false when there is none left or it grows by itself.
    fn grow(&mut self, _need: usize) -> bool {
        false
    }
}

/// Moves a block the slow way (allocators without a realloc).
///
/// # Safety
/// As for [`Contender::realloc`].
unsafe fn move_block<C: Contender>(
    c: &mut C,
    p: *mut u8,
    size: usize,
    align: usize,
    new: usize,
) -> *mut u8 {
    let q = c.alloc(new, align);
    if !q.is_null() {
        // SAFETY: distinct live blocks of at least min(size, new) bytes.
        unsafe {
            ptr::copy_nonoverlapping(p, q, size.min(new));
            c.free(p, size, align);
        }
    }
    q
}

/// How many bytes the harness gives a peer whose heap has `len` bytes and
/// `room` more in its arena, after a request of `need` bytes failed: the
/// request (plus room for the peer's own metadata) or our heap's growth
/// step for a heap of that size ([`grow_step`]: an eighth of the heap,
/// 16 KiB to 1 MiB), whichever is more — the policy by which ours grows
/// itself — so every allocator is extended by the same steps. `None` when
/// the arena is used up.
pub(crate) fn extension(len: usize, room: usize, need: usize) -> Option<usize> {
    (room != 0).then(|| {
        (need + 64)
            .max(grow_step(len))
            .next_multiple_of(PAGE)
            .min(room)
    })
}

pub(crate) fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).expect("trace layouts are valid")
}

/// The harness alone: fake, never-dereferenced pointers.
pub(crate) struct Floor(usize);

impl Contender for Floor {
    const NAME: &'static str = "floor";
    unsafe fn init(_: *mut u8, _: usize, _: usize) -> Self {
        Floor(PAGE)
    }
    fn alloc(&mut self, _size: usize, align: usize) -> *mut u8 {
        self.0 = self.0.wrapping_add(64);
        ptr::without_provenance_mut(black_box(self.0 | align))
    }
    unsafe fn free(&mut self, p: *mut u8, _: usize, _: usize) {
        black_box(p);
    }
    unsafe fn realloc(&mut self, p: *mut u8, _: usize, _: usize, _: usize) -> *mut u8 {
        black_box(p)
    }
}

pub(crate) struct Ours(Heap<ArenaBackend<'static>>);

impl Contender for Ours {
    const NAME: &'static str = "myos-mm";
    unsafe fn init(base: *mut u8, arena: usize, initial: usize) -> Self {
        // SAFETY: the caller gives us the arena for our lifetime.
        let mem = unsafe { std::slice::from_raw_parts_mut(base, arena) };
        let backend = ArenaBackend::new(mem);
        let s = backend.start();
        Ours(Heap::new(backend, s, s + initial, s + arena, HeapFlags::KERNEL).expect("heap"))
    }
    #[inline(always)]
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        self.0
            .alloc(size, align)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline(always)]
    unsafe fn free(&mut self, p: *mut u8, size: usize, _: usize) {
        // The size is a hint only (as every peer here is given it).
        let r = self.0.free_sized(NonNull::new(p).expect("live"), size);
        debug_assert!(r.is_ok());
    }
    #[inline(always)]
    unsafe fn realloc(&mut self, p: *mut u8, old: usize, align: usize, new: usize) -> *mut u8 {
        let p = NonNull::new(p).expect("live");
        self.0
            .realloc_sized(p, old, new, align)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}

pub(crate) struct Talc {
    talc: talc::base::Talc<talc::source::Manual, talc::DefaultBinning>,
    base: *mut u8,
    end: NonNull<u8>,
    limit: *mut u8,
}

impl Contender for Talc {
    const NAME: &'static str = "talc 5";
    unsafe fn init(base: *mut u8, arena: usize, initial: usize) -> Self {
        let mut talc = talc::base::Talc::new(talc::source::Manual);
        // SAFETY: the arena is ours for the contender's lifetime.
        let end = unsafe { talc.claim(base, initial) }.expect("claim");
        // SAFETY: in bounds of the arena.
        let limit = unsafe { base.add(arena) };
        Talc {
            talc,
            base,
            end,
            limit,
        }
    }
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        // SAFETY: sizes in the traces are non-zero.
        unsafe { self.talc.allocate(layout(size, align)) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize, align: usize) {
        // SAFETY: caller contract.
        unsafe { self.talc.deallocate(p, layout(size, align)) }
    }
    #[inline]
    unsafe fn realloc(&mut self, p: *mut u8, size: usize, align: usize, new: usize) -> *mut u8 {
        // SAFETY: caller contract.
        unsafe {
            if self.talc.try_realloc_in_place(p, layout(size, align), new) {
                p
            } else {
                move_block(self, p, size, align, new)
            }
        }
    }
    fn grow(&mut self, need: usize) -> bool {
        let cur = self.end.as_ptr();
        let (len, room) = (
            cur.addr() - self.base.addr(),
            self.limit.addr() - cur.addr(),
        );
        let Some(by) = extension(len, room, need) else {
            return false;
        };
        // SAFETY: extends into the arena we own, right after the heap's end.
        self.end = unsafe { self.talc.extend(self.end, cur.add(by)) };
        true
    }
}

type TlsfT =
    rlsf::Tlsf<'static, usize, usize, { usize::BITS as usize - 12 }, { usize::BITS as usize }>;

pub(crate) struct Rlsf {
    tlsf: TlsfT,
    base: *mut u8,
    end: *mut u8,
    limit: *mut u8,
}

impl Contender for Rlsf {
    const NAME: &'static str = "rlsf 0.2";
    unsafe fn init(base: *mut u8, arena: usize, initial: usize) -> Self {
        let mut tlsf = TlsfT::new();
        let block = NonNull::slice_from_raw_parts(NonNull::new(base).expect("arena"), initial);
        // SAFETY: the arena is ours for the contender's lifetime.
        unsafe { tlsf.insert_free_block_ptr(block) };
        // SAFETY: in bounds of the arena.
        let (end, limit) = unsafe { (base.add(initial), base.add(arena)) };
        Rlsf {
            tlsf,
            base,
            end,
            limit,
        }
    }
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        self.tlsf
            .allocate(layout(size, align))
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, _: usize, align: usize) {
        // SAFETY: caller contract.
        unsafe { self.tlsf.deallocate(NonNull::new_unchecked(p), align) }
    }
    #[inline]
    unsafe fn realloc(&mut self, p: *mut u8, _: usize, align: usize, new: usize) -> *mut u8 {
        // SAFETY: caller contract.
        unsafe {
            self.tlsf
                .reallocate(NonNull::new_unchecked(p), layout(new, align))
        }
        .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    fn grow(&mut self, need: usize) -> bool {
        let (len, room) = (
            self.end.addr() - self.base.addr(),
            self.limit.addr() - self.end.addr(),
        );
        let Some(by) = extension(len, room, need) else {
            return false;
        };
        let block = NonNull::slice_from_raw_parts(NonNull::new(self.end).expect("end"), by);
        // SAFETY: the block starts at the pool's end and lies in our arena.
        unsafe { self.tlsf.append_free_block_ptr(block) };
        // SAFETY: in bounds of the arena.
        self.end = unsafe { self.end.add(by) };
        true
    }
}

pub(crate) struct Buddy {
    heap: buddy_system_allocator::Heap<32>,
    base: usize,
    end: usize,
    limit: usize,
}

impl Contender for Buddy {
    const NAME: &'static str = "buddy_system_allocator";
    unsafe fn init(base: *mut u8, arena: usize, initial: usize) -> Self {
        let mut heap = buddy_system_allocator::Heap::<32>::new();
        // SAFETY: the arena is ours for the contender's lifetime.
        unsafe { heap.init(base.addr(), initial) };
        Buddy {
            heap,
            base: base.addr(),
            end: base.addr() + initial,
            limit: base.addr() + arena,
        }
    }
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        self.heap
            .alloc(layout(size, align))
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize, align: usize) {
        // SAFETY: caller contract.
        unsafe {
            self.heap
                .dealloc(NonNull::new_unchecked(p), layout(size, align))
        }
    }
    #[inline]
    unsafe fn realloc(&mut self, p: *mut u8, size: usize, align: usize, new: usize) -> *mut u8 {
        // SAFETY: caller contract.
        unsafe { move_block(self, p, size, align, new) }
    }
    fn grow(&mut self, need: usize) -> bool {
        let Some(by) = extension(self.end - self.base, self.limit - self.end, need) else {
            return false;
        };
        // SAFETY: a fresh part of our arena.
        unsafe { self.heap.add_to_heap(self.end, self.end + by) };
        self.end += by;
        true
    }
}

pub(crate) struct LinkedList {
    heap: linked_list_allocator::Heap,
    limit: usize,
}

impl Contender for LinkedList {
    const NAME: &'static str = "linked_list_allocator";
    unsafe fn init(base: *mut u8, arena: usize, initial: usize) -> Self {
        // SAFETY: the arena is ours for the contender's lifetime.
        let heap = unsafe { linked_list_allocator::Heap::new(base, initial) };
        LinkedList {
            heap,
            limit: base.addr() + arena,
        }
    }
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        self.heap
            .allocate_first_fit(layout(size, align))
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize, align: usize) {
        // SAFETY: caller contract.
        unsafe {
            self.heap
                .deallocate(NonNull::new_unchecked(p), layout(size, align))
        }
    }
    #[inline]
    unsafe fn realloc(&mut self, p: *mut u8, size: usize, align: usize, new: usize) -> *mut u8 {
        // SAFETY: caller contract.
        unsafe { move_block(self, p, size, align, new) }
    }
    fn grow(&mut self, need: usize) -> bool {
        let room = self.limit - self.heap.top().addr();
        let Some(by) = extension(self.heap.size(), room, need) else {
            return false;
        };
        // SAFETY: the bytes after the heap's top are ours.
        unsafe { self.heap.extend(by) };
        true
    }
}

/// `C` as talc's harness uses every allocator: behind a spin lock, called
/// through `&dyn GlobalAlloc` (`--locked`). The trait object is passed
/// through `black_box`, so the calls stay indirect (nothing of the
/// allocator is inlined into the replay loop), and every call takes and
/// releases the lock (two atomic operations).
pub(crate) struct Locked<C: Contender>(Box<LockedInner<C>>);

struct LockedInner<C: Contender>(spin::Mutex<C>);

// SAFETY: every call goes to the contender under the lock, with the
// contract of `Contender` (the layouts the harness allocated with).
unsafe impl<C: Contender> GlobalAlloc for LockedInner<C> {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.0.lock().alloc(l.size(), l.align())
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: caller contract.
        unsafe { self.0.lock().free(p, l.size(), l.align()) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: caller contract.
        unsafe { self.0.lock().realloc(p, l.size(), l.align(), new) }
    }
}

impl<C: Contender> Locked<C> {
    /// The allocator as an opaque trait object.
    #[inline(always)]
    fn dynamic(&self) -> &dyn GlobalAlloc {
        black_box(&*self.0 as &dyn GlobalAlloc)
    }
}

impl<C: Contender> Contender for Locked<C> {
    const NAME: &'static str = C::NAME;
    unsafe fn init(base: *mut u8, arena: usize, initial: usize) -> Self {
        // SAFETY: the caller's contract, passed on.
        Locked(Box::new(LockedInner(spin::Mutex::new(unsafe {
            C::init(base, arena, initial)
        }))))
    }
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        // SAFETY: sizes in the traces are non-zero.
        unsafe { self.dynamic().alloc(layout(size, align)) }
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize, align: usize) {
        // SAFETY: caller contract.
        unsafe { self.dynamic().dealloc(p, layout(size, align)) }
    }
    #[inline]
    unsafe fn realloc(&mut self, p: *mut u8, size: usize, align: usize, new: usize) -> *mut u8 {
        // SAFETY: caller contract.
        unsafe { self.dynamic().realloc(p, layout(size, align), new) }
    }
    fn grow(&mut self, need: usize) -> bool {
        self.0 .0.lock().grow(need)
    }
}
