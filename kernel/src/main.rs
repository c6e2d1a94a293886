//! The MyOS reference kernel: boots on i386 (multiboot, `qemu-system-i386
//! -kernel`), brings up the memory manager of `myos-mm` on the machine and
//! runs ring-3 processes that use it, or the in-kernel test suite.
//!
//! Boot flow: [`boot`] (assembly: paging on, higher half, SSE) →
//! [`kernel_main`]: serial console, GDT/TSS, IDT, SMEP/SMAP, PIC, timer, multiboot
//! memory map → the mode chosen on the command line (`mode=demo` by default,
//! `mode=test`, `test=oops` …).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod arch;
mod boot;
mod cprog;
mod demo;
mod exit;
mod kstack;
mod ktest;
mod layout;
mod mem;
mod mm;
mod multiboot;
mod platform;
mod process;
mod programs;
mod serial;
mod smp;
mod smpcheck;
mod sync;
mod text;
mod trap;

use core::panic::PanicInfo;

use exit::{exit_qemu, ExitCode};
use multiboot::Size;
use platform::Paging;

/// The Rust entry point, called by `higher_half` with the multiboot magic
/// and the physical address of the multiboot information.
extern "C" fn kernel_main(magic: u32, info: u32) -> ! {
    serial::init();
    println!("MyOS reference kernel booting");
    let (percpu, percpu_size) = arch::percpu::boot_segment();
    arch::gdt::init(
        trap::double_fault_entry_addr(),
        layout::double_fault_stack_top_addr(),
        platform::read_cr3(),
        percpu,
        percpu_size,
    );
    arch::idt::init(trap::entry_stubs());
    let protections = arch::cpu::init();
    println!("cpu: {protections}");
    arch::pic::init();
    arch::pit::init();
    arch::pic::unmask(arch::pic::IRQ_TIMER);

    let boot_info = match multiboot::parse(magic, info, layout::kernel_image_phys()) {
        Ok(b) => multiboot::keep(b),
        Err(e) => {
            println!("boot failed: {e}");
            exit_qemu(ExitCode::Failure)
        }
    };
    println!("command line: {:?}", boot_info.cmdline());
    let paging = choose_paging(boot_info.option("paging"));
    println!("paging: {}", paging.describe());
    print_memory_map(boot_info);
    let mm = match mm::init(boot_info.regions(), paging) {
        Ok(mm) => mm,
        Err(e) => {
            println!("memory manager initialisation failed: {e}");
            exit_qemu(ExitCode::Failure)
        }
    };
    let stats = mm::frame_stats();
    println!(
        "frames: {} usable ({}), {} free, {} for allocator metadata; kernel space at {:?}",
        stats.total,
        Size(u64::from(stats.total) * PAGE_BYTES),
        stats.free,
        stats.metadata,
        mm.kernel_root()
    );
    let above_4g = boot_info.usable_frames_above_4g();
    if above_4g > 0 {
        match paging {
            Paging::Classic => println!(
                "{above_4g} usable frames above 4 GiB ({}) are out of reach without PAE",
                Size(above_4g * PAGE_BYTES)
            ),
            Paging::Pae => println!(
                "{above_4g} usable frames above 4 GiB ({}) managed through PAE (zone High)",
                Size(above_4g * PAGE_BYTES)
            ),
        }
    }
    let firmware_frames = boot_info.usable_frames_reachable(paging);
    println!(
        "all RAM accounted: {} whole frames usable in the map = {} managed by the allocator + {} kept out (kernel image, boot data)",
        firmware_frames,
        stats.total,
        firmware_frames.saturating_sub(u64::from(stats.total))
    );
    let heap = mm::heap_stats();
    println!(
        "kernel heap at {:#010x}: {} mapped, {} used",
        myos_mm::layout::HEAP_START,
        Size(heap.heap_bytes as u64),
        Size(heap.used_bytes as u64)
    );
    smp::init(smp::Setup {
        cr3: platform::read_cr3(),
        double_fault_entry: trap::double_fault_entry_addr(),
        new_stack: kstack::KernelStack::new,
        stack_top: kstack::KernelStack::top,
    });
    if boot_info.option("shootdown") == Some("off") {
        println!(
            "shootdown=off: the core's shootdowns of user pages are dropped (stale TLBs expected)"
        );
        platform::drop_shootdowns();
    }
    match (boot_info.option("mode"), boot_info.option("test")) {
        (_, Some("oops")) => ktest::deliberate_oops(),
        (_, Some("stack-overflow")) => ktest::deliberate_stack_overflow(mm),
        (_, Some("kstack-overflow")) => ktest::deliberate_process_kstack_overflow(),
        (_, Some("smep")) => ktest::deliberate_user_touch(process::TouchUser::Fetch),
        (_, Some("smap")) => ktest::deliberate_user_touch(process::TouchUser::Read),
        (_, Some("hang")) => {
            println!("test=hang: halting without reporting (the host must time out)");
            exit::halt_forever()
        }
        (Some("test"), _) => ktest::run_all(
            mm,
            boot_info.option("tests") == Some("stress"),
            boot_info.option("only"),
        ),
        (Some("c"), _) => cprog::run(),
        _ => demo::run(),
    }
}

/// The paging mode for the boot option `paging=` (`pae` or `classic`, the
/// default). PAE needs PAE and NX (a PAE entry's bit 63 is reserved without
/// NX): on a CPU without them the kernel says so and stays classic. Enters
/// PAE mode when chosen (the boot tables are still loaded).
fn choose_paging(option: Option<&str>) -> Paging {
    match option {
        None | Some("classic") => Paging::Classic,
        Some("pae") => {
            let cpu = arch::cpu::paging_support();
            if cpu.pae && cpu.nx {
                // SAFETY: the CPU has PAE and NX; the classic boot directory
                // is loaded (mm::init has not run) and nothing points
                // outside the direct map and the kernel image yet.
                unsafe { boot::enter_pae() };
                // A double fault from now on must load a PAE CR3.
                arch::gdt::set_double_fault_cr3(platform::read_cr3());
                Paging::Pae
            } else {
                let missing = match (cpu.pae, cpu.nx) {
                    (false, false) => "PAE and NX",
                    (false, true) => "PAE",
                    _ => "NX",
                };
                println!("paging=pae: this CPU has no {missing}; falling back to classic paging");
                Paging::Classic
            }
        }
        Some(other) => {
            println!("paging={other}: unknown mode (use pae or classic); classic paging");
            Paging::Classic
        }
    }
}

/// Bytes per frame.
const PAGE_BYTES: u64 = myos_mm::layout::PAGE_SIZE as u64;

/// Prints the firmware memory map as a table.
fn print_memory_map(boot: &multiboot::BootInfo) {
    println!(
        "== physical memory map (multiboot; {} usable) ==",
        Size(boot.usable_bytes())
    );
    println!("  {:<12} {:<12} {:>11}  {}", "start", "end", "size", "type");
    for e in boot.firmware() {
        println!(
            "  {:#012x} {:#012x} {:>11}  {}",
            e.base,
            e.base.saturating_add(e.length),
            Size(e.length),
            e.kind_name()
        );
    }
    println!("  kept out of the frame allocator as well:");
    for r in boot.reservations() {
        println!(
            "  {:#012x} {:#012x} {:>11}  {}",
            r.start,
            r.end,
            Size(r.end - r.start),
            r.what
        );
    }
}

/// Prints the panic and stops QEMU with a failure status.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    smp::stop_others();
    let mut w = serial::emergency_writer();
    let _ = writeln!(w, "\n*** KERNEL PANIC: {info}");
    exit_qemu(ExitCode::Failure)
}
