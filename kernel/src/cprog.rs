//! C code linked into the kernel (`cargo xtask run --c FILE.c`): the spec's
//! C API ([`myos_capi`]) over this kernel's memory manager, and the C
//! program's `int c_main(void)`, run as the C API's process after the memory
//! manager is up. `c_main` is ring-0 code that writes user mappings (from
//! `mmap`) directly, so it runs with EFLAGS.AC set (`stac`): SMAP does not
//! apply to it; SMEP does.

use myos_capi::Plat;

#[cfg(myos_c_main)]
use crate::arch::cpu::UserAccess;

use crate::exit::{exit_qemu, ExitCode};
use crate::mm::{self, KernelSpace, PLATFORM};
use crate::{println, serial};

/// Registers this kernel's memory manager, heap and console with the C API
/// and creates the C process (its directory becomes `current_directory`).
fn register() -> Result<(), &'static str> {
    let mm = mm::get();
    let platform: &'static Plat = &PLATFORM;
    let registered = match mm.kernel() {
        KernelSpace::Classic(kernel) => myos_capi::register_parts(platform, mm.frames(), kernel),
        // PAE: C code uses page64_t and get_page64 (get_page refuses).
        KernelSpace::Pae(kernel) => myos_capi::register_parts_pae(platform, mm.frames(), kernel),
    };
    registered.map_err(|_| "C API already set up")?;
    myos_capi::register_kernel_heap(mm::heap_ops()).map_err(|_| "C API heap already set up")?;
    myos_capi::register_console(serial::write_bytes);
    myos_capi::vm::create_process().map_err(|_| "cannot create the C process")?;
    Ok(())
}

/// Services a page fault of the C process (the spec's `mmap` example writes
/// a fresh mapping from kernel code). True when resolved.
pub fn page_fault(addr: u32, error: u32) -> bool {
    myos_capi::handle_page_fault(addr, error)
}

#[cfg(myos_c_main)]
extern "C" {
    fn c_main() -> i32;
}

/// `mode=c`: runs the linked C program and exits QEMU with its verdict
/// (printed as `c_main returned N`; 0 is success).
pub fn run() -> ! {
    if let Err(why) = register() {
        println!("C API set-up failed: {why}");
        exit_qemu(ExitCode::Failure)
    }
    #[cfg(myos_c_main)]
    {
        println!("calling c_main()");
        // `c_main` runs in ring 0 and writes the user pages it gets from
        // `mmap` directly (the spec's examples do): it runs inside a
        // user-access window, so SMAP does not check it (SMEP still does).
        let window = UserAccess::begin();
        // SAFETY: `c_main` is the linked C program's entry point, compiled
        // for this ABI (cdecl, i386); the C API it calls is set up above.
        let ret = unsafe { c_main() };
        drop(window);
        println!("c_main returned {ret}");
        exit_qemu(if ret == 0 {
            ExitCode::Success
        } else {
            ExitCode::Failure
        })
    }
    #[cfg(not(myos_c_main))]
    {
        println!("no C program is linked into this kernel (use cargo xtask run --c FILE.c)");
        exit_qemu(ExitCode::Failure)
    }
}
