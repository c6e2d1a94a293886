//! Page-fault error codes and the [`PageFault`] a faulting access returns.

use core::fmt;

/// Page-fault error-code bits, as the spec's `ERR_*` constants define them.
///
/// These are the sim's own definitions (the MMU model does not borrow them
/// from the core), matching the i386 `#PF` error code pushed by the CPU.
pub mod err {
    /// Bit 0: set when the fault was a protection violation (or a reserved
    /// bit) on a *present* page; clear when the page was not present.
    pub const ERR_PRESENT: u32 = 0x1;
    /// Bit 1: set when the access was a write.
    pub const ERR_WRITE: u32 = 0x2;
    /// Bit 2: set when the access came from user mode (CPL 3).
    pub const ERR_USER: u32 = 0x4;
    /// Bit 3: set when a reserved bit was found set in a paging entry.
    pub const ERR_RESERVED: u32 = 0x8;
    /// Bit 4: set when the access was an instruction fetch — but only
    /// while CR4.SMEP is on, or on the PAE machine while EFER.NXE is on
    /// (SDM 3A §4.7). With classic paging and SMEP off, a faulting fetch
    /// reports as a read, as on real hardware. Without PAE a fetch needs
    /// only read permission, never write (no NX).
    pub const ERR_FETCH: u32 = 0x10;
    /// Every bit the sim may report.
    pub const ALL: u32 = ERR_PRESENT | ERR_WRITE | ERR_USER | ERR_RESERVED | ERR_FETCH;
}

/// The privilege level an access is made at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Ring 3: needs U/S set at every level.
    User,
    /// Rings 0–2: may touch any present page; writes to read-only pages
    /// fault only while CR0.WP is set; fetches from user pages fault under
    /// CR4.SMEP, data accesses to user pages under CR4.SMAP with EFLAGS.AC
    /// clear.
    Supervisor,
}

/// The kind of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// A data read.
    Read,
    /// A data write (needs R/W, and sets the Dirty bit).
    Write,
    /// An instruction fetch. Without PAE there is no NX bit, so a fetch
    /// needs the permission a read needs; in supervisor mode under CR4.SMEP
    /// it also needs a supervisor page, and its fault then carries
    /// [`err::ERR_FETCH`] (without SMEP it reports as a read).
    Fetch,
}

impl Access {
    /// The error-code bits this access contributes to any fault: a fetch
    /// shows only while CR4.SMEP is on (`smep`).
    pub(crate) const fn error_bits(self, smep: bool) -> u32 {
        match self {
            Access::Read => 0,
            Access::Write => err::ERR_WRITE,
            Access::Fetch if smep => err::ERR_FETCH,
            Access::Fetch => 0,
        }
    }
}

impl Mode {
    /// The error-code bits this mode contributes to any fault.
    pub(crate) const fn error_bits(self) -> u32 {
        match self {
            Mode::User => err::ERR_USER,
            Mode::Supervisor => 0,
        }
    }
}

/// A page fault (`#PF`): the faulting linear address (CR2) and the error code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageFault {
    /// The linear address whose translation failed (the CPU's CR2).
    pub cr2: u32,
    /// The error code, a combination of the [`err`] bits.
    pub error_code: u32,
}

impl PageFault {
    /// A fault at `cr2` with `error_code`.
    pub const fn new(cr2: u32, error_code: u32) -> Self {
        Self { cr2, error_code }
    }
    /// True when the page was present (a protection or reserved-bit fault).
    pub const fn is_protection(self) -> bool {
        self.error_code & err::ERR_PRESENT != 0
    }
    /// True when the page (or its page table) was not present.
    pub const fn is_not_present(self) -> bool {
        !self.is_protection()
    }
    /// True when the access was a write.
    pub const fn is_write(self) -> bool {
        self.error_code & err::ERR_WRITE != 0
    }
    /// True when the access came from user mode.
    pub const fn is_user(self) -> bool {
        self.error_code & err::ERR_USER != 0
    }
    /// True when a reserved bit was set in a paging entry.
    pub const fn is_reserved(self) -> bool {
        self.error_code & err::ERR_RESERVED != 0
    }
    /// True when the access was an instruction fetch.
    pub const fn is_fetch(self) -> bool {
        self.error_code & err::ERR_FETCH != 0
    }
    /// The kind of access that faulted.
    pub const fn access(self) -> Access {
        if self.is_write() {
            Access::Write
        } else if self.is_fetch() {
            Access::Fetch
        } else {
            Access::Read
        }
    }
    /// The mode of the access that faulted.
    pub const fn mode(self) -> Mode {
        if self.is_user() {
            Mode::User
        } else {
            Mode::Supervisor
        }
    }
}

impl fmt::Debug for PageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PageFault {{ cr2: {:#010x}, error_code: {:#x} }}",
            self.cr2, self.error_code
        )
    }
}

impl fmt::Display for PageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.is_reserved() {
            "reserved bit set"
        } else if self.is_protection() {
            "protection violation"
        } else {
            "page not present"
        };
        let access = match self.access() {
            Access::Read => "read",
            Access::Write => "write",
            Access::Fetch => "fetch",
        };
        let mode = match self.mode() {
            Mode::User => "user",
            Mode::Supervisor => "supervisor",
        };
        write!(
            f,
            "page fault at {:#010x}: {what} on {mode} {access} (error code {:#x})",
            self.cr2, self.error_code
        )
    }
}

impl std::error::Error for PageFault {}

/// Runs `op` on `machine` until it succeeds, letting `handler` deal with
/// each page fault, at most `max_faults` of them (the body of both
/// machines' `run_with_faults`).
pub(crate) fn retry_faults<M, T, Op, H>(
    machine: &M,
    max_faults: usize,
    mut op: Op,
    mut handler: H,
) -> Result<T, crate::error::FaultError>
where
    Op: FnMut(&M) -> Result<T, PageFault>,
    H: FnMut(PageFault) -> bool,
{
    use crate::error::FaultError;
    let mut handled = 0usize;
    loop {
        match op(machine) {
            Ok(v) => return Ok(v),
            Err(f) if handled == max_faults => return Err(FaultError::TooManyFaults(f)),
            Err(f) => {
                if !handler(f) {
                    return Err(FaultError::Unhandled(f));
                }
                handled += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::err::*;
    use super::*;

    #[test]
    fn bits_match_the_spec() {
        assert_eq!(
            (ERR_PRESENT, ERR_WRITE, ERR_USER, ERR_RESERVED, ERR_FETCH),
            (1, 2, 4, 8, 16)
        );
        assert_eq!(ALL, 0x1F);
    }

    #[test]
    fn decoding_helpers() {
        let f = PageFault::new(0x1234, ERR_PRESENT | ERR_WRITE | ERR_USER);
        assert!(f.is_protection() && f.is_write() && f.is_user());
        assert!(!f.is_not_present() && !f.is_reserved() && !f.is_fetch());
        assert_eq!((f.access(), f.mode()), (Access::Write, Mode::User));
        let g = PageFault::new(0, ERR_FETCH);
        assert!(g.is_not_present() && g.is_fetch());
        assert_eq!((g.access(), g.mode()), (Access::Fetch, Mode::Supervisor));
        let r = PageFault::new(0xC000_0000, ERR_RESERVED | ERR_PRESENT);
        assert_eq!(r.access(), Access::Read);
        assert_eq!(
            r.to_string(),
            "page fault at 0xc0000000: reserved bit set on supervisor read (error code 0x9)"
        );
        assert_eq!(
            format!("{f:?}"),
            "PageFault { cr2: 0x00001234, error_code: 0x7 }"
        );
    }
}
