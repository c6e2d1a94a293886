//! The Rust runtime a C kernel cannot provide (the global allocator is
//! `x86::HEAP`): the panic handler, and the symbols the compiler and the precompiled `core`
//! reference.
//!
//! The memory and string functions are defined in assembly as **weak**
//! symbols (stable Rust has no weak linkage attribute; `global_asm!` has
//! `.weak`): a kernel that defines its own `memcpy` & co. keeps them, and
//! this library uses them too (they must have the C standard's semantics,
//! returning `dest` where C does). The unwinding symbols are weak as well:
//! the library is built with `panic = "abort"`, so they are never called.

use core::fmt::Write;
use core::panic::PanicInfo;

use crate::x86;

/// A fixed buffer for the panic message (no heap on the panic path).
struct Buf {
    bytes: [u8; 256],
    len: usize,
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut buf = Buf {
        bytes: [0; 256],
        len: 0,
    };
    let _ = writeln!(buf, "libmyos panic: {info}");
    let msg = &buf.bytes[..buf.len];
    match x86::panic_hook() {
        Some(hook) => hook(msg.as_ptr().cast(), msg.len() as u32),
        None => x86::console(msg),
    }
    loop {
        // SAFETY: stopping the CPU is the end of the road; nothing follows.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

core::arch::global_asm!(
    r#"
    .section .text.myos_rt_memcpy, "ax", @progbits
    .weak memcpy
    .type memcpy, @function
memcpy:
    push edi
    push esi
    mov edi, [esp + 12]
    mov esi, [esp + 16]
    mov ecx, [esp + 20]
    mov eax, edi
    cld
    rep movsb
    pop esi
    pop edi
    ret
    .size memcpy, . - memcpy

    .section .text.myos_rt_memmove, "ax", @progbits
    .weak memmove
    .type memmove, @function
memmove:
    push edi
    push esi
    mov edi, [esp + 12]
    mov esi, [esp + 16]
    mov ecx, [esp + 20]
    mov eax, edi
    cmp edi, esi
    jbe 2f
    lea edx, [esi + ecx]
    cmp edi, edx
    jae 2f
    lea esi, [esi + ecx - 1]
    lea edi, [edi + ecx - 1]
    std
    rep movsb
    cld
    jmp 3f
2:
    cld
    rep movsb
3:
    pop esi
    pop edi
    ret
    .size memmove, . - memmove

    .section .text.myos_rt_memset, "ax", @progbits
    .weak memset
    .type memset, @function
memset:
    push edi
    mov edi, [esp + 8]
    movzx eax, byte ptr [esp + 12]
    mov ecx, [esp + 16]
    mov edx, edi
    cld
    rep stosb
    mov eax, edx
    pop edi
    ret
    .size memset, . - memset

    .section .text.myos_rt_memcmp, "ax", @progbits
    .weak memcmp
    .type memcmp, @function
    .weak bcmp
    .type bcmp, @function
memcmp:
bcmp:
    push esi
    push edi
    mov esi, [esp + 12]
    mov edi, [esp + 16]
    mov ecx, [esp + 20]
    xor eax, eax
2:
    test ecx, ecx
    jz 3f
    movzx eax, byte ptr [esi]
    movzx edx, byte ptr [edi]
    sub eax, edx
    jnz 3f
    inc esi
    inc edi
    dec ecx
    jmp 2b
3:
    pop edi
    pop esi
    ret
    .size memcmp, . - memcmp
    .size bcmp, . - bcmp

    .section .text.myos_rt_strlen, "ax", @progbits
    .weak strlen
    .type strlen, @function
strlen:
    mov edx, [esp + 4]
    mov eax, edx
2:
    cmp byte ptr [eax], 0
    je 3f
    inc eax
    jmp 2b
3:
    sub eax, edx
    ret
    .size strlen, . - strlen

    .section .text.myos_rt_unwind, "ax", @progbits
    .weak rust_eh_personality
    .type rust_eh_personality, @function
rust_eh_personality:
    ud2
    .size rust_eh_personality, . - rust_eh_personality
    .weak _Unwind_Resume
    .type _Unwind_Resume, @function
_Unwind_Resume:
    ud2
    .size _Unwind_Resume, . - _Unwind_Resume
    .text
    "#
);
