//! Starting a program: its embedded ELF file loaded into a fresh address
//! space, a kernel stack prepared to enter it, a new process family.

use core::fmt;
use core::sync::atomic::AtomicU32;

use myos_mm::layout::{PAGE_SIZE, USER_END};
use myos_mm::vm::{FaultStats, FdTable, MapRequest, MapSource, Prot};
use myos_mm::{MmError, VirtAddr};

use super::abi::WaitStatus;
use super::context::{initial_fx, new_kstack, prepare_kstack};
use super::table::{
    try_box, FamilyResult, Process, Space, State, UserSpace, FAMILIES, MAX_FAMILIES, MAX_PROCESSES,
    TABLE,
};
use crate::arch::frame::TrapFrame;
use crate::arch::gdt::{USER_CODE, USER_DATA};
use crate::arch::regs::eflags;
use crate::mm;
use crate::programs::{self, Elf, PF_W, PF_X};

/// Initial size of the user stack region.
const USER_STACK_SIZE: u32 = 64 * 1024;
/// How far the user stack may grow.
const USER_STACK_MAX: u32 = 1 << 20;

/// Why a program could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// No such program in the image.
    NoProgram,
    /// The ELF file is malformed.
    BadElf(&'static str),
    /// The memory manager refused.
    Mm(MmError),
    /// Too many processes (or process families).
    Limit,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NoProgram => f.write_str("no such program"),
            SpawnError::BadElf(why) => write!(f, "bad ELF file: {why}"),
            SpawnError::Mm(e) => write!(f, "{e}"),
            SpawnError::Limit => f.write_str("too many processes"),
        }
    }
}

impl From<MmError> for SpawnError {
    fn from(e: MmError) -> Self {
        SpawnError::Mm(e)
    }
}

/// Region protection for ELF segment flags (no NX on i386 without PAE, so
/// executable means readable).
fn segment_prot(flags: u32) -> Prot {
    let mut prot = Prot::READ;
    if flags & PF_W != 0 {
        prot |= Prot::WRITE;
    }
    if flags & PF_X != 0 {
        prot |= Prot::EXEC;
    }
    prot
}

/// Loads the program `name` into a fresh address space: each `PT_LOAD`
/// segment becomes a private region (filled through `copy_to_user`, then
/// given its final protection), plus a growable stack below `USER_END`.
/// Returns the space, the entry point and the initial stack pointer.
fn load(name: &str) -> Result<(UserSpace, u32, u32), SpawnError> {
    let image = programs::find(name).ok_or(SpawnError::NoProgram)?;
    let elf = Elf::parse(image).map_err(SpawnError::BadElf)?;
    let mut vm = UserSpace::new()?;
    let page = PAGE_SIZE as u32;
    let mut prev: Option<(u32, u32, Prot)> = None;
    for seg in elf.segments() {
        let seg = seg.map_err(SpawnError::BadElf)?;
        if seg.mem_size == 0 {
            continue;
        }
        let start = seg.vaddr & !(page - 1);
        let end = seg
            .vaddr
            .checked_add(seg.mem_size)
            .and_then(|e| e.checked_add(page - 1))
            .ok_or(SpawnError::BadElf("segment overflows"))?
            & !(page - 1);
        let prot = segment_prot(seg.flags);
        // A page shared with the previous segment is already mapped.
        let map_from = match prev {
            Some((_, prev_end, _)) if start < prev_end => prev_end,
            _ => start,
        };
        if map_from < end {
            vm.map(&MapRequest {
                addr: Some(VirtAddr::new(map_from)),
                length: end - map_from,
                prot: Prot::READ | Prot::WRITE,
                shared: false,
                fixed: true,
                source: MapSource::Anonymous,
            })?;
        }
        vm.copy_to_user(
            VirtAddr::new(seg.vaddr),
            elf.bytes(&seg).map_err(SpawnError::BadElf)?,
        )?;
        prev = Some((start, end, prot));
    }
    // Final protections, once every byte is in (a shared page gets both).
    let mut prev: Option<(u32, Prot)> = None;
    for seg in elf.segments().flatten().filter(|s| s.mem_size > 0) {
        let start = seg.vaddr & !(page - 1);
        let end = (seg.vaddr + seg.mem_size + page - 1) & !(page - 1);
        let mut prot = segment_prot(seg.flags);
        vm.protect(VirtAddr::new(start), end - start, prot)?;
        if let Some((prev_end, prev_prot)) = prev {
            if start < prev_end {
                prot |= prev_prot;
                vm.protect(VirtAddr::new(start), page, prot)?;
            }
        }
        prev = Some((end, segment_prot(seg.flags)));
    }
    vm.map_stack(VirtAddr::new(USER_END), USER_STACK_SIZE, USER_STACK_MAX)?;
    const INITIAL_STACK_GAP: u32 = 16;
    Ok((vm, elf.entry, USER_END - INITIAL_STACK_GAP))
}

/// Starts the program `name` as a new kernel-started process.
pub fn spawn(name: &'static str) -> Result<u32, SpawnError> {
    if !mm::free_frames_above(mm::FORK_RESERVE_FRAMES) {
        return Err(SpawnError::Mm(MmError::OutOfMemory));
    }
    let (vm, entry, esp) = load(name)?;
    let frame = TrapFrame {
        gs: USER_DATA.into(),
        fs: USER_DATA.into(),
        es: USER_DATA.into(),
        ds: USER_DATA.into(),
        eip: entry,
        cs: USER_CODE.into(),
        eflags: eflags::IF | eflags::RESERVED1,
        user_esp: esp,
        user_ss: USER_DATA.into(),
        ..TrapFrame::default()
    };
    let fx = initial_fx();
    let mut kstack = new_kstack().ok_or(SpawnError::Mm(MmError::OutOfMemory))?;
    let esp0 = prepare_kstack(&mut kstack, &frame, &fx);
    let mut t = TABLE.lock();
    let mut families = FAMILIES.lock();
    if t.procs.len() >= MAX_PROCESSES || families.len() >= MAX_FAMILIES {
        return Err(SpawnError::Limit);
    }
    let pid = t.next_pid;
    let process = try_box(Process {
        pid,
        tgid: pid,
        parent: None,
        family: pid,
        name,
        state: State::Runnable,
        space: Some(Space::new(vm, FdTable::new(), pid)),
        kstack,
        saved_esp: AtomicU32::new(esp0),
        on_cpu: false,
    })
    .map_err(|_| SpawnError::Mm(MmError::OutOfMemory))?;
    t.next_pid += 1;
    // Within the capacity reserved at init: no allocation.
    t.procs.push(process);
    families.push(FamilyResult {
        pid,
        status: WaitStatus(0),
        faults: FaultStats::default(),
        processes: 1,
    });
    Ok(pid)
}
