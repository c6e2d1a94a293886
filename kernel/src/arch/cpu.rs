//! CPU protection features: SMEP and SMAP, probed with CPUID and turned on
//! at boot when the CPU has them; the fault context the page-fault handler
//! needs from them; and [`UserAccess`], the `stac`/`clac` window in which
//! ring 0 may touch user pages directly under SMAP.
//!
//! Without SMAP, `stac` and `clac` raise #UD, so both are only executed when
//! [`init`] found SMAP and turned it on.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use myos_mm::vm::FaultContext;

use super::regs::{cpuid1_edx, cpuid7_ebx, cpuid_ext1_edx, cr4, efer, eflags};

/// CR4.SMEP is on.
static SMEP_ON: AtomicBool = AtomicBool::new(false);
/// CR4.SMAP is on (so `stac`/`clac` exist).
static SMAP_ON: AtomicBool = AtomicBool::new(false);

/// What [`init`] found and enabled.
#[derive(Clone, Copy, Debug)]
pub struct Protections {
    /// The CPU has SMEP (CPUID.(7,0):EBX bit 7); it is on when true.
    pub smep: bool,
    /// The CPU has SMAP (CPUID.(7,0):EBX bit 20); it is on when true.
    pub smap: bool,
}

impl fmt::Display for Protections {
    /// `SMEP on, SMAP on`, or `SMEP off (not supported)` … as the boot
    /// log prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = |on: bool| if on { "on" } else { "off (not supported)" };
        write!(f, "SMEP {}, SMAP {}", state(self.smep), state(self.smap))
    }
}

/// CPUID leaf 7, subleaf 0, EBX: the structured extended features (0 when
/// the CPU's highest basic leaf is below 7).
fn cpuid7_ebx() -> u32 {
    use core::arch::x86::{__cpuid, __cpuid_count};
    // SAFETY: CPUID exists on every CPU this kernel boots on (i686); leaf 0
    // gives the highest basic leaf, and leaf 7 is only asked when it exists.
    #[allow(unused_unsafe)]
    unsafe {
        if __cpuid(0).eax < 7 {
            return 0;
        }
        __cpuid_count(7, 0).ebx
    }
}

fn read_cr4() -> u32 {
    let v: u32;
    // SAFETY: reading CR4 in ring 0 has no side effect.
    unsafe {
        core::arch::asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// # Safety
/// `value` must be a valid CR4 for the running kernel.
unsafe fn write_cr4(value: u32) {
    // SAFETY: the caller passes a valid CR4.
    unsafe { core::arch::asm!("mov cr4, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// Probes SMEP and SMAP and turns on each the CPU has. Call once at boot,
/// before any process runs and before any code touches user pages (the
/// kernel's accesses to them are all inside [`UserAccess`] or go through
/// frames).
pub fn init() -> Protections {
    let ebx = cpuid7_ebx();
    let found = Protections {
        smep: ebx & cpuid7_ebx::SMEP != 0,
        smap: ebx & cpuid7_ebx::SMAP != 0,
    };
    let mut bits = 0;
    if found.smep {
        bits |= cr4::SMEP;
    }
    if found.smap {
        bits |= cr4::SMAP;
    }
    if bits != 0 {
        // SAFETY: only bits the CPU reports are added; the kernel runs in
        // the kernel half (supervisor pages) and touches user pages only
        // through frames or inside `UserAccess`.
        unsafe { write_cr4(read_cr4() | bits) };
    }
    SMEP_ON.store(found.smep, Ordering::SeqCst);
    SMAP_ON.store(found.smap, Ordering::SeqCst);
    // Nothing in the boot path sets AC, but start from a known state.
    clac();
    found
}

/// What the CPU offers for PAE paging: CPUID leaf 1 EDX bit 6 (PAE) and
/// leaf 0x8000_0001 EDX bit 20 (NX, asked only when the highest extended
/// leaf reaches it).
#[derive(Clone, Copy, Debug)]
pub struct PagingSupport {
    /// The CPU has PAE.
    pub pae: bool,
    /// The CPU has NX (EFER.NXE).
    pub nx: bool,
}

/// Probes PAE and NX.
pub fn paging_support() -> PagingSupport {
    use core::arch::x86::__cpuid;
    // SAFETY: CPUID exists on every CPU this kernel boots on (i686); leaf
    // 0x8000_0000 gives the highest extended leaf, and 0x8000_0001 is only
    // asked when it exists.
    #[allow(unused_unsafe)]
    let (edx1, ext_edx) = unsafe {
        let edx1 = __cpuid(1).edx;
        let max_ext = __cpuid(0x8000_0000).eax;
        let ext = if max_ext >= 0x8000_0001 {
            __cpuid(0x8000_0001).edx
        } else {
            0
        };
        (edx1, ext)
    };
    PagingSupport {
        pae: edx1 & cpuid1_edx::PAE != 0,
        nx: ext_edx & cpuid_ext1_edx::NX != 0,
    }
}

/// Sets EFER.NXE (bit 63 of PAE entries becomes no-execute).
///
/// # Safety
///
/// The CPU must have NX ([`paging_support`]); `rdmsr`/`wrmsr` of EFER
/// raise #GP otherwise.
pub unsafe fn enable_nx() {
    // SAFETY: the caller checked NX, so EFER exists; only NXE is added.
    unsafe {
        core::arch::asm!(
            "rdmsr", "or eax, {nxe}", "wrmsr",
            in("ecx") efer::MSR, out("eax") _, out("edx") _,
            nxe = const efer::NXE, options(nostack, preserves_flags),
        );
    }
}

/// True when CR4.SMEP is on.
pub fn smep_on() -> bool {
    SMEP_ON.load(Ordering::Relaxed)
}

/// True when CR4.SMAP is on.
pub fn smap_on() -> bool {
    SMAP_ON.load(Ordering::Relaxed)
}

/// `clac` when SMAP is on (else nothing: the instruction would be #UD).
/// The trap entry calls it, so handlers never inherit an open window.
#[inline]
pub fn clac() {
    if smap_on() {
        // SAFETY: SMAP is on, so `clac` exists; it only clears EFLAGS.AC.
        unsafe { core::arch::asm!("clac", options(nomem, nostack)) };
    }
}

/// `stac` when SMAP is on (else nothing).
#[inline]
fn stac() {
    if smap_on() {
        // SAFETY: SMAP is on, so `stac` exists; it only sets EFLAGS.AC.
        unsafe { core::arch::asm!("stac", options(nomem, nostack)) };
    }
}

/// The fault context of a fault taken with `eflags` (the trap frame's):
/// the protections in force and the interrupted code's EFLAGS.AC.
pub fn fault_context(eflags_at_fault: u32) -> FaultContext {
    FaultContext::new(smep_on(), smap_on(), eflags_at_fault & eflags::AC != 0)
}

/// A window in which ring 0 may read and write user pages directly: `stac`
/// on creation, `clac` when dropped (both only when SMAP is on). Every
/// direct kernel access to a user address goes inside one; the system
/// calls use the core's frame-based `copy_from_user`/`copy_to_user`
/// instead and need none.
///
/// A trap taken inside the window starts its handler with AC clear
/// (`trap_dispatch` begins with [`clac`]) and `iret` restores the window's
/// AC.
#[must_use = "the window closes when the guard is dropped"]
pub struct UserAccess(());

impl UserAccess {
    /// Opens the window.
    pub fn begin() -> Self {
        stac();
        UserAccess(())
    }
}

impl Drop for UserAccess {
    fn drop(&mut self) {
        clac();
    }
}
