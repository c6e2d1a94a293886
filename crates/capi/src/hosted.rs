//! The host library: the C API over a simulated i386 (`myos_sim_boot`).
//!
//! # Simulated virtual addresses are host addresses
//!
//! The C API hands out 32-bit addresses (`kmalloc`'s blocks, `mmap`'s
//! regions) that C code dereferences. On the host those must be real
//! memory, and the memory must *be* the simulated frames, so that what C
//! writes is what the simulated MMU, `get_physical_address` and
//! `kmalloc_physical` see. The host library does that as a software TLB:
//!
//! - the simulated RAM is a memfd (`myos-sim`'s `memfd` feature): physical
//!   address `a` is file offset `a`;
//! - at boot the simulated kernel's windows are reserved in the host process
//!   at the same addresses (`mmap(MAP_FIXED_NOREPLACE)`, `PROT_NONE`): user
//!   space `0x0040_0000..0xC000_0000` and the heap window
//!   `0xF000_0000..0xFF80_0000`; the direct map `0xC000_0000..` is the memfd
//!   itself, mapped once (it never changes);
//! - the first host access to a reserved page raises `SIGSEGV`; the handler
//!   asks the simulated MMU to translate the address (a supervisor access
//!   through the loaded directory, A/D bits included). If the page is
//!   mapped, the frame is mapped at the faulting address (`MAP_SHARED |
//!   MAP_FIXED` from the memfd) — read-only after a read, so the first write
//!   faults again and sets the dirty bit, as hardware does — and the access
//!   is retried. If it is not, in user space, the fault goes to the C
//!   process's page-fault handler (demand-zero, copy-on-write, file pages)
//!   and the translation is retried; an unresolvable fault falls through to
//!   the previous `SIGSEGV` disposition (a crash, as on real hardware);
//! - every TLB invalidation the core performs ([`Platform::flush`],
//!   `flush_all`, CR3 loads) also drops the host aliases it covers, so a
//!   stale host mapping can never outlive the simulated one.
//!
//! Constraints: Linux x86-64 (the handler reads the hardware error code from
//! the signal context to tell reads from writes); the host process must not
//! use those address ranges itself (PIE executables and the default `mmap`
//! placement never do; `myos_sim_boot` fails with `MM_ENOMEM` otherwise);
//! one simulated machine per process. The handler allocates nothing of the
//! host C library's in the aliasing path; a fault the core's VM handler
//! services runs core code, which may use the global allocator (fine for
//! tests: C code does not fault while inside `malloc`).

use std::os::fd::AsRawFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};

use libc::{c_int, c_void, siginfo_t};
use myos_mm::layout::{
    DIRECT_MAP_SIZE, DIRECT_MAP_START, HEAP_END, HEAP_START, PAGE_SIZE, USER_END, USER_MMAP_MIN,
};
use myos_mm::{Frame, Page, PhysAddr, Platform};
use myos_sim::pae::PaeMachine;
use myos_sim::{Access, Mode, PageFault, SimMachine};
use spin::{Mutex, Once};

use crate::errno::Failure;
use myos_abi::errno as codes;

/// The simulated machine, with host-alias maintenance on every TLB flush.
pub struct HostPlatform {
    sim: Machine,
}

/// The simulated CPU: classic paging (`myos_sim_boot`) or PAE
/// (`myos_sim_boot_pae`).
enum Machine {
    Classic(SimMachine),
    Pae(PaeMachine),
}

/// Runs `$body` with `$m` bound to the simulated machine, whichever it is.
macro_rules! on_machine {
    ($machine:expr, |$m:ident| $body:expr) => {
        match $machine {
            Machine::Classic($m) => $body,
            Machine::Pae($m) => $body,
        }
    };
}

impl Machine {
    /// Translates `va` as the MMU does (A/D bits included).
    fn translate(&self, va: u32, access: Access, mode: Mode) -> Result<u64, PageFault> {
        match self {
            Machine::Classic(m) => m.translate(va, access, mode).map(u64::from),
            Machine::Pae(m) => m.translate(va, access, mode),
        }
    }

    /// The memfd holding physical address `pa`, and `pa`'s offset in it.
    fn ram_fd(&self, pa: u64) -> Option<(std::os::fd::BorrowedFd<'_>, u64)> {
        match self {
            Machine::Classic(m) => m.ram_fd().map(|fd| (fd, pa)),
            Machine::Pae(m) => m.ram_fd(pa),
        }
    }
}

/// The aliased windows: user space and the kernel heap.
const WINDOWS: [(u32, u32); 2] = [(USER_MMAP_MIN, USER_END), (HEAP_START, HEAP_END)];

fn in_window(va: u32) -> Option<(u32, u32)> {
    WINDOWS.into_iter().find(|&(lo, hi)| va >= lo && va < hi)
}

/// Maps `len` bytes at `addr` as reserved, inaccessible memory (replacing
/// whatever alias was there when `fixed`).
fn reserve(addr: u32, len: u32, fixed: bool) -> bool {
    let how = if fixed {
        libc::MAP_FIXED
    } else {
        libc::MAP_FIXED_NOREPLACE
    };
    let want = addr as usize as *mut c_void;
    // SAFETY: the range lies in a window this library owns (reserved at
    // boot with MAP_FIXED_NOREPLACE, so nothing of the host lives there).
    let got = unsafe {
        libc::mmap(
            want,
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | how,
            -1,
            0,
        )
    };
    got == want
}

impl HostPlatform {
    /// Drops the host alias of one page (if it lies in a window).
    fn drop_alias(&self, page: Page) {
        let va = page.start().as_u32();
        if in_window(va).is_some() {
            reserve(va, PAGE_SIZE as u32, true);
        }
    }

    /// Drops every alias of the user window (and of the heap window too
    /// when `all`).
    fn drop_window(&self, all: bool) {
        for (i, (lo, hi)) in WINDOWS.into_iter().enumerate() {
            if i == 0 || all {
                reserve(lo, hi - lo, true);
            }
        }
    }

    /// Maps frame `frame` at `va` in the host, writable or not.
    fn alias(&self, va: u32, frame: Frame, writable: bool) -> bool {
        let Some((fd, offset)) = self.sim.ram_fd(frame.start().as_u64()) else {
            return false;
        };
        let Ok(offset) = i64::try_from(offset) else {
            return false;
        };
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let want = (va & !(PAGE_SIZE as u32 - 1)) as usize as *mut c_void;
        // SAFETY: `want` is a page of a window this library reserved; the
        // new mapping is a view of simulated RAM the simulated MMU maps at
        // this very address.
        let got = unsafe {
            libc::mmap(
                want,
                PAGE_SIZE,
                prot,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                offset,
            )
        };
        got == want
    }
}

// SAFETY: every method forwards to the simulated machine, which keeps the
// promises; the host aliases are extra views of frames at the addresses the
// simulated page tables map them to, and are dropped whenever the
// translation may change (flush, flush_all, set_root).
unsafe impl Platform for HostPlatform {
    fn frame_ptr(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        on_machine!(&self.sim, |m| m.frame_ptr(frame))
    }
    fn root(&self) -> Frame {
        on_machine!(&self.sim, |m| m.root())
    }
    unsafe fn set_root(&self, root: Frame) {
        // SAFETY: forwarded; the caller upholds `set_root`'s contract.
        on_machine!(&self.sim, |m| unsafe { m.set_root(root) });
        self.drop_window(false);
    }
    fn flush(&self, page: Page) {
        on_machine!(&self.sim, |m| m.flush(page));
        self.drop_alias(page);
    }
    fn flush_all(&self) {
        on_machine!(&self.sim, |m| m.flush_all());
        self.drop_window(true);
    }
    fn zero_frame(&self, frame: Frame) {
        on_machine!(&self.sim, |m| m.zero_frame(frame))
    }
    fn copy_frame(&self, dst: Frame, src: Frame) {
        on_machine!(&self.sim, |m| m.copy_frame(dst, src))
    }
    fn read_frame(&self, frame: Frame, offset: usize, buf: &mut [u8]) {
        on_machine!(&self.sim, |m| m.read_frame(frame, offset, buf))
    }
    fn write_frame(&self, frame: Frame, offset: usize, buf: &[u8]) {
        on_machine!(&self.sim, |m| m.write_frame(frame, offset, buf))
    }
}

static HOST: Once<HostPlatform> = Once::new();
static BOOTING: AtomicBool = AtomicBool::new(false);
/// The `SIGSEGV` disposition before ours (called for faults we don't own).
static PREVIOUS: Mutex<Option<libc::sigaction>> = Mutex::new(None);

/// The simulated classic machine, once booted with `myos_sim_boot` (for
/// Rust tests of the host library).
pub fn machine() -> Option<&'static SimMachine> {
    match HOST.get().map(|h| &h.sim) {
        Some(Machine::Classic(m)) => Some(m),
        _ => None,
    }
}

/// The simulated PAE machine, once booted with `myos_sim_boot_pae`.
pub fn pae_machine() -> Option<&'static PaeMachine> {
    match HOST.get().map(|h| &h.sim) {
        Some(Machine::Pae(m)) => Some(m),
        _ => None,
    }
}

/// Makes the host page at `addr` usable if the simulated machine maps it
/// (servicing a page fault of the C process first if needed).
fn resolve(addr: usize, write: bool) -> bool {
    let (Some(host), Ok(va)) = (HOST.get(), u32::try_from(addr)) else {
        return false;
    };
    if in_window(va).is_none() {
        return false;
    }
    let access = if write { Access::Write } else { Access::Read };
    for _ in 0..4 {
        match host.sim.translate(va, access, Mode::Supervisor) {
            Ok(pa) => {
                let Ok(pa) = PhysAddr::try_from_u64(pa) else {
                    return false;
                };
                return host.alias(va, pa.frame(), write);
            }
            Err(fault) => {
                if va >= USER_END || !crate::vm::handle_page_fault(fault.cr2, fault.error_code) {
                    return false;
                }
            }
        }
    }
    false
}

/// True when the faulting access was a write (bit 1 of the x86 page-fault
/// error code the kernel saves in the signal context).
///
/// # Safety
///
/// `ctx` must be the `ucontext_t` the kernel passed to an `SA_SIGINFO` handler.
#[cfg(target_arch = "x86_64")]
unsafe fn fault_was_write(ctx: *mut c_void) -> bool {
    // SAFETY: per the contract, `ctx` points to a valid `ucontext_t`.
    let uc = unsafe { &*ctx.cast::<libc::ucontext_t>() };
    uc.uc_mcontext.gregs[libc::REG_ERR as usize] & 2 != 0
}

extern "C" fn on_segv(_sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV.
    let addr = unsafe { (*info).si_addr() }.addr();
    // SAFETY: we are an SA_SIGINFO handler; `ctx` is the kernel's ucontext.
    let write = unsafe { fault_was_write(ctx) };
    if resolve(addr, write) {
        return;
    }
    // Not ours (or not resolvable): reinstate the previous disposition and
    // return, so the access faults again and gets it (by default: a crash).
    let previous = PREVIOUS.try_lock().and_then(|p| *p);
    let restore = previous.unwrap_or_else(|| {
        // SAFETY: an all-zero sigaction is SIG_DFL with no flags.
        let mut d: libc::sigaction = unsafe { std::mem::zeroed() };
        d.sa_sigaction = libc::SIG_DFL;
        d
    });
    // SAFETY: installs a valid disposition for SIGSEGV.
    unsafe { libc::sigaction(libc::SIGSEGV, &restore, ptr::null_mut()) };
}

fn install_handler() -> bool {
    // SAFETY: zeroed sigaction, then every field we rely on is set; the
    // handler has the SA_SIGINFO signature.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) = on_segv;
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut sa.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGSEGV, &sa, &mut old) != 0 {
            return false;
        }
        *PREVIOUS.lock() = Some(old);
    }
    true
}

fn stdout_writer(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: writes from a valid slice to fd 1.
        let n = unsafe { libc::write(1, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

fn complain(msg: &str) {
    eprintln!("myos_sim_boot: {msg}");
}

/// The machine `myos_sim_boot` or `myos_sim_boot_pae` asks for.
#[derive(Clone, Copy)]
enum Config {
    /// Classic paging, `bytes` of RAM at 0.
    Classic { bytes: u32 },
    /// PAE paging (EFER.NXE on), `low` bytes of RAM at 0 and `high` at 4 GiB.
    Pae { low: u32, high: u32 },
}

/// Checks a RAM size: a multiple of 4096, at least 2 MiB.
fn ram_size(bytes: u32) -> Result<u32, i32> {
    if bytes < (2 << 20) || !bytes.is_multiple_of(PAGE_SIZE as u32) {
        complain("RAM size must be a multiple of 4096 and at least 2 MiB");
        return Err(codes::EINVAL);
    }
    Ok(bytes)
}

/// Builds the simulated machine `config` describes (RAM in memfds); the
/// bytes of RAM at 0 as well.
fn build(config: Config) -> Result<(Machine, u32), i32> {
    let fail = |e: &dyn std::fmt::Display| {
        complain(&format!("cannot build the simulated machine: {e}"));
        codes::ENOMEM
    };
    match config {
        Config::Classic { bytes } => {
            let bytes = ram_size(if bytes == 0 { 64 << 20 } else { bytes })?;
            let sim = SimMachine::builder(u64::from(bytes))
                .shared_ram(true)
                .build()
                .map_err(|e| fail(&e))?;
            Ok((Machine::Classic(sim), bytes))
        }
        Config::Pae { low, high } => {
            let low = ram_size(if low == 0 { 64 << 20 } else { low })?;
            let high = if high == 0 { 0 } else { ram_size(high)? };
            let sim = PaeMachine::split_ram(u64::from(low), u64::from(high))
                .shared_ram(true)
                .build()
                .map_err(|e| fail(&e))?;
            Ok((Machine::Pae(sim), low))
        }
    }
}

/// Boots the machine and the memory manager; the `MM_E*` code on failure.
fn boot(config: Config) -> Result<(), i32> {
    if BOOTING.swap(true, Ordering::AcqRel) {
        complain("already booted (one simulated machine per process)");
        return Err(codes::EEXIST);
    }
    let (sim, low) = build(config)?;
    for (lo, hi) in WINDOWS {
        if !reserve(lo, hi - lo, false) {
            complain(&format!(
                "host range {lo:#x}..{hi:#x} is in use; cannot alias the simulated kernel"
            ));
            return Err(codes::ENOMEM);
        }
    }
    let direct = low.min(DIRECT_MAP_SIZE) as usize;
    let (fd, offset) = sim.ram_fd(0).ok_or(codes::ENOMEM)?;
    debug_assert_eq!(offset, 0);
    let want = DIRECT_MAP_START as usize as *mut c_void;
    // SAFETY: a new shared view of the RAM memfd at the direct map's
    // address, which nothing in the host uses (NOREPLACE refuses otherwise).
    let got = unsafe {
        libc::mmap(
            want,
            direct,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
            fd.as_raw_fd(),
            0,
        )
    };
    if got != want {
        complain("host range of the direct map (0xc0000000..) is in use");
        return Err(codes::ENOMEM);
    }
    if !install_handler() {
        complain("cannot install the SIGSEGV handler");
        return Err(codes::EINVAL);
    }
    let host: &'static HostPlatform = HOST.call_once(|| HostPlatform { sim });
    crate::console::register_console(stdout_writer);
    let registered = match &host.sim {
        // SAFETY: the simulated machine is fresh: its usable RAM is unused.
        Machine::Classic(m) => unsafe { crate::state::register(host, m.memory_map()) },
        // SAFETY: as above.
        Machine::Pae(m) => unsafe { crate::state::register_pae(host, &m.memory_map()) },
    };
    registered.map_err(|e| {
        complain(&format!("cannot build the memory manager: {e}"));
        Failure::from(e).code()
    })?;
    crate::paging::init_paging();
    crate::heap::init_kheap();
    if crate::errno::mm_errno() != 0 {
        complain("cannot create the kernel heap");
        return Err(crate::errno::mm_errno());
    }
    crate::vm::create_process().map_err(|e| {
        complain(&format!("cannot create the C process: {e}"));
        Failure::from(e).code()
    })?;
    Ok(())
}

/// `int myos_sim_boot_pae(uint32_t low_bytes, uint32_t high_bytes)`
/// (`<myos/sim.h>`): as `myos_sim_boot`, on a PAE machine (EFER.NXE on)
/// with `low_bytes` of RAM at 0 (0: 64 MiB) and `high_bytes` at 4 GiB (0:
/// none); the memory manager runs PAE paging. 0, or an `MM_E*` code.
#[no_mangle]
pub extern "C" fn myos_sim_boot_pae(low_bytes: u32, high_bytes: u32) -> i32 {
    match boot(Config::Pae {
        low: low_bytes,
        high: high_bytes,
    }) {
        Ok(()) => 0,
        Err(code) => code,
    }
}

/// `int myos_sim_boot(uint32_t ram_bytes)` (`<myos/sim.h>`): 0, or an
/// `MM_E*` code.
#[no_mangle]
pub extern "C" fn myos_sim_boot(ram_bytes: u32) -> i32 {
    match boot(Config::Classic { bytes: ram_bytes }) {
        Ok(()) => 0,
        Err(code) => code,
    }
}
