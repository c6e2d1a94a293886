//! The boots that must fail, each in its own QEMU run (`test=oops`,
//! `test=stack-overflow`, `test=kstack-overflow`, `test=smep`,
//! `test=smap`): the oops and the double-fault reports are what they check.

use myos_mm::frames::Zone;
use myos_mm::layout::{HEAP_END, PAGE_SIZE};
use myos_mm::paging::PteFlags;

use super::support::map_fresh;
use crate::arch::cpu;
use crate::exit::{exit_qemu, ExitCode};
use crate::mm::{with_kernel_space, Mm};
use crate::println;
use crate::process::{self};

/// `test=oops`: a deliberate write to an unmapped kernel address. Must end in
/// an oops and a failing exit status.
pub fn deliberate_oops() -> ! {
    let target = HEAP_END - PAGE_SIZE as u32;
    println!("writing to unmapped kernel address {target:#010x} on purpose");
    // SAFETY: not safe at all, on purpose: the write page-faults in kernel
    // mode and the oops handler stops the machine.
    unsafe { (target as *mut u32).write_volatile(0xBAD) };
    println!("BUG: the write did not fault");
    exit_qemu(ExitCode::Failure)
}

/// Stack of the overflow test: mapped page by page at this address of the
/// kernel space's (otherwise empty) user half, the page below left unmapped.
const OVERFLOW_STACK_TOP: u32 = 0x3000_0000;
/// Pages of that stack.
const OVERFLOW_STACK_PAGES: u32 = 4;

/// `test=stack-overflow`: unbounded recursion on a stack with a guard page.
/// Must end in the double-fault task's report and a failing exit status.
pub fn deliberate_stack_overflow(mm: &Mm) -> ! {
    with_kernel_space!(mm, |kernel| {
        let mut space = kernel.lock();
        for i in 1..=OVERFLOW_STACK_PAGES {
            let va = OVERFLOW_STACK_TOP - i * PAGE_SIZE as u32;
            if map_fresh(mm, &mut space, va, PteFlags::WRITABLE, Zone::Direct).is_err() {
                println!("cannot map the test stack");
                exit_qemu(ExitCode::Failure)
            }
        }
    });
    println!(
        "recursing without bound on a {} KiB stack with a guard page",
        OVERFLOW_STACK_PAGES * 4
    );
    // SAFETY: switches to the freshly mapped stack and recurses until the
    // guard page faults; the double-fault task takes over and never returns.
    unsafe {
        core::arch::asm!(
            "mov esp, {top}",
            "xor ebp, ebp",
            "sub esp, 12",
            "push 0",
            "call {recurse}",
            top = in(reg) OVERFLOW_STACK_TOP,
            recurse = sym process::recurse,
            options(noreturn),
        )
    }
}

/// `test=kstack-overflow`: a process asks the kernel (through a system call
/// only this boot enables) to recurse on its kernel stack. The guard page
/// below the stack turns the overflow into a double fault, whose task must
/// report it and stop QEMU with a failure status.
pub fn deliberate_process_kstack_overflow() -> ! {
    crate::demo::init_processes();
    process::enable_kernel_stack_overflow_test();
    println!("a process makes the kernel overflow its kernel stack on purpose");
    if process::spawn("kstack_overflow").is_err() {
        println!("cannot start kstack_overflow");
        exit_qemu(ExitCode::Failure)
    }
    process::run_until_idle();
    println!("BUG: the kernel stack overflow was not caught");
    exit_qemu(ExitCode::Failure)
}

/// `test=smep` and `test=smap`: a process asks the kernel (through a system
/// call only these boots enable) to call its code page from ring 0 (SMEP)
/// or to read it with AC clear (SMAP). The fault must end in an oops that
/// names the protection, never in the handler retrying the access forever.
/// Without the feature there is nothing to stop the access: the boot says
/// so and fails.
pub fn deliberate_user_touch(how: process::TouchUser) -> ! {
    let (name, on) = match how {
        process::TouchUser::Fetch => ("SMEP", cpu::smep_on()),
        process::TouchUser::Read => ("SMAP", cpu::smap_on()),
    };
    if !on {
        println!("{name} is not supported by this CPU: nothing stops the access");
        exit_qemu(ExitCode::Failure)
    }
    crate::demo::init_processes();
    process::enable_touch_user_test(how);
    println!("a process makes the kernel touch its page from ring 0 ({name} on)");
    if process::spawn("kernel_touch").is_err() {
        println!("cannot start kernel_touch");
        exit_qemu(ExitCode::Failure)
    }
    process::run_until_idle();
    println!("BUG: the kernel's access to a user page was not stopped by {name}");
    exit_qemu(ExitCode::Failure)
}
