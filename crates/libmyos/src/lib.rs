//! # libmyos — the MyOS memory manager for C kernels
//!
//! A freestanding i386 static library (`libmyos.a`) holding the C API of
//! `include/myos/memory.h` (crate `myos-capi` over the core `myos-mm`) and
//! everything a C kernel cannot provide to Rust code:
//!
//! - [`myos_init`]: one C call that takes the memory map (a C array or the
//!   multiboot information), the kernel image's physical range and C
//!   callbacks, and brings up the frame allocator, the kernel page
//!   directory, the kernel heap and the C process (so `mmap` and
//!   `page_fault_handler` work), with a `MYOS_BOOT_E*` code for every bad
//!   boot description;
//! - the hardware layer (`x86`): the direct map, CR3, `invlpg`, the kmap
//!   window for frames above the direct map;
//! - the runtime (`rt`): the kernel heap as the global allocator, a panic
//!   handler that calls the kernel's C hook, and the symbols the precompiled
//!   `core` references (`memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`,
//!   `strlen` as weak symbols, so the kernel's own win; the unwinding
//!   symbols, never called since panics abort);
//! - [`myos_page_fault`]: a one-call fault entry for the kernel's ISR 14.
//!
//! Built for `i586-unknown-linux-gnu`, whose precompiled `core` uses no SSE:
//! the kernel need not enable SSE. The unit tests (the boot validation) run
//! on the host.
// no_std on i386 only: the host build (its unit tests, clippy) links std.
#![cfg_attr(all(target_arch = "x86", not(test)), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::ffi::{c_char, c_int};
use core::sync::atomic::{AtomicBool, Ordering};

use boot::{Boot, BootError, PhysRead, Regions};

pub mod boot;
#[cfg(all(target_arch = "x86", not(test)))]
mod rt;
#[cfg(target_arch = "x86")]
pub mod x86;

/// Set once a `myos_init` call got past validation (its bring-up then
/// either succeeds or leaves the machine half set up: no second try).
static STARTED: AtomicBool = AtomicBool::new(false);

/// Validates `boot`, claims the one initialisation, and runs `bring_up` on
/// the memory map. Returns 0 or a `MYOS_BOOT_E*` code. A refused
/// description leaves nothing changed, so the caller may fix it and retry.
///
/// # Safety
///
/// As [`boot::validate`].
pub unsafe fn init_with(
    boot: *const Boot,
    phys: &dyn PhysRead,
    bring_up: impl FnOnce(&Boot, &Regions) -> Result<(), BootError>,
) -> c_int {
    if STARTED.load(Ordering::Acquire) {
        return BootError::Already.code();
    }
    // SAFETY: forwarded to the caller.
    let regions = match unsafe { boot::validate(boot, phys) } {
        Ok(r) => r,
        Err(e) => return e.code(),
    };
    if STARTED.swap(true, Ordering::AcqRel) {
        return BootError::Already.code();
    }
    // SAFETY: `validate` checked that `boot` is not NULL.
    let b = unsafe { boot.read() };
    match bring_up(&b, &regions) {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

/// `int myos_init(const struct myos_boot *boot)`: sets up the memory manager
/// on this machine (see `include/myos/boot.h`). 0 on success, else a
/// `MYOS_BOOT_E*` code.
///
/// # Safety
///
/// `boot` must be NULL or point to a readable `struct myos_boot` whose map
/// (when not NULL) has `map_len` readable entries; its usable regions are
/// RAM nobody else uses; the CPU state is as `include/myos/boot.h` requires.
#[cfg(target_arch = "x86")]
#[no_mangle]
pub unsafe extern "C" fn myos_init(boot: *const Boot) -> c_int {
    // SAFETY: forwarded to the caller.
    unsafe { init_with(boot, &x86::DirectMapRead, x86::bring_up) }
}

/// `const char *myos_boot_strerror(int code)`: a description of a
/// `MYOS_BOOT_E*` code.
#[no_mangle]
pub extern "C" fn myos_boot_strerror(code: c_int) -> *const c_char {
    BootError::describe(code).as_ptr()
}

/// `int myos_page_fault(uint32_t cr2, uint32_t error_code)`: services a page
/// fault (what `myos_set_fault` + `page_fault_handler` + `mm_errno` do in
/// one call): 0 when resolved (return from the ISR and the access is
/// retried), `MM_EFAULT` when no region allows it, `MM_ENOMEM` without a
/// free frame, `MM_ENODEV` before `myos_init`.
#[no_mangle]
pub extern "C" fn myos_page_fault(cr2: u32, error_code: u32) -> c_int {
    myos_capi::vm::myos_set_fault(cr2, error_code);
    myos_capi::vm::page_fault_handler();
    myos_capi::mm_errno()
}

/// `int myos_page_fault_ctx(uint32_t cr2, uint32_t error_code, uint32_t
/// cpu_flags)`: [`myos_page_fault`] for a kernel that turned on SMEP or
/// SMAP (`MYOS_FAULT_*` flags: which protections, and EFLAGS.AC), so a
/// supervisor access the CPU refused is `MM_EFAULT`, never retried.
#[no_mangle]
pub extern "C" fn myos_page_fault_ctx(cr2: u32, error_code: u32, cpu_flags: u32) -> c_int {
    myos_capi::vm::myos_set_fault_ctx(cr2, error_code, cpu_flags);
    if myos_capi::mm_errno() != 0 {
        return myos_capi::mm_errno();
    }
    myos_capi::vm::page_fault_handler();
    myos_capi::mm_errno()
}

#[cfg(test)]
mod tests {
    use super::*;
    use boot::{CRegion, BOOT_VERSION, MEM_USABLE};
    use myos_mm::frames::FrameAllocator;
    use myos_sim::SimMachine;

    struct NoPhys;
    impl PhysRead for NoPhys {
        fn read(&self, _: u64, _: &mut [u8]) -> bool {
            false
        }
    }

    /// The whole initialisation path, with the simulator as the machine:
    /// a refused description can be retried; the first good one builds a
    /// frame allocator from the validated map (the kernel image stays out of
    /// it); every later call is refused with `MYOS_BOOT_EALREADY`.
    #[test]
    fn init_runs_once_and_a_refused_description_changes_nothing() {
        let map = [CRegion {
            start: 0,
            length: 32 << 20,
            kind: MEM_USABLE,
        }];
        let good = Boot {
            version: BOOT_VERSION,
            map: map.as_ptr(),
            map_len: 1,
            multiboot_info: 0,
            kernel_phys_start: 0x10_0000,
            kernel_phys_end: 0x20_0000,
            console_write: None,
            panic: None,
        };
        let bad = Boot {
            kernel_phys_end: 0,
            ..good
        };
        let mut ran = 0;
        // SAFETY: live values.
        let r = unsafe { init_with(&bad, &NoPhys, |_, _| Ok(())) };
        assert_eq!(r, BootError::Kernel.code());
        let bring_up = |_: &Boot, regions: &Regions| {
            ran += 1;
            let m: &'static SimMachine = Box::leak(Box::new(SimMachine::new(32 << 20).unwrap()));
            // SAFETY: the simulated RAM is this test's own.
            let fa = unsafe { FrameAllocator::new(m, regions.as_slice()) }
                .map_err(|_| BootError::NoMemory)?;
            let kernel = myos_mm::Frame::from_number(0x100).unwrap();
            assert!(!fa.manages(kernel), "the kernel image is reserved");
            assert!(fa.manages(myos_mm::Frame::from_number(0x300).unwrap()));
            Ok(())
        };
        // SAFETY: live values.
        assert_eq!(unsafe { init_with(&good, &NoPhys, bring_up) }, 0);
        assert_eq!(ran, 1);
        // SAFETY: live values.
        let again = unsafe { init_with(&good, &NoPhys, |_, _| Ok(())) };
        assert_eq!(again, BootError::Already.code());
    }

    #[test]
    fn faults_before_init_report_enodev() {
        assert_eq!(myos_page_fault(0x40_0000, 2), 19);
        assert_eq!(myos_page_fault_ctx(0x40_0000, 2, 0x3), 19);
    }

    #[test]
    fn unknown_cpu_flags_are_refused() {
        assert_eq!(myos_page_fault_ctx(0x40_0000, 2, 0x8), 22);
    }
}
