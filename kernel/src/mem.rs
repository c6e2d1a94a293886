//! The memory functions the compiler and the precompiled `core` call.
//!
//! `i686-unknown-linux-gnu` expects them from libc; the kernel has none, so
//! they are here, on `rep movsb`/`rep stosb` (fast on every CPU since the
//! P6 thanks to fast-string microcode). They are written so the compiler
//! cannot turn them back into calls to themselves.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dest` (the regions must not overlap).
///
/// # Safety
///
/// `src` must be valid for reads and `dest` for writes of `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges; `rep movsb` copies exactly
    // `n` bytes forward (DF is clear in all kernel code).
    unsafe {
        asm!("xchg esi, {src}", "rep movsb", "xchg esi, {src}",
             src = inout(reg) src => _, inout("ecx") n => _, inout("edi") dest => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// Copies `n` bytes from `src` to `dest`; the regions may overlap.
///
/// # Safety
///
/// `src` must be valid for reads and `dest` for writes of `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n == 0 {
        return dest;
    }
    if (dest as usize) <= (src as usize) || (dest as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: a forward copy is correct when dest is below src or the
        // ranges don't overlap; the caller guarantees both ranges.
        unsafe { memcpy(dest, src, n) }
    } else {
        // SAFETY: dest overlaps the tail of src: copy backwards from the last
        // byte with DF set, then clear DF again as the ABI requires.
        unsafe {
            asm!("xchg esi, {src}", "std", "rep movsb", "cld", "xchg esi, {src}",
                 src = inout(reg) src.add(n - 1) => _,
                 inout("ecx") n => _,
                 inout("edi") dest.add(n - 1) => _,
                 options(nostack));
        }
        dest
    }
}

/// Fills `n` bytes at `dest` with the byte `c`.
///
/// # Safety
///
/// `dest` must be valid for writes of `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range; `rep stosb` writes `n` bytes.
    unsafe {
        asm!("rep stosb", inout("ecx") n => _, inout("edi") dest => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// Compares `n` bytes; negative, zero or positive like C's `memcmp`.
///
/// # Safety
///
/// Both pointers must be valid for reads of `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n` and the caller guarantees `n` readable bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// Compares `n` bytes for equality (zero when equal).
///
/// # Safety
///
/// Both pointers must be valid for reads of `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}

/// The unwinding personality the precompiled `core` refers to. Panics abort
/// in this kernel, so it is never called.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// Called by landing pads in the precompiled `alloc` to continue unwinding.
/// Panics abort in this kernel, so no unwind ever starts; reaching this is a
/// bug, reported like a panic.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    panic!("_Unwind_Resume called, but the kernel never unwinds")
}
