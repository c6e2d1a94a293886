//! A process's kernel context: its kernel stack, laid out so that the first
//! switch to it "returns" from an interrupt into ring 3, the FPU/SSE state
//! it starts with, `switch_context`, and the canary and high-water mark that
//! watch the stack's depth.
//!
//! A trap from ring 3 lands on the process's kernel stack (TSS.esp0) and
//! pushes a [`TrapFrame`] and the FPU/SSE state (`fxsave`); switching
//! processes switches kernel stacks ([`switch_context`]), so a preempted or
//! blocked process's whole user state waits on its own stack.

use core::sync::atomic::{AtomicUsize, Ordering};

use spin::Once;

use crate::arch::frame::{trap_return_addr, TrapFrame, FXSAVE_SIZE, TRAP_FRAME_SIZE};
use crate::kstack::{KernelStack, KSTACK_SIZE};

/// A 512-byte, 16-aligned `fxsave` image.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub(super) struct FxArea([u8; FXSAVE_SIZE]);

/// The FPU/SSE state every new process starts with (captured at boot).
static INITIAL_FX: Once<FxArea> = Once::new();

/// Captures the FPU/SSE state every new process starts with (once, at
/// [`init`](super::init)).
pub(super) fn capture_initial_fx() {
    let mut fx = FxArea([0; FXSAVE_SIZE]);
    // SAFETY: `fx` is a 512-byte, 16-aligned buffer; fxsave only writes it.
    unsafe { core::arch::asm!("fxsave [{}]", in(reg) fx.0.as_mut_ptr(), options(nostack)) };
    INITIAL_FX.call_once(|| fx);
}

/// The FPU/SSE state a new process starts with.
pub(super) fn initial_fx() -> FxArea {
    INITIAL_FX
        .get()
        .copied()
        .unwrap_or(FxArea([0; FXSAVE_SIZE]))
}

core::arch::global_asm!(
    r#"
    .section .text
    .global switch_context
/* switch_context(save: *mut u32, next_esp: u32): saves the callee-saved
   registers on this stack, stores esp in *save, loads next_esp and pops the
   next context's registers. */
switch_context:
    mov eax, [esp + 4]
    mov edx, [esp + 8]
    push ebp
    push ebx
    push esi
    push edi
    mov [eax], esp
    mov esp, edx
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret
    "#
);

extern "C" {
    /// Saves the current kernel context to `*save` and resumes the one at `next_esp`.
    pub(super) fn switch_context(save: *mut u32, next_esp: u32);
}

/// Alignment `fxsave` requires (the trap stub aligns the same way).
const FXSAVE_ALIGN: usize = 16;

/// Words of the context `switch_context` pops (edi, esi, ebx, ebp, return address).
const CONTEXT_WORDS: usize = 5;
/// Index of ebx in that context.
const CONTEXT_EBX: usize = 2;
/// Index of the return address.
const CONTEXT_RET: usize = 4;

/// Lays out a new kernel stack so that switching to it "returns" from an
/// interrupt into `frame` with FPU state `fx`; returns the stack pointer.
pub(super) fn prepare_kstack(stack: &mut KernelStack, frame: &TrapFrame, fx: &FxArea) -> u32 {
    let base = stack.bytes_mut().as_mut_ptr() as usize;
    let top = base + KSTACK_SIZE;
    let frame_at = top - TRAP_FRAME_SIZE;
    let fx_at = (frame_at - FXSAVE_SIZE) & !(FXSAVE_ALIGN - 1);
    let ctx_at = fx_at - CONTEXT_WORDS * 4;
    let mut ctx = [0u32; CONTEXT_WORDS];
    ctx[CONTEXT_EBX] = frame_at as u32;
    ctx[CONTEXT_RET] = trap_return_addr();
    // SAFETY: all three ranges lie inside `stack` (16 KiB, far more than
    // 76 + 512 + 16 + 20 bytes) and do not overlap; the frame and context
    // are plain integers, written unaligned-safe.
    unsafe {
        (frame_at as *mut TrapFrame).write_unaligned(*frame);
        (fx_at as *mut FxArea).write(*fx);
        (ctx_at as *mut [u32; CONTEXT_WORDS]).write_unaligned(ctx);
    }
    ctx_at as u32
}

/// Written at the bottom of every kernel stack; checked after each switch
/// back to the scheduler, so an overflow is reported (these stacks live on
/// the heap, without a guard page).
const KSTACK_CANARY: u64 = 0x5AFE_57AC_CA9A_12E5;

/// A fresh kernel stack (mapped with a guard page below, see [`kstack`])
/// with a canary at its bottom; `None` when no slot or frame is left (the
/// caller reports `ENOMEM`, the kernel goes on).
///
/// [`kstack`]: crate::kstack
pub(super) fn new_kstack() -> Option<KernelStack> {
    let mut stack = KernelStack::new()?;
    stack.bytes_mut()[..8].copy_from_slice(&KSTACK_CANARY.to_le_bytes());
    Some(stack)
}

/// True while the canary at the bottom of `stack` is intact.
pub(super) fn canary_intact(stack: &KernelStack) -> bool {
    stack.bytes()[..8] == KSTACK_CANARY.to_le_bytes()
}

/// The deepest use of any process kernel stack seen so far, in bytes.
static KSTACK_HIGH_WATER: AtomicUsize = AtomicUsize::new(0);

/// The deepest use of any (reaped) process kernel stack, in bytes, and the
/// stack size.
pub fn kstack_high_water() -> (usize, usize) {
    (KSTACK_HIGH_WATER.load(Ordering::Relaxed), KSTACK_SIZE)
}

/// Records how deep `stack` was used (called as its process is dropped).
pub(super) fn record_stack_use(stack: &KernelStack) {
    // The stack was zeroed when allocated: the lowest non-zero byte
    // above the canary marks the deepest point it reached.
    let canary = core::mem::size_of_val(&KSTACK_CANARY);
    let untouched = stack.bytes()[canary..]
        .iter()
        .take_while(|&&b| b == 0)
        .count();
    let used = KSTACK_SIZE - canary - untouched;
    KSTACK_HIGH_WATER.fetch_max(used, Ordering::Relaxed);
}

const _: () = assert!(KSTACK_SIZE > TRAP_FRAME_SIZE + FXSAVE_SIZE + 64);
