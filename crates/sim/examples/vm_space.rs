//! A process address space (`myos_mm::vm::VmSpace`) on the simulated
//! machine: `mmap`, page faults serviced by the core's handler, a
//! copy-on-write `fork`, a segfault, `munmap` — wired by hand the way a
//! kernel wires it (frame allocator, kernel space, one space per process,
//! the page-fault handler retrying the access), with the frame accounting
//! checked back at its baseline.
//!
//! ```sh
//! cargo run -p myos-sim --example vm_space
//! ```
//!
//! (`myos_sim::World` packages the same wiring for tests.)

use myos_abi::{RawMman, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use myos_mm::frames::FrameAllocator;
use myos_mm::paging::AddressSpace;
use myos_mm::vm::{FaultKind, FaultOutcome, FdTable, PageFault, SegvCause, Signal, VmSpace};
use myos_mm::{PhysAddr, VirtAddr};
use myos_sim::{Mode, SimMachine};
use spin::Mutex;

/// RAM of the simulated machine: 32 MiB.
const RAM: u64 = 32 << 20;

/// The CPU's side of a page fault: runs `op` (one user access); on a fault,
/// hands CR2 and the error code to the space's handler, as the #PF entry
/// does, and retries the access when the handler resolved it. Returns the
/// access's value or the outcome that stopped it.
fn user_access<T, F>(
    m: &SimMachine,
    vm: &mut VmSpace<'_, SimMachine, F>,
    kinds: &mut Vec<FaultKind>,
    mut op: impl FnMut(&SimMachine) -> Result<T, myos_sim::PageFault>,
) -> Result<T, FaultOutcome>
where
    F: myos_mm::frames::FrameSource + Clone,
{
    vm.activate();
    loop {
        match op(m) {
            Ok(v) => return Ok(v),
            Err(f) => match vm.handle_fault(PageFault::new(f.cr2, f.error_code)) {
                FaultOutcome::Resolved(kind) => kinds.push(kind),
                other => return Err(other),
            },
        }
    }
}

fn main() {
    // Boot: a machine, the frame allocator over its memory map, the kernel
    // address space, loaded.
    let m = SimMachine::new(RAM).expect("simulated machine");
    let map = m.memory_map().to_vec();
    // SAFETY: the allocator is dropped before the machine.
    let mut fa = unsafe { FrameAllocator::new(&m, &map) }.expect("frame allocator");
    let kernel = AddressSpace::new_kernel(&m, &mut fa, PhysAddr::new(RAM as u32)).expect("kernel");
    kernel.activate(&m);
    let frames = Mutex::new(fa);
    let baseline = frames.lock().stats();
    println!(
        "booted {} MiB: {} frames free with the kernel space built",
        RAM >> 20,
        baseline.free
    );

    // A process: its own space (sharing the kernel half) and descriptors.
    let mut vm = VmSpace::new(&m, &frames, &kernel).expect("process space");
    let fds = FdTable::new();
    let len = 4 * 4096;
    let a = vm
        .mmap(
            &fds,
            VirtAddr::new(0),
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
        .expect("mmap");
    let after_mmap = frames.lock().stats().used;
    println!(
        "mmap: {len} bytes at {a:?}, {} frames taken (lazy: the new page directory and its table counts, no page yet)",
        after_mmap - baseline.used
    );

    // Touch every page: each first write faults and is demand-zeroed.
    let mut kinds = Vec::new();
    for i in 0..4 {
        let va = a.as_u32() + i * 4096 + 8;
        user_access(&m, &mut vm, &mut kinds, |m| {
            m.write_u32(va, 100 + i, Mode::User)
        })
        .unwrap();
    }
    assert_eq!(kinds, [FaultKind::DemandZero; 4]);
    let v = user_access(&m, &mut vm, &mut kinds, |m| {
        m.read_u32(a.as_u32() + 3 * 4096 + 8, Mode::User)
    });
    assert_eq!(v, Ok(103));
    assert_eq!(vm.resident_pages(), 4);
    println!(
        "touched 4 pages: 4 demand-zero faults, resident {}",
        vm.resident_pages()
    );

    // fork: the child shares the frames copy-on-write; its first write
    // copies one page, the parent's data stays.
    let mut child = vm.fork().expect("fork");
    kinds.clear();
    user_access(&m, &mut child, &mut kinds, |m| {
        m.write_u32(a.as_u32() + 8, 7, Mode::User)
    })
    .unwrap();
    assert_eq!(kinds, [FaultKind::CopyOnWrite]);
    assert_eq!(
        user_access(&m, &mut vm, &mut kinds, |m| m
            .read_u32(a.as_u32() + 8, Mode::User)),
        Ok(100)
    );
    assert_eq!(
        user_access(&m, &mut child, &mut kinds, |m| m
            .read_u32(a.as_u32() + 8, Mode::User)),
        Ok(7)
    );
    println!("fork: child's write copied one page; parent still reads 100, child 7");

    // An access outside every region: the handler says SIGSEGV (the kernel
    // kills the process; here we just look at the outcome).
    let wild = 0x3000_0000;
    let r = user_access(&m, &mut child, &mut kinds, |m| m.read_u32(wild, Mode::User));
    assert!(matches!(
        r,
        Err(FaultOutcome::Signal(Signal::Segv {
            cause: SegvCause::NoRegion,
            ..
        }))
    ));
    println!("read at {wild:#x}: {r:?}");
    drop(child); // exit: the child's frames and tables go back

    // munmap: the frames and the emptied page table go back at once.
    vm.munmap(a, len).expect("munmap");
    assert_eq!(vm.resident_pages(), 0);
    let r = user_access(&m, &mut vm, &mut kinds, |m| {
        m.read_u32(a.as_u32(), Mode::User)
    });
    assert!(
        matches!(r, Err(FaultOutcome::Signal(Signal::Segv { .. }))),
        "gone after munmap"
    );
    assert_eq!(
        frames.lock().stats().used,
        after_mmap,
        "only the directory and its counts left"
    );
    vm.destroy(); // exit (also switches CR3 back to the kernel's directory)

    let end = frames.lock().stats();
    assert_eq!(end, baseline, "every frame back at baseline");
    frames.lock().validate().expect("allocator consistent");
    println!(
        "munmap + exit: {} frames free (baseline {})",
        end.free, baseline.free
    );
}
