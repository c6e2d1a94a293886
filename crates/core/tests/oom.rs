//! Out-of-memory injection: one scenario — build the kernel space, grow a
//! heap, map, touch, fork, copy-on-write, exit — run once for every point at
//! which the frame allocator can refuse a request. At every point, each
//! operation either succeeds or reports the failure (an error, or the
//! process killed with `OutOfMemory`); nothing panics, the heap validates,
//! and after teardown every frame is back.

use myos_mm::frames::{FrameAllocator, FrameSource, Zone};
use myos_mm::heap::{Heap, HeapBackend, HeapFlags};
use myos_mm::layout::PAGE_SIZE;
use myos_mm::paging::AddressSpace;
use myos_mm::vm::{FaultOutcome, MapRequest, MapSource, PageFault, Prot, VmSpace};
use myos_mm::{MmError, OwnedFrame, PhysAddr};
use myos_sim::{FaultError, Mode, SimMachine};
use spin::Mutex;

const MIB: u64 = 1 << 20;

/// A heap backend whose pages each cost a frame from the shared allocator
/// (as the kernel heap's pages do), with the bytes kept in a host arena so
/// the heap can run on the host.
struct FrameCostArena<'a> {
    mem: Vec<u8>,
    frames: &'a Mutex<FrameAllocator>,
    /// The frame behind each mapped page, by page index.
    backing: Vec<Option<OwnedFrame>>,
}

impl<'a> FrameCostArena<'a> {
    fn new(pages: usize, frames: &'a Mutex<FrameAllocator>) -> Self {
        Self {
            mem: vec![0; (pages + 1) * PAGE_SIZE],
            frames,
            backing: (0..pages).map(|_| None).collect(),
        }
    }
    fn base(&self) -> usize {
        (self.mem.as_ptr() as usize).next_multiple_of(PAGE_SIZE)
    }
}

// SAFETY: the arena is page-aligned memory owned by this backend, offset from
// one pointer; each mapped page has its own frame; contiguous runs come from
// `alloc_contiguous`.
unsafe impl HeapBackend for FrameCostArena<'_> {
    fn pointer(&self, addr: usize) -> *mut u8 {
        let base = self.mem.as_ptr() as *mut u8;
        base.wrapping_add(addr - self.mem.as_ptr() as usize)
    }
    fn map(
        &mut self,
        addr: usize,
        pages: usize,
        contiguous: bool,
        _f: HeapFlags,
    ) -> Result<(), MmError> {
        let first = (addr - self.base()) / PAGE_SIZE;
        if first + pages > self.backing.len() {
            return Err(MmError::OutOfRange);
        }
        let mut fa = self.frames.lock();
        if contiguous {
            let run = fa.alloc_contiguous(pages as u32, 0, Zone::High)?;
            for (k, f) in run.into_frames().enumerate() {
                self.backing[first + k] = Some(f);
            }
            return Ok(());
        }
        for k in 0..pages {
            match fa.alloc(Zone::High) {
                Ok(f) => self.backing[first + k] = Some(f),
                Err(e) => {
                    for j in 0..k {
                        fa.release(self.backing[first + j].take().unwrap()).unwrap();
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
    fn unmap(&mut self, addr: usize, pages: usize) {
        let first = (addr - self.base()) / PAGE_SIZE;
        let mut fa = self.frames.lock();
        for k in first..first + pages {
            fa.release(
                self.backing[k]
                    .take()
                    .expect("heap unmapped an unmapped page"),
            )
            .unwrap();
        }
    }
    fn phys(&self, addr: usize) -> Option<PhysAddr> {
        let off = addr.checked_sub(self.base())?;
        let f = self.backing.get(off / PAGE_SIZE)?.as_ref()?;
        Some(PhysAddr::new(f.start().as_u32() + (off % PAGE_SIZE) as u32))
    }
}

type Vm<'a> = VmSpace<'a, SimMachine, &'a Mutex<FrameAllocator>>;

/// Touches `va` (write) from user mode with `vm` loaded, servicing faults.
fn touch(m: &SimMachine, vm: &mut Vm<'_>, va: u32, value: u32) -> Result<(), FaultOutcome> {
    vm.activate();
    let mut last = FaultOutcome::KernelBug;
    m.run_with_faults(
        8,
        |m| m.write_u32(va, value, Mode::User),
        |f| {
            last = vm.handle_fault(PageFault::new(f.cr2, f.error_code));
            matches!(last, FaultOutcome::Resolved(_))
        },
    )
    .map_err(|e| match e {
        FaultError::Unhandled(_) => last,
        FaultError::TooManyFaults(f) => panic!("fault loop at {f:?}"),
    })
}

/// What a run of the scenario did.
#[derive(Debug, Default)]
struct Outcome {
    completed: bool,
    errors: u32,
    killed: u32,
}

/// The scenario; returns early (cleanly) wherever memory runs out.
fn scenario(m: &SimMachine, fa: &Mutex<FrameAllocator>, out: &mut Outcome) {
    let kernel = match AddressSpace::new_kernel(m, &mut *fa.lock(), PhysAddr::new(32 << 20)) {
        Ok(k) => k,
        Err(e) => {
            assert_eq!(e, MmError::OutOfMemory);
            out.errors += 1;
            return;
        }
    };
    kernel.activate(m);
    run_with_kernel(m, fa, &kernel, out);
    m.set_cr3((m.ram_bytes() - 4096) as u32);
    // SAFETY: every user space of the scenario is gone.
    unsafe { kernel.destroy_kernel(m, &mut *fa.lock()) };
}

fn run_with_kernel(
    m: &SimMachine,
    fa: &Mutex<FrameAllocator>,
    kernel: &AddressSpace,
    out: &mut Outcome,
) {
    // The heap grows from 1 page to 16 while blocks are live.
    let backend = FrameCostArena::new(32, fa);
    let start = backend.base();
    let mut heap = match Heap::new(
        backend,
        start,
        start + PAGE_SIZE,
        start + 32 * PAGE_SIZE,
        HeapFlags::KERNEL,
    ) {
        Ok(h) => h,
        Err(e) => {
            assert_eq!(e, MmError::OutOfMemory);
            out.errors += 1;
            return;
        }
    };
    let mut blocks = Vec::new();
    for i in 0..40 {
        match heap.alloc(300 + i * 37, 8) {
            Ok(p) => blocks.push(p),
            Err(e) => {
                assert_eq!(e, MmError::OutOfMemory);
                out.errors += 1;
            }
        }
        heap.validate().unwrap();
    }
    match heap.alloc_physical(3 * PAGE_SIZE, true) {
        Ok((p, _)) => blocks.push(p),
        Err(e) => {
            assert_eq!(e, MmError::OutOfMemory);
            out.errors += 1;
        }
    }
    heap.validate().unwrap();

    let mut parent: Vm<'_> = match VmSpace::new(m, fa, kernel) {
        Ok(v) => v,
        Err(e) => {
            assert_eq!(e, MmError::OutOfMemory);
            out.errors += 1;
            free_all(&mut heap, blocks);
            return;
        }
    };
    user_part(m, &mut parent, out);
    kernel.activate(m);
    parent.destroy();
    free_all(&mut heap, blocks);
}

fn free_all<B: HeapBackend>(heap: &mut Heap<B>, blocks: Vec<core::ptr::NonNull<u8>>) {
    for p in blocks {
        heap.free(p).unwrap();
    }
    heap.validate().unwrap();
    heap.trim();
}

/// mmap, touch, fork, COW on both sides, child exit.
fn user_part(m: &SimMachine, parent: &mut Vm<'_>, out: &mut Outcome) {
    let addr = match parent.map(&MapRequest {
        addr: None,
        length: 24 * 4096,
        prot: Prot::READ | Prot::WRITE,
        shared: false,
        fixed: false,
        source: MapSource::Anonymous,
    }) {
        Ok(a) => a.as_u32(),
        Err(e) => {
            assert_eq!(e, MmError::OutOfMemory);
            out.errors += 1;
            return;
        }
    };
    for i in 0..24 {
        if let Err(o) = touch(m, parent, addr + i * 4096, i) {
            assert_eq!(o, FaultOutcome::OutOfMemory);
            out.killed += 1;
            return; // the kernel kills the process: its space is destroyed
        }
    }
    let mut child = match parent.fork() {
        Ok(c) => c,
        Err(e) => {
            assert_eq!(e, MmError::OutOfMemory);
            out.errors += 1;
            return;
        }
    };
    for i in 0..24 {
        if let Err(o) = touch(m, &mut child, addr + i * 4096, 1000 + i) {
            assert_eq!(o, FaultOutcome::OutOfMemory);
            out.killed += 1;
            break;
        }
    }
    for i in 0..24 {
        if let Err(o) = touch(m, parent, addr + i * 4096, 2000 + i) {
            assert_eq!(o, FaultOutcome::OutOfMemory);
            out.killed += 1;
            break;
        }
    }
    parent.activate();
    child.destroy();
    out.completed = true;
}

#[test]
fn every_allocation_failure_point_is_survived() {
    let m = SimMachine::new(32 * MIB).unwrap();
    let map = m.memory_map().to_vec();
    // SAFETY: the allocator is dropped before `m`.
    let fa = Mutex::new(unsafe { FrameAllocator::new(&m, &map) }.unwrap());
    let boot = fa.lock().stats();

    // The successful run tells how many frame requests the scenario makes.
    let mut full = Outcome::default();
    scenario(&m, &fa, &mut full);
    assert!(
        full.completed && full.errors == 0 && full.killed == 0,
        "{full:?}"
    );
    assert_eq!(fa.lock().stats(), boot);

    let mut points = 0;
    let (mut errors, mut killed) = (0, 0);
    for n in 0.. {
        fa.lock().fail_after(Some(n));
        let mut out = Outcome::default();
        scenario(&m, &fa, &mut out);
        fa.lock().fail_after(None);
        assert_eq!(
            fa.lock().stats(),
            boot,
            "frames leaked with failure after {n} allocations: {out:?}"
        );
        fa.lock().validate().unwrap();
        errors += out.errors;
        killed += out.killed;
        if out.completed && out.errors == 0 && out.killed == 0 {
            points = n;
            break;
        }
    }
    // Every earlier point failed somewhere and was survived.
    assert!(points > 100, "the scenario makes {points} frame requests");
    assert!(errors > 0 && killed > 0);
    println!(
        "{points} failure points injected: {errors} errors returned, {killed} processes killed"
    );
}
