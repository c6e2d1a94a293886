//! `console_write`: the console C code prints to (`include/myos/console.h`).
//!
//! The formatting half (`kprintf`) is C (`crates/capi/c/kprintf.c`): stable
//! Rust cannot define C-variadic functions. It formats into a buffer and
//! calls [`console_write`], which hands the bytes to the writer the platform
//! registered (the kernel's serial port, or standard output on the host).

use core::ffi::c_char;

use spin::Once;

/// A console writer: takes bytes, writes them out.
pub type Writer = fn(&[u8]);

static WRITER: Once<Writer> = Once::new();

/// Registers the console writer (the first registration wins).
pub fn register_console(writer: Writer) {
    WRITER.call_once(|| writer);
}

/// `void console_write(const char *s, uint32_t len)`: writes `len` bytes of
/// `s` to the console; NULL or no registered writer writes nothing.
///
/// # Safety
///
/// `s` must be NULL or valid for reads of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn console_write(s: *const c_char, len: u32) {
    if s.is_null() || len == 0 {
        return;
    }
    if let Some(w) = WRITER.get() {
        // SAFETY: the caller promises `len` readable bytes at `s` (non-NULL).
        let bytes = unsafe { core::slice::from_raw_parts(s.cast::<u8>(), len as usize) };
        w(bytes);
    }
}
