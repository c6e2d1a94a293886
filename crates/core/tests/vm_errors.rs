//! Every error path of the address-space API, on the simulated machine.
//! After each test every frame is back.

mod vm_support;

use myos_abi::errno::{EACCES, EBADF, EFAULT, EINVAL, ENOMEM};
use myos_abi::*;
use myos_mm::layout::{USER_END, USER_MMAP_MIN};
use myos_mm::vm::*;
use myos_mm::{MmError, VirtAddr};
use vm_support::*;

const RW: u32 = PROT_READ | PROT_WRITE;
const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const NULL: VirtAddr = VirtAddr::new(0);

fn errno<T: std::fmt::Debug>(r: Result<T, MmError>) -> i32 {
    r.unwrap_err().errno()
}

#[test]
fn length_zero_is_einval() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    assert_eq!(errno(vm.mmap(&fds, NULL, 0, RW, ANON, -1, 0)), EINVAL);
    assert_eq!(vm.region_count(), 0);
    drop(vm);
    w.finish();
}

#[test]
fn neither_or_both_shared_and_private_is_einval() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    assert_eq!(
        errno(vm.mmap(&fds, NULL, PAGE, RW, MAP_ANONYMOUS, -1, 0)),
        EINVAL
    );
    assert_eq!(
        errno(vm.mmap(
            &fds,
            NULL,
            PAGE,
            RW,
            MAP_ANONYMOUS | MAP_SHARED | MAP_PRIVATE,
            -1,
            0
        )),
        EINVAL
    );
    assert_eq!(vm.region_count(), 0);
    drop(vm);
    w.finish();
}

#[test]
fn map_fixed_at_unaligned_address_is_einval() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let r = vm.mmap(
        &fds,
        VirtAddr::new(0x1000_0010),
        PAGE,
        RW,
        ANON | MAP_FIXED,
        -1,
        0,
    );
    assert_eq!(r, Err(MmError::Misaligned));
    assert_eq!(errno(r), EINVAL);
    // A non-fixed unaligned hint is merely rounded.
    let a = vm
        .mmap(&fds, VirtAddr::new(0x1000_0010), PAGE, RW, ANON, -1, 0)
        .unwrap();
    assert_eq!(a.as_u32(), 0x1000_1000);
    drop(vm);
    w.finish();
}

#[test]
fn map_fixed_outside_user_space_or_at_null_is_einval() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    for addr in [
        0,
        0x1000,
        USER_MMAP_MIN - 0x1000,
        USER_END - 0x1000,
        USER_END,
    ] {
        let r = vm.mmap(
            &fds,
            VirtAddr::new(addr),
            2 * PAGE,
            RW,
            ANON | MAP_FIXED,
            -1,
            0,
        );
        assert_eq!(errno(r), EINVAL, "{addr:#x}");
    }
    assert_eq!(vm.region_count(), 0);
    drop(vm);
    w.finish();
}

#[test]
fn unknown_prot_or_flag_bits_are_einval() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    assert_eq!(errno(vm.mmap(&fds, NULL, PAGE, 0x8, ANON, -1, 0)), EINVAL);
    assert_eq!(
        errno(vm.mmap(&fds, NULL, PAGE, RW, ANON | 0x4000, -1, 0)),
        EINVAL
    );
    drop(vm);
    w.finish();
}

#[test]
fn anonymous_with_fd_or_offset_is_einval() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fs = MemFs::new();
    fs.create("f", &[1; 8192]);
    let mut fds = FdTable::new();
    let fd = fds.insert(fs.open("f", OpenMode::ReadWrite).unwrap());
    assert_eq!(errno(vm.mmap(&fds, NULL, PAGE, RW, ANON, fd, 0)), EINVAL);
    assert_eq!(errno(vm.mmap(&fds, NULL, PAGE, RW, ANON, -1, PAGE)), EINVAL);
    drop(vm);
    w.finish();
}

#[test]
fn bad_fd_is_ebadf() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fs = MemFs::new();
    fs.create("f", b"data");
    let mut fds = FdTable::new();
    let fd = fds.insert(fs.open("f", OpenMode::ReadOnly).unwrap());
    assert_eq!(
        errno(vm.mmap(&fds, NULL, PAGE, PROT_READ, MAP_PRIVATE, fd + 1, 0)),
        EBADF
    );
    assert_eq!(
        errno(vm.mmap(&fds, NULL, PAGE, PROT_READ, MAP_PRIVATE, -1, 0)),
        EBADF
    );
    fds.close(fd).unwrap();
    assert_eq!(
        errno(vm.mmap(&fds, NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0)),
        EBADF
    );
    drop(vm);
    w.finish();
}

#[test]
fn shared_writable_mapping_of_read_only_file_is_eacces() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fs = MemFs::new();
    fs.create("f", b"data");
    let mut fds = FdTable::new();
    let ro = fds.insert(fs.open("f", OpenMode::ReadOnly).unwrap());
    assert_eq!(
        errno(vm.mmap(&fds, NULL, PAGE, RW, MAP_SHARED, ro, 0)),
        EACCES
    );
    // Allowed: shared read-only, and private writable (writes stay private).
    let a = vm
        .mmap(&fds, NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0)
        .unwrap();
    vm.mmap(&fds, NULL, PAGE, RW, MAP_PRIVATE, ro, 0).unwrap();
    // ... but mprotect cannot make the shared one writable.
    assert_eq!(errno(vm.mprotect(a, PAGE, RW)), EACCES);
    assert_eq!(vm.region_at(a).unwrap().prot, Prot::READ);
    drop(vm);
    w.finish();
}

#[test]
fn write_only_file_cannot_be_mapped_eacces() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fs = MemFs::new();
    fs.create("f", b"data");
    let mut fds = FdTable::new();
    let wo = fds.insert(fs.open("f", OpenMode::WriteOnly).unwrap());
    assert_eq!(
        errno(vm.mmap(&fds, NULL, PAGE, PROT_WRITE, MAP_SHARED, wo, 0)),
        EACCES
    );
    assert_eq!(
        errno(vm.mmap(&fds, NULL, PAGE, PROT_READ, MAP_PRIVATE, wo, 0)),
        EACCES
    );
    drop(vm);
    w.finish();
}

#[test]
fn unaligned_file_offset_is_einval() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fs = MemFs::new();
    fs.create("f", &[0; 3 * 4096]);
    let mut fds = FdTable::new();
    let fd = fds.insert(fs.open("f", OpenMode::ReadOnly).unwrap());
    assert_eq!(
        errno(vm.mmap(&fds, NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 100)),
        EINVAL
    );
    assert_eq!(
        errno(vm.mmap(&fds, NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, !0xFFF)),
        EINVAL
    );
    drop(vm);
    w.finish();
}

#[test]
fn no_free_range_is_enomem() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    // Larger than all of user space.
    assert_eq!(
        errno(vm.mmap(&fds, NULL, USER_END, RW, ANON, -1, 0)),
        ENOMEM
    );
    assert_eq!(
        errno(vm.mmap(&fds, NULL, u32::MAX, RW, ANON, -1, 0)),
        ENOMEM
    );
    // Fill user space with one huge mapping, then nothing fits.
    let all = USER_END - USER_MMAP_MIN;
    let a = vm.mmap(&fds, NULL, all, PROT_NONE, ANON, -1, 0).unwrap();
    assert_eq!(a.as_u32(), USER_MMAP_MIN);
    assert_eq!(errno(vm.mmap(&fds, NULL, PAGE, RW, ANON, -1, 0)), ENOMEM);
    drop(vm);
    w.finish();
}

#[test]
fn munmap_of_unaligned_address_is_einval() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm.mmap(&fds, NULL, 2 * PAGE, RW, ANON, -1, 0).unwrap();
    assert_eq!(errno(vm.munmap(at(a, 1), PAGE)), EINVAL);
    assert_eq!(errno(vm.munmap(a, 0)), EINVAL);
    assert_eq!(
        errno(vm.munmap(VirtAddr::new(USER_END - PAGE), 2 * PAGE)),
        EINVAL
    );
    assert_eq!(vm.region_count(), 1, "nothing changed");
    // Unmapping an unmapped range succeeds.
    vm.munmap(VirtAddr::new(0x2000_0000), 16 * PAGE).unwrap();
    drop(vm);
    w.finish();
}

#[test]
fn mprotect_errors() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm.mmap(&fds, NULL, 2 * PAGE, RW, ANON, -1, 0).unwrap();
    assert_eq!(errno(vm.mprotect(at(a, 4), PAGE, PROT_READ)), EINVAL);
    assert_eq!(errno(vm.mprotect(a, 0, PROT_READ)), EINVAL);
    assert_eq!(errno(vm.mprotect(a, PAGE, 0x80)), EINVAL);
    // Range running past the mapping: ENOMEM, and nothing changed.
    assert_eq!(vm.mprotect(a, 3 * PAGE, PROT_READ), Err(MmError::NoRegion));
    assert_eq!(errno(vm.mprotect(a, 3 * PAGE, PROT_READ)), ENOMEM);
    assert_eq!(vm.region_at(a).unwrap().prot, Prot::READ | Prot::WRITE);
    assert_eq!(vm.region_count(), 1);
    assert_eq!(errno(vm.msync(VirtAddr::new(0x3000_0000), PAGE)), ENOMEM);
    drop(vm);
    w.finish();
}

#[test]
fn copy_user_with_bad_pointers_is_efault() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm.mmap(&fds, NULL, PAGE, PROT_READ, ANON, -1, 0).unwrap();
    let n = vm.mmap(&fds, NULL, PAGE, PROT_NONE, ANON, -1, 0).unwrap();
    let mut buf = [0u8; 16];
    let r = vm.copy_to_user(a, b"x");
    assert_eq!(r, Err(MmError::BadAddress));
    assert_eq!(errno(r), EFAULT);
    assert_eq!(errno(vm.copy_from_user(n, &mut buf)), EFAULT);
    assert_eq!(
        errno(vm.copy_from_user(VirtAddr::new(0x10), &mut buf)),
        EFAULT
    );
    assert_eq!(
        errno(vm.copy_to_user(VirtAddr::new(USER_END - 8), &[0; 16])),
        EFAULT
    );
    assert_eq!(
        errno(vm.copy_from_user(VirtAddr::new(0xC010_0000), &mut buf)),
        EFAULT
    );
    // Running off the end of a readable mapping.
    assert_eq!(errno(vm.copy_from_user(at(a, PAGE - 8), &mut buf)), EFAULT);
    assert_eq!(vm.copy_from_user(a, &mut []), Ok(()));
    vm.copy_from_user(a, &mut buf).unwrap();
    assert_eq!(buf, [0; 16]);
    drop(vm);
    w.finish();
}

#[test]
fn map_stack_errors() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let top = VirtAddr::new(USER_END);
    assert_eq!(
        vm.map_stack(at(top, 0), 0, 16 * PAGE),
        Err(MmError::InvalidArgument)
    );
    assert_eq!(
        vm.map_stack(top, 32 * PAGE, 16 * PAGE),
        Err(MmError::InvalidArgument)
    );
    assert_eq!(
        vm.map_stack(VirtAddr::new(USER_END - 1), PAGE, 16 * PAGE),
        Err(MmError::Misaligned)
    );
    assert_eq!(
        vm.map_stack(VirtAddr::new(USER_MMAP_MIN + PAGE), PAGE, 16 * PAGE),
        Err(MmError::OutOfRange)
    );
    vm.map_stack(top, PAGE, 16 * PAGE).unwrap();
    assert_eq!(
        vm.map_stack(top, PAGE, 16 * PAGE),
        Err(MmError::AlreadyMapped)
    );
    drop(vm);
    w.finish();
}

#[test]
fn out_of_memory_during_fault_and_fork_leaks_nothing() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm.mmap(&fds, NULL, 8 * PAGE, RW, ANON, -1, 0).unwrap();
    w.write_u32(&mut vm, a, 1, U).unwrap();
    w.fa.lock().fail_after(Some(0));
    assert_eq!(
        w.write_u32(&mut vm, at(a, PAGE), 1, U),
        Err(FaultOutcome::OutOfMemory)
    );
    assert_eq!(vm.fault_stats().out_of_memory, 1);
    assert!(vm.fork().is_err());
    // A page table for a new 4 MiB range cannot be allocated either.
    let far = vm
        .mmap(&fds, VirtAddr::new(0x8000_0000), PAGE, RW, ANON, -1, 0)
        .unwrap();
    w.fa.lock().fail_after(Some(1));
    assert_eq!(
        w.write_u32(&mut vm, far, 1, U),
        Err(FaultOutcome::OutOfMemory)
    );
    // Fork failing halfway (child directory allocated, a page table not).
    for budget in 0..4 {
        w.fa.lock().fail_after(Some(budget));
        let _ = vm.fork();
    }
    w.fa.lock().fail_after(None);
    w.write_u32(&mut vm, at(a, PAGE), 2, U).unwrap();
    assert_eq!(w.read_u32(&mut vm, a, U), Ok(1));
    let child = vm.fork().unwrap();
    drop(child);
    drop(vm);
    w.finish();
}

#[test]
fn typed_map_fixed_without_address_is_einval() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let req = MapRequest {
        addr: None,
        length: PAGE,
        prot: Prot::READ,
        shared: false,
        fixed: true,
        source: MapSource::Anonymous,
    };
    assert_eq!(vm.map(&req), Err(MmError::InvalidArgument));
    let ok = MapRequest {
        fixed: false,
        ..req
    };
    assert!(vm.map(&ok).is_ok());
    drop(vm);
    w.finish();
}

#[test]
fn out_of_memory_in_copy_to_user_and_file_page_in() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fs = MemFs::new();
    fs.create("f", &[7; 8192]);
    let mut fds = FdTable::new();
    let fd = fds.insert(fs.open("f", OpenMode::ReadWrite).unwrap());
    let anon = vm.mmap(&fds, NULL, 2 * PAGE, RW, ANON, -1, 0).unwrap();
    let shared = vm
        .mmap(&fds, NULL, 2 * PAGE, RW, MAP_SHARED, fd, 0)
        .unwrap();
    let private = vm
        .mmap(&fds, NULL, 2 * PAGE, RW, MAP_PRIVATE, fd, 0)
        .unwrap();
    // One page of each resident first (one page table for all three).
    vm.copy_to_user(anon, b"a").unwrap();
    w.read_u32(&mut vm, shared, U).unwrap();
    w.read_u32(&mut vm, private, U).unwrap();
    w.fa.lock().fail_after(Some(0));
    assert_eq!(
        vm.copy_to_user(at(anon, PAGE), b"x"),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(
        w.read_u32(&mut vm, at(shared, PAGE), U),
        Err(FaultOutcome::OutOfMemory)
    );
    // A write to a resident private file page must copy it: no frame.
    assert_eq!(
        w.write_u32(&mut vm, private, 1, U),
        Err(FaultOutcome::OutOfMemory)
    );
    assert_eq!(
        w.write_u32(&mut vm, at(private, PAGE), 1, U),
        Err(FaultOutcome::OutOfMemory)
    );
    assert_eq!(vm.fault_stats().out_of_memory, 4);
    w.fa.lock().fail_after(None);
    w.write_u32(&mut vm, private, 1, U).unwrap();
    assert_eq!(w.read_u32(&mut vm, at(shared, PAGE), U), Ok(0x0707_0707));
    drop(vm);
    assert_eq!(fs.read("f").unwrap(), vec![7; 8192]);
    w.finish();
}
