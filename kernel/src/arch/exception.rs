//! CPU exceptions: how many vectors they reserve, their names, and their
//! error codes decoded for people (the oops and the messages of a killed
//! process print them).

use core::fmt;

/// Vectors reserved for CPU exceptions.
pub const EXCEPTION_COUNT: usize = 32;

/// Mnemonic and name of a CPU exception.
pub fn exception_name(vector: u32) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range exceeded",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        9 => "coprocessor segment overrun",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating-point error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating-point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        29 => "#VC VMM communication",
        30 => "#SX security",
        _ => "reserved exception",
    }
}

/// Decodes a selector error code (#TS, #NP, #SS, #GP) into text.
pub struct SelectorError(pub u32);

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const EXTERNAL: u32 = 1 << 0;
        const TABLE_SHIFT: u32 = 1;
        const TABLE_MASK: u32 = 0b11;
        const INDEX_SHIFT: u32 = 3;
        let e = self.0;
        if e == 0 {
            return f.write_str("no selector");
        }
        let table = match (e >> TABLE_SHIFT) & TABLE_MASK {
            0 => "GDT",
            2 => "LDT",
            _ => "IDT",
        };
        write!(f, "{table} index {}", e >> INDEX_SHIFT)?;
        if e & EXTERNAL != 0 {
            f.write_str(", external event")?;
        }
        Ok(())
    }
}

/// Page-fault error-code bits (the spec's `ERR_*` constants).
pub mod pf {
    /// The page was present (a protection violation), else not present.
    pub const PRESENT: u32 = 0x1;
    /// The access was a write, else a read.
    pub const WRITE: u32 = 0x2;
    /// The access came from ring 3.
    pub const USER: u32 = 0x4;
    /// A reserved bit was set in a paging entry.
    pub const RESERVED: u32 = 0x8;
    /// The access was an instruction fetch.
    pub const FETCH: u32 = 0x10;
}

/// A page-fault error code, decoded for people.
#[derive(Clone, Copy)]
pub struct PageFaultCode(pub u32);

impl fmt::Display for PageFaultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        let who = if e & pf::USER != 0 {
            "user"
        } else {
            "supervisor"
        };
        let what = if e & pf::FETCH != 0 {
            "instruction fetch"
        } else if e & pf::WRITE != 0 {
            "write"
        } else {
            "read"
        };
        let why = if e & pf::PRESENT != 0 {
            "protection violation"
        } else {
            "page not present"
        };
        write!(f, "{who} {what}, {why}")?;
        if e & pf::RESERVED != 0 {
            f.write_str(", reserved bit set")?;
        }
        Ok(())
    }
}
