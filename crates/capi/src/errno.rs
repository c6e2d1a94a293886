//! `mm_errno()`: the outcome of the last call, errno-style.

use core::ffi::{c_char, c_int, CStr};
use core::sync::atomic::{AtomicI32, Ordering};

use myos_abi::errno::{self as codes, errno_of, ENODEV};
use myos_mm::MmError;

/// Why a C API call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The core refused (its code is `myos_abi::errno::errno_of`).
    Mm(MmError),
    /// No platform has been registered yet (`MM_ENODEV`).
    NotSetUp,
    /// A page fault no region allows (`MM_EFAULT`).
    Unresolved,
    /// The call belongs to the other paging mode: `get_page` and `page_t`
    /// under PAE, `get_page64` and `page64_t` under classic paging
    /// (`MM_EOPNOTSUPP`).
    OtherMode,
    /// A physical address above 4 GiB asked for as 32 bits
    /// (`MM_EOVERFLOW`).
    AboveFourGiB,
}

impl From<MmError> for Failure {
    fn from(e: MmError) -> Self {
        Failure::Mm(e)
    }
}

impl Failure {
    /// The `MM_E*` code C sees.
    pub const fn code(self) -> i32 {
        match self {
            Failure::Mm(e) => errno_of(e),
            Failure::NotSetUp => ENODEV,
            Failure::Unresolved => codes::EFAULT,
            Failure::OtherMode => codes::EOPNOTSUPP,
            Failure::AboveFourGiB => codes::EOVERFLOW,
        }
    }
}

/// The result of an API call.
pub type CResult<T> = Result<T, Failure>;

/// The last call's outcome (one value for the system: a single-CPU kernel).
static ERRNO: AtomicI32 = AtomicI32::new(0);

/// Records `r`'s outcome in `mm_errno` and returns its value, if any.
pub(crate) fn record<T>(r: CResult<T>) -> Option<T> {
    match r {
        Ok(v) => {
            ERRNO.store(0, Ordering::Relaxed);
            Some(v)
        }
        Err(f) => {
            ERRNO.store(f.code(), Ordering::Relaxed);
            None
        }
    }
}

/// `int mm_errno(void)`: 0 when the last call succeeded, else its `MM_E*` code.
#[no_mangle]
pub extern "C" fn mm_errno() -> c_int {
    ERRNO.load(Ordering::Relaxed)
}

/// `const char *mm_strerror(int code)`: a static, NUL-terminated description.
#[no_mangle]
pub extern "C" fn mm_strerror(code: c_int) -> *const c_char {
    strerror(code).as_ptr()
}

fn strerror(code: i32) -> &'static CStr {
    match code {
        0 => c"success",
        codes::EPERM => c"address is in a fixed kernel mapping",
        codes::EBADF => c"bad file descriptor",
        codes::ENOMEM => c"out of memory",
        codes::EACCES => c"access denied",
        codes::EFAULT => c"heap corrupted or unresolvable page fault",
        codes::EBUSY => c"busy",
        codes::EEXIST => c"already mapped or overlapping",
        ENODEV => c"memory manager not set up",
        codes::EINVAL => c"invalid argument",
        codes::EOVERFLOW => c"value too large (reference count, or physical address above 4 GiB)",
        codes::EOPNOTSUPP => c"not available in the running paging mode",
        _ => c"unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_core() {
        assert_eq!(Failure::Mm(MmError::OutOfMemory).code(), 12);
        assert_eq!(Failure::Mm(MmError::BadPointer).code(), 22);
        assert_eq!(Failure::NotSetUp.code(), 19);
        assert_eq!(Failure::Unresolved.code(), 14);
        assert_eq!(Failure::OtherMode.code(), 95);
        assert_eq!(Failure::AboveFourGiB.code(), 75);
        assert_eq!(
            strerror(95).to_str().unwrap(),
            "not available in the running paging mode"
        );
        assert_eq!(strerror(22).to_str().unwrap(), "invalid argument");
        assert_eq!(strerror(-5).to_str().unwrap(), "unknown error");
    }
}
