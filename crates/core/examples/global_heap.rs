//! The kernel heap as `#[global_allocator]`, over a static arena, as a
//! `no_std` kernel would run it before it has paging of its own.
//!
//! There is no Rust runtime start-up here (`#![no_main]`, a C `main`), so
//! nothing allocates before the first line of `main`, which installs the
//! heap; from then on `Box`, `Vec` and `String` use it. The heap's memory is
//! a static byte array handed to an [`ArenaBackend`]; a kernel hands the
//! heap a `PagedHeapBackend` instead (see `docs/porting.md`).
//!
//! ```sh
//! cargo run -p myos-mm --example global_heap
//! ```
//!
//! Exits 0 only when every allocation came from the arena and the heap is
//! back at its baseline after the collections are dropped.
#![no_main]

use std::cell::UnsafeCell;

use myos_mm::heap::{ArenaBackend, Heap, HeapFlags, HeapStats, LockedHeap};

/// Bytes of the arena: 1 MiB.
const ARENA_BYTES: usize = 1 << 20;
/// Bytes the heap maps at creation; it grows from there up to the arena's end.
const INITIAL_BYTES: usize = 16 * 4096;

/// The arena: a page-aligned static byte array (`.bss`).
#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: the bytes are only ever reached through the one `&mut` that
// `arena()` hands to the heap, which serialises access behind its lock.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));

/// The global allocator. It starts empty (a `static` needs a `const`
/// constructor) and panics with a message if anything allocates before
/// `main` installs a heap.
#[global_allocator]
static HEAP: LockedHeap<ArenaBackend<'static>> = LockedHeap::empty();

/// The arena as a byte slice. Called exactly once (by `init_heap`).
fn arena() -> &'static mut [u8] {
    // SAFETY: called once, so this is the only reference to the arena's
    // bytes; the static lives for the whole program.
    unsafe { &mut *ARENA.0.get() }
}

/// Installs the heap over the arena. Must run before the first allocation.
fn init_heap() {
    let backend = ArenaBackend::new(arena());
    let (start, end) = (backend.start(), backend.end());
    let heap = Heap::new(
        backend,
        start,
        start + INITIAL_BYTES,
        end,
        HeapFlags::KERNEL,
    )
    .unwrap_or_else(|e| panic!("create_heap over the arena: {e}"));
    assert!(HEAP.init(heap).is_none(), "the heap was installed twice");
}

/// The heap's statistics. The guard is dropped before returning: allocating
/// while it is held would deadlock on the heap's own lock.
fn stats() -> HeapStats {
    let guard = HEAP.lock();
    guard.as_ref().map(Heap::stats).expect("heap installed")
}

/// True when `p` lies in the arena.
fn in_arena<T: ?Sized>(p: *const T) -> bool {
    let range = ARENA.0.get() as usize..ARENA.0.get() as usize + ARENA_BYTES;
    range.contains(&(p.cast::<u8>() as usize))
}

/// The C entry point: no Rust runtime runs before it.
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    init_heap();
    // The first `println!` allocates stdout's buffer for good: take the
    // baseline after it.
    println!("heap over a static arena of {} KiB", ARENA_BYTES >> 10);
    let base = stats();

    let boxed = Box::new(0x1234_5678_u32);
    let mut numbers: Vec<u64> = (0..10_000).collect();
    numbers.retain(|n| n % 3 == 0);
    let mut text = String::from("frames, pages");
    text.push_str(", heap");
    assert!(in_arena(&*boxed) && in_arena(numbers.as_ptr()) && in_arena(text.as_ptr()));
    assert_eq!(*boxed, 0x1234_5678);
    assert_eq!(numbers.len(), 3334);
    assert_eq!(numbers.iter().sum::<u64>(), 3 * (3333 * 3334 / 2));
    assert_eq!(text, "frames, pages, heap");

    let busy = stats();
    assert!(busy.used_bytes > base.used_bytes + numbers.capacity() * 8);
    assert!(
        busy.heap_bytes > INITIAL_BYTES,
        "a 78 KiB vector made the heap grow"
    );
    println!(
        "in use: Box<u32> at {:p}, Vec<u64> of {} at {:p}, String {text:?}",
        boxed,
        numbers.len(),
        numbers.as_ptr()
    );
    println!(
        "heap: {} KiB mapped, {} bytes used, {} free",
        busy.heap_bytes >> 10,
        busy.used_bytes,
        busy.free_bytes
    );

    drop((boxed, numbers, text));
    let after = stats();
    assert_eq!(after.used_bytes, base.used_bytes, "every block came back");
    HEAP.lock()
        .as_ref()
        .map(Heap::validate)
        .expect("heap installed")
        .expect("heap intact");
    println!(
        "dropped: {} bytes used (baseline {}), {} KiB mapped; heap validated",
        after.used_bytes,
        base.used_bytes,
        after.heap_bytes >> 10
    );
    0
}
