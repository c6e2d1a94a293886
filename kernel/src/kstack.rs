//! Kernel stacks with guard pages (placeholder).

/// True when `addr` lies in a kernel-stack guard page.
pub fn is_guard(addr: u32) -> bool {
    let _ = addr;
    false
}
