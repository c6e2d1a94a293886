//! Named bits of the control registers and EFLAGS.

/// CR0 bits.
pub mod cr0 {
    /// MP: monitor coprocessor (`wait`/`fwait` honour TS).
    pub const MP: u32 = 1 << 1;
    /// EM: emulate the FPU (must be clear for SSE).
    pub const EM: u32 = 1 << 2;
    /// NE: native (exception 16) FPU error reporting.
    pub const NE: u32 = 1 << 5;
    /// WP: supervisor writes honour read-only pages (needed for COW from the kernel).
    pub const WP: u32 = 1 << 16;
    /// PG: paging enabled.
    pub const PG: u32 = 1 << 31;
}

/// CR4 bits.
pub mod cr4 {
    /// PSE: 4 MiB pages in page-directory entries.
    pub const PSE: u32 = 1 << 4;
    /// PAE: physical address extension (64-bit entries, CR3 holds a PDPT).
    pub const PAE: u32 = 1 << 5;
    /// PGE: global pages.
    pub const PGE: u32 = 1 << 7;
    /// OSFXSR: the OS uses `fxsave`/`fxrstor` (enables SSE).
    pub const OSFXSR: u32 = 1 << 9;
    /// OSXMMEXCPT: the OS handles SIMD exceptions (#XM).
    pub const OSXMMEXCPT: u32 = 1 << 10;
    /// SMEP: ring 0 may not fetch instructions from user pages (and every
    /// page-fault error code of a fetch gets the I/D bit).
    pub const SMEP: u32 = 1 << 20;
    /// SMAP: ring 0 may not read or write user pages unless EFLAGS.AC is set.
    pub const SMAP: u32 = 1 << 21;
}

/// EFLAGS bits.
pub mod eflags {
    /// Bit 1 is reserved and always set.
    pub const RESERVED1: u32 = 1 << 1;
    #[allow(dead_code)] // used by processes
    /// IF: maskable interrupts enabled.
    pub const IF: u32 = 1 << 9;
    /// AC: in ring 0 under CR4.SMAP, user pages may be accessed (`stac`
    /// sets it, `clac` clears it); alignment checking in ring 3 (CR0.AM is
    /// clear here, so it does nothing there).
    pub const AC: u32 = 1 << 18;
}

/// CPUID leaf 7 (subleaf 0) EBX bits.
pub mod cpuid7_ebx {
    /// SMEP supported.
    pub const SMEP: u32 = 1 << 7;
    /// SMAP supported.
    pub const SMAP: u32 = 1 << 20;
}

/// CPUID leaf 1 EDX bits.
pub mod cpuid1_edx {
    /// PAE supported.
    pub const PAE: u32 = 1 << 6;
}

/// CPUID leaf 0x8000_0001 EDX bits.
pub mod cpuid_ext1_edx {
    /// NX (execute disable) supported.
    pub const NX: u32 = 1 << 20;
}

/// The EFER model-specific register.
pub mod efer {
    /// Its MSR number.
    pub const MSR: u32 = 0xC000_0080;
    /// NXE: bit 63 of PAE entries means no-execute (reserved otherwise).
    pub const NXE: u32 = 1 << 11;
}
