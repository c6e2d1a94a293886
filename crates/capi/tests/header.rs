//! `include/myos/memory.h` and `myos-abi` define the same numbers: every
//! `PROT_*`, `MAP_*`, `ERR_*`, `MM_E*` and `MYOS_O_*` macro of the header
//! equals the ABI crate's constant, and the ABI has no such number the
//! header lacks. The C layer's own numbers (`MYOS_FAULT_*`, the paging
//! modes `MYOS_PAGING_*`, `MM_PHYS_NONE` and `MM_PHYS64_NONE`) are checked
//! against `myos-capi`'s constants the same way. The reference kernel's user library (`user/lib/myos.h`)
//! repeats the `PROT_*`, `MAP_*` and `O_*` numbers for ring-3 programs:
//! they are checked the same way.

use std::collections::BTreeMap;

use myos_abi::errno::{
    EACCES, EBADF, EEXIST, EFAULT, EINVAL, ENODEV, ENOMEM, EOPNOTSUPP, EOVERFLOW, EPERM,
};
use myos_abi::*;

/// The `#define NAME VALUE` lines with a number as value of the header at
/// `path` (relative to the repository's root).
fn numbers_of(path: &str) -> BTreeMap<String, i128> {
    let full = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#define") {
            continue;
        }
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let value = value.trim_end_matches(['u', 'U', 'l', 'L']);
        let parsed = match value.strip_prefix("0x") {
            Some(hex) => i128::from_str_radix(hex, 16),
            None => value.parse(),
        };
        if let Ok(v) = parsed {
            out.insert(name.to_string(), v);
        }
    }
    out
}

/// The `mmap` numbers both headers define.
fn mman_numbers() -> Vec<(&'static str, i128)> {
    vec![
        ("PROT_NONE", PROT_NONE.into()),
        ("PROT_READ", PROT_READ.into()),
        ("PROT_WRITE", PROT_WRITE.into()),
        ("PROT_EXEC", PROT_EXEC.into()),
        ("MAP_SHARED", MAP_SHARED.into()),
        ("MAP_PRIVATE", MAP_PRIVATE.into()),
        ("MAP_FIXED", MAP_FIXED.into()),
        ("MAP_ANONYMOUS", MAP_ANONYMOUS.into()),
    ]
}

#[test]
fn header_numbers_are_the_abi_crates() {
    let mut abi = mman_numbers();
    abi.extend_from_slice(&[
        ("ERR_PRESENT", ERR_PRESENT.into()),
        ("ERR_WRITE", ERR_WRITE.into()),
        ("ERR_USER", ERR_USER.into()),
        ("ERR_RESERVED", ERR_RESERVED.into()),
        ("ERR_FETCH", ERR_FETCH.into()),
        ("MM_EOK", 0),
        ("MM_EPERM", EPERM.into()),
        ("MM_EBADF", EBADF.into()),
        ("MM_ENOMEM", ENOMEM.into()),
        ("MM_EACCES", EACCES.into()),
        ("MM_EFAULT", EFAULT.into()),
        ("MM_EEXIST", EEXIST.into()),
        ("MM_ENODEV", ENODEV.into()),
        ("MM_EINVAL", EINVAL.into()),
        ("MM_EOVERFLOW", EOVERFLOW.into()),
        ("MM_EOPNOTSUPP", EOPNOTSUPP.into()),
        ("MYOS_O_RDONLY", O_RDONLY.into()),
        ("MYOS_O_WRONLY", O_WRONLY.into()),
        ("MYOS_O_RDWR", O_RDWR.into()),
        ("MYOS_FAULT_SMEP", myos_capi::vm::FAULT_SMEP.into()),
        ("MYOS_FAULT_SMAP", myos_capi::vm::FAULT_SMAP.into()),
        ("MYOS_FAULT_AC", myos_capi::vm::FAULT_AC.into()),
        (
            "MYOS_PAGING_CLASSIC",
            myos_capi::state::PAGING_CLASSIC.into(),
        ),
        ("MYOS_PAGING_PAE", myos_capi::state::PAGING_PAE.into()),
        ("MM_PHYS_NONE", myos_capi::paging::PHYS_NONE.into()),
        ("MM_PHYS64_NONE", myos_capi::paging::PHYS64_NONE.into()),
    ]);
    let header = numbers_of("include/myos/memory.h");
    for &(name, value) in &abi {
        assert_eq!(header.get(name), Some(&value), "{name} in memory.h");
    }
    let families = [
        "PROT_",
        "MAP_",
        "ERR_",
        "MM_E",
        "MYOS_O_",
        "MYOS_FAULT_",
        "MYOS_PAGING_",
        "MM_PHYS",
    ];
    for name in header.keys() {
        if families.iter().any(|f| name.starts_with(f)) {
            assert!(
                abi.iter().any(|&(n, _)| n == name),
                "memory.h defines {name}, myos-abi does not"
            );
        }
    }
}

#[test]
fn the_user_librarys_numbers_are_the_abi_crates() {
    let mut abi = mman_numbers();
    abi.extend_from_slice(&[
        ("O_RDONLY", O_RDONLY.into()),
        ("O_WRONLY", O_WRONLY.into()),
        ("O_RDWR", O_RDWR.into()),
    ]);
    let user = numbers_of("user/lib/myos.h");
    for (name, value) in &user {
        if ["PROT_", "MAP_", "O_"].iter().any(|f| name.starts_with(f)) {
            let expected = abi.iter().find(|&&(n, _)| n == name);
            assert_eq!(
                expected.map(|&(_, v)| v),
                Some(*value),
                "{name} in user/lib/myos.h"
            );
        }
    }
    assert!(user.contains_key("PROT_EXEC") && user.contains_key("MAP_ANONYMOUS"));
}
