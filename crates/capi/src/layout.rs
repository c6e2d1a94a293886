//! `myos_pte_raw` and `myos_pte64_raw`: the Rust side of the C layout test
//! (`tests/c/layout.c`).
//!
//! For one `page_t` (or `page64_t`) field, the raw entry [`PageTableEntry`]
//! (or [`PaeEntry`]) builds with that field set, so C can check that its
//! bit-field puts every field at the same bits.

use core::ffi::c_char;

use myos_mm::paging::{Entry, PaeEntry, PageAttrs, PageTableEntry, PteFlags};
use myos_mm::Frame;

/// The flag bits of `unused` (bits 7..11 in order: PS/PAT, G, and the
/// three OS bits) selected by the low five bits of `value`.
fn unused_flags(value: u64) -> PteFlags {
    let bits = [
        PteFlags::HUGE,
        PteFlags::GLOBAL,
        PteFlags::AVAIL0,
        PteFlags::AVAIL1,
        PteFlags::AVAIL2,
    ];
    bits.iter()
        .enumerate()
        .filter(|(i, _)| value & (1 << i) != 0)
        .fold(PteFlags::empty(), |acc, (_, &f)| acc | f)
}

/// The flag named `field` (one of `page_t`'s one-bit fields).
fn one_bit_flag(field: &[u8]) -> Option<PteFlags> {
    Some(match field {
        b"present" => PteFlags::PRESENT,
        b"rw" => PteFlags::WRITABLE,
        b"user" => PteFlags::USER,
        b"pwt" => PteFlags::WRITE_THROUGH,
        b"pcd" => PteFlags::NO_CACHE,
        b"accessed" => PteFlags::ACCESSED,
        b"dirty" => PteFlags::DIRTY,
        _ => return None,
    })
}

/// The raw PAE entry with only `field` set to `value` (bits of `value`
/// beyond the field's width are ignored), or `None` for an unknown field.
pub fn pte64_raw(field: &[u8], value: u64) -> Option<u64> {
    let zero = Frame::from_number(0).ok()?;
    let attrs = match field {
        b"unused" => PageAttrs::new(unused_flags(value)),
        b"nx" => PageAttrs::new(PteFlags::empty()).with_no_exec(value & 1 != 0),
        b"frame" => {
            let frame = Frame::from_number((value & 0xFF_FFFF) as u32).ok()?;
            return Some(PaeEntry::map_to(frame, PageAttrs::new(PteFlags::empty())).raw());
        }
        _ => {
            let f = one_bit_flag(field)?;
            PageAttrs::new(if value & 1 != 0 { f } else { PteFlags::empty() })
        }
    };
    Some(PaeEntry::map_to(zero, attrs).raw())
}

/// `field`, a NUL-terminated C string of at most 15 bytes, as bytes in
/// `buf`; `None` for NULL or a longer string.
///
/// # Safety
///
/// `field` must be NULL or a NUL-terminated string.
unsafe fn field_name(field: *const c_char, buf: &mut [u8; 16]) -> Option<&[u8]> {
    if field.is_null() {
        return None;
    }
    // Field names are short: read at most 16 bytes up to the NUL (by hand:
    // `CStr::from_ptr` calls `strlen`, which a freestanding kernel may lack).
    for len in 0..buf.len() {
        // SAFETY: the caller promises a NUL-terminated string, and we stop
        // at its NUL, so every byte read lies inside it.
        let b = unsafe { field.add(len).cast::<u8>().read() };
        if b == 0 {
            return Some(&buf[..len]);
        }
        buf[len] = b;
    }
    None
}

/// `uint64_t myos_pte64_raw(const char *field, uint64_t value)`: all ones
/// for an unknown field or NULL.
///
/// # Safety
///
/// `field` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn myos_pte64_raw(field: *const c_char, value: u64) -> u64 {
    let mut buf = [0u8; 16];
    // SAFETY: forwarded to the caller.
    unsafe { field_name(field, &mut buf) }
        .and_then(|name| pte64_raw(name, value))
        .unwrap_or(u64::MAX)
}

/// The raw entry with only `field` set to `value` (low bits of `value`
/// beyond the field's width are ignored), or `None` for an unknown field.
pub fn pte_raw(field: &[u8], value: u32) -> Option<u32> {
    let zero = Frame::from_number(0).ok()?;
    let flags = match field {
        b"unused" => unused_flags(value.into()),
        b"frame" => {
            let frame = Frame::from_number(value & 0xF_FFFF).ok()?;
            return Some(PageTableEntry::new(frame, PteFlags::empty()).raw());
        }
        _ => {
            let f = one_bit_flag(field)?;
            if value & 1 != 0 {
                f
            } else {
                PteFlags::empty()
            }
        }
    };
    Some(PageTableEntry::new(zero, flags).raw())
}

/// `uint32_t myos_pte_raw(const char *field, uint32_t value)`:
/// `0xFFFFFFFF` for an unknown field or NULL.
///
/// # Safety
///
/// `field` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn myos_pte_raw(field: *const c_char, value: u32) -> u32 {
    let mut buf = [0u8; 16];
    // SAFETY: forwarded to the caller.
    unsafe { field_name(field, &mut buf) }
        .and_then(|name| pte_raw(name, value))
        .unwrap_or(u32::MAX)
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

    #[test]
    fn pae_fields_sit_at_the_hardware_bits() {
        assert_eq!(pte64_raw(b"present", 1), Some(1));
        assert_eq!(pte64_raw(b"dirty", 1), Some(1 << 6));
        assert_eq!(pte64_raw(b"unused", 0x1F), Some(0x1F << 7));
        assert_eq!(pte64_raw(b"frame", 0xAB_CDEF), Some(0xA_BCDE_F000));
        assert_eq!(pte64_raw(b"nx", 1), Some(1 << 63));
        assert_eq!(pte64_raw(b"nx", 0), Some(0));
        assert_eq!(pte64_raw(b"reserved", 1), None);
    }

    #[test]
    fn field_names_are_read_up_to_their_nul() {
        let mut buf = [0u8; 16];
        // SAFETY: NULL and NUL-terminated literals.
        unsafe {
            assert_eq!(field_name(core::ptr::null(), &mut buf), None);
            assert_eq!(field_name(c"nx".as_ptr(), &mut buf), Some(&b"nx"[..]));
            assert_eq!(field_name(c"0123456789abcdef".as_ptr(), &mut buf), None);
            assert_eq!(myos_pte64_raw(c"nx".as_ptr(), 1), 1 << 63);
            assert_eq!(myos_pte64_raw(core::ptr::null(), 1), u64::MAX);
            assert_eq!(myos_pte_raw(c"bogus".as_ptr(), 1), u32::MAX);
        }
    }
}
