//! `myos_pte_raw`: the Rust side of the C layout test (`tests/c/layout.c`).
//!
//! For one `page_t` field, the raw entry [`PageTableEntry`] builds with that
//! field set, so C can check that its bit-field puts every field at the same
//! bits.

use core::ffi::c_char;

use myos_mm::paging::{PageTableEntry, PteFlags};
use myos_mm::Frame;

/// The raw entry with only `field` set to `value` (low bits of `value`
/// beyond the field's width are ignored), or `None` for an unknown field.
pub fn pte_raw(field: &[u8], value: u32) -> Option<u32> {
    let flag = |f: PteFlags| {
        let flags = if value & 1 != 0 { f } else { PteFlags::empty() };
        PageTableEntry::new(Frame::from_number(0).ok()?, flags)
            .raw()
            .into()
    };
    match field {
        b"present" => flag(PteFlags::PRESENT),
        b"rw" => flag(PteFlags::WRITABLE),
        b"user" => flag(PteFlags::USER),
        b"pwt" => flag(PteFlags::WRITE_THROUGH),
        b"pcd" => flag(PteFlags::NO_CACHE),
        b"accessed" => flag(PteFlags::ACCESSED),
        b"dirty" => flag(PteFlags::DIRTY),
        b"unused" => {
            // Bits 7..11 in order: PS/PAT, G, and the three OS bits.
            let bits = [
                PteFlags::HUGE,
                PteFlags::GLOBAL,
                PteFlags::AVAIL0,
                PteFlags::AVAIL1,
                PteFlags::AVAIL2,
            ];
            let flags = bits
                .iter()
                .enumerate()
                .filter(|(i, _)| value & (1 << i) != 0)
                .fold(PteFlags::empty(), |acc, (_, &f)| acc | f);
            Some(PageTableEntry::new(Frame::from_number(0).ok()?, flags).raw())
        }
        b"frame" => {
            let frame = Frame::from_number(value & 0xF_FFFF).ok()?;
            Some(PageTableEntry::new(frame, PteFlags::empty()).raw())
        }
        _ => None,
    }
}

/// `uint32_t myos_pte_raw(const char *field, uint32_t value)`:
/// `0xFFFFFFFF` for an unknown field or NULL.
///
/// # Safety
///
/// `field` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn myos_pte_raw(field: *const c_char, value: u32) -> u32 {
    if field.is_null() {
        return u32::MAX;
    }
    // Field names are short: read at most 16 bytes up to the NUL (by hand:
    // `CStr::from_ptr` calls `strlen`, which a freestanding kernel may lack).
    let mut name = [0u8; 16];
    let mut len = 0;
    while len < name.len() {
        // SAFETY: the caller promises a NUL-terminated string, and we stop
        // at its NUL, so every byte read lies inside it.
        let b = unsafe { field.add(len).cast::<u8>().read() };
        if b == 0 {
            return pte_raw(&name[..len], value).unwrap_or(u32::MAX);
        }
        name[len] = b;
        len += 1;
    }
    u32::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_sit_at_the_hardware_bits() {
        assert_eq!(pte_raw(b"present", 1), Some(1));
        assert_eq!(pte_raw(b"rw", 1), Some(2));
        assert_eq!(pte_raw(b"user", 1), Some(4));
        assert_eq!(pte_raw(b"accessed", 1), Some(1 << 5));
        assert_eq!(pte_raw(b"dirty", 1), Some(1 << 6));
        assert_eq!(pte_raw(b"unused", 0x1F), Some(0x1F << 7));
        assert_eq!(pte_raw(b"frame", 0xABCDE), Some(0xABCD_E000));
        assert_eq!(pte_raw(b"nope", 1), None);
    }
}
