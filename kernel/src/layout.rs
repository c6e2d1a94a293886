//! Where the kernel image and its boot-time stacks are, as the linker placed
//! them (`link.ld`, the `.bss` stacks of `boot`). The virtual layout of the
//! memory manager (direct map, heap, kernel stacks, kmap window) is the
//! core's: `myos_mm::layout`.

extern "C" {
    static double_fault_stack_top: u8;
    static __kernel_phys_start: u8;
    static __kernel_phys_end: u8;
}

/// Kernel-virtual address one past the double-fault stack.
pub fn double_fault_stack_top_addr() -> u32 {
    core::ptr::addr_of!(double_fault_stack_top) as u32
}

/// Physical range `[start, end)` of the kernel image, `.bss` included.
pub fn kernel_image_phys() -> (u32, u32) {
    (
        core::ptr::addr_of!(__kernel_phys_start) as u32,
        core::ptr::addr_of!(__kernel_phys_end) as u32,
    )
}
