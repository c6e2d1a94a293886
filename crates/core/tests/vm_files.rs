//! File mappings on the simulated machine: private vs shared, write-back,
//! page-cache coherence, EOF. After each test every frame is back.

mod vm_support;

use myos_abi::*;
use myos_mm::vm::*;
use myos_mm::VirtAddr;
use vm_support::*;

const RW: u32 = PROT_READ | PROT_WRITE;
const NULL: VirtAddr = VirtAddr::new(0);

fn file_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn setup(len: usize, mode: OpenMode) -> (MemFs, FdTable, i32) {
    let fs = MemFs::new();
    fs.create("f", &file_bytes(len));
    let mut fds = FdTable::new();
    let fd = fds.insert(fs.open("f", mode).unwrap());
    (fs, fds, fd)
}

#[test]
fn private_file_mapping_writes_never_reach_the_file() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let (fs, fds, fd) = setup(3 * 4096, OpenMode::ReadWrite);
    let a = vm
        .mmap(&fds, NULL, 3 * PAGE, RW, MAP_PRIVATE, fd, 0)
        .unwrap();
    assert_eq!(
        w.read_bytes(&mut vm, at(a, 4096), 8, U).unwrap(),
        &file_bytes(3 * 4096)[4096..4104]
    );
    w.write_bytes(&mut vm, at(a, 4096), b"PRIVATE!", U).unwrap(); // COW from the cache
    w.write_bytes(&mut vm, at(a, 8192), b"private2", U).unwrap(); // first touch is a write
    assert_eq!(
        w.read_bytes(&mut vm, at(a, 4096), 8, U).unwrap(),
        b"PRIVATE!"
    );
    vm.msync(a, 3 * PAGE).unwrap();
    vm.munmap(a, 3 * PAGE).unwrap();
    assert_eq!(fs.read("f").unwrap(), file_bytes(3 * 4096));
    assert_eq!(vm.fault_stats().cow_copy, 1);
    drop(vm);
    w.finish();
}

#[test]
fn shared_file_mapping_writes_reach_the_file_on_msync_munmap_and_exit() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let (fs, fds, fd) = setup(3 * 4096, OpenMode::ReadWrite);
    let a = vm
        .mmap(&fds, NULL, 3 * PAGE, RW, MAP_SHARED, fd, 0)
        .unwrap();
    assert_eq!(
        w.read_u32(&mut vm, a, U),
        Ok(u32::from_le_bytes([0, 1, 2, 3]))
    );
    w.write_bytes(&mut vm, a, b"SHARED", U).unwrap();
    assert_eq!(
        vm.fault_stats().write_notify,
        1,
        "read first, then the first write marks it dirty"
    );
    vm.msync(a, PAGE).unwrap();
    assert_eq!(&fs.read("f").unwrap()[..6], b"SHARED");
    w.write_bytes(&mut vm, at(a, 4096), b"second", U).unwrap();
    vm.munmap(at(a, 4096), PAGE).unwrap();
    assert_eq!(&fs.read("f").unwrap()[4096..4102], b"second");
    w.write_bytes(&mut vm, at(a, 8192), b"third", U).unwrap();
    drop(vm); // exit
    let data = fs.read("f").unwrap();
    assert_eq!(&data[8192..8197], b"third");
    assert_eq!(data.len(), 3 * 4096, "the file did not grow");
    w.finish();
}

#[test]
fn shared_file_mappings_are_coherent_between_processes() {
    let w = World::new(16 * MIB);
    let (fs, fds, fd) = setup(2 * 4096, OpenMode::ReadWrite);
    let mut p1 = w.space();
    let mut p2 = w.space();
    let a1 = p1
        .mmap(&fds, NULL, 2 * PAGE, RW, MAP_SHARED, fd, 0)
        .unwrap();
    // A second, independent open of the same file.
    let mut fds2 = FdTable::new();
    let fd2 = fds2.insert(fs.open("f", OpenMode::ReadWrite).unwrap());
    let a2 = p2
        .mmap(&fds2, NULL, PAGE, RW, MAP_SHARED, fd2, 4096)
        .unwrap();
    w.write_u32(&mut p1, at(a1, 4096), 0xFEED_F00D, U).unwrap();
    assert_eq!(w.read_u32(&mut p2, a2, U), Ok(0xFEED_F00D));
    // A private mapping sees the cache too (until it writes).
    let a3 = p2
        .mmap(&fds2, NULL, PAGE, PROT_READ, MAP_PRIVATE, fd2, 4096)
        .unwrap();
    assert_eq!(w.read_u32(&mut p2, a3, U), Ok(0xFEED_F00D));
    // Across fork as well.
    let mut c = p1.fork().unwrap();
    w.write_u32(&mut c, a1, 0x0C0C_0C0C, U).unwrap();
    assert_eq!(w.read_u32(&mut p1, a1, U), Ok(0x0C0C_0C0C));
    drop(p1);
    drop(c);
    drop(p2);
    let data = fs.read("f").unwrap();
    assert_eq!(&data[..4], &0x0C0C_0C0Cu32.to_le_bytes());
    assert_eq!(&data[4096..4100], &0xFEED_F00Du32.to_le_bytes());
    w.finish();
}

#[test]
fn access_past_eof_is_sigbus_and_the_last_page_tail_is_zero() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let (fs, fds, fd) = setup(4096 + 100, OpenMode::ReadWrite);
    let a = vm
        .mmap(&fds, NULL, 4 * PAGE, RW, MAP_SHARED, fd, 0)
        .unwrap();
    let tail = w.read_bytes(&mut vm, at(a, 4096), 4096, U).unwrap();
    assert_eq!(&tail[..100], &file_bytes(4196)[4096..]);
    assert!(
        tail[100..].iter().all(|&b| b == 0),
        "zero-filled past EOF within the last page"
    );
    let past = at(a, 2 * PAGE + 16);
    assert_eq!(
        w.read_u32(&mut vm, past, U),
        Err(FaultOutcome::Signal(Signal::Bus { addr: past }))
    );
    assert_eq!(
        w.write_u32(&mut vm, past, 1, U),
        Err(FaultOutcome::Signal(Signal::Bus { addr: past }))
    );
    assert_eq!(vm.fault_stats().sigbus, 2);
    // copy_from_user past EOF: EFAULT.
    let mut buf = [0u8; 8];
    assert_eq!(
        vm.copy_from_user(past, &mut buf),
        Err(myos_mm::MmError::BadAddress)
    );
    // Writes into the tail never extend the file.
    w.write_bytes(&mut vm, at(a, 4096 + 98), b"XYZW", U)
        .unwrap();
    drop(vm);
    let data = fs.read("f").unwrap();
    assert_eq!(data.len(), 4196);
    assert_eq!(&data[4194..], b"XY");
    w.finish();
}

#[test]
fn file_offset_maps_the_right_pages() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let (_fs, fds, fd) = setup(5 * 4096, OpenMode::ReadOnly);
    let a = vm
        .mmap(&fds, NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, 3 * PAGE)
        .unwrap();
    let expect = file_bytes(5 * 4096);
    assert_eq!(
        w.read_bytes(&mut vm, at(a, 4096 - 4), 8, U).unwrap(),
        &expect[4 * 4096 - 4..4 * 4096 + 4]
    );
    assert_eq!(
        vm.region_at(a).unwrap().backing,
        BackingKind::File { offset: 3 * 4096 }
    );
    // Splitting keeps offsets right.
    vm.munmap(a, PAGE).unwrap();
    assert_eq!(
        vm.region_at(at(a, PAGE)).unwrap().backing,
        BackingKind::File { offset: 4 * 4096 }
    );
    assert_eq!(
        w.read_bytes(&mut vm, at(a, PAGE), 4, U).unwrap(),
        &expect[4 * 4096..4 * 4096 + 4]
    );
    drop(vm);
    w.finish();
}

#[test]
fn copy_to_user_into_a_shared_file_page_marks_it_dirty() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let (fs, fds, fd) = setup(4096, OpenMode::ReadWrite);
    let a = vm.mmap(&fds, NULL, PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    vm.copy_to_user(at(a, 10), b"kernel").unwrap();
    vm.msync(a, PAGE).unwrap();
    assert_eq!(&fs.read("f").unwrap()[10..16], b"kernel");
    drop(vm);
    w.finish();
}

/// A file whose reads or writes fail (an I/O error).
struct Broken {
    data: MemFile,
    fail_reads: bool,
}

impl File for Broken {
    fn len(&self) -> u64 {
        self.data.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, myos_mm::MmError> {
        if self.fail_reads {
            return Err(myos_mm::MmError::OutOfRange);
        }
        self.data.read_at(offset, buf)
    }
    fn write_at(&self, _offset: u64, _buf: &[u8]) -> Result<usize, myos_mm::MmError> {
        Err(myos_mm::MmError::AccessDenied)
    }
    fn page_cache(&self) -> &PageCache {
        self.data.page_cache()
    }
}

#[test]
fn file_io_errors_are_sigbus_on_read_and_reported_by_msync() {
    use std::sync::Arc;
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let mut fds = FdTable::new();
    let unreadable = Arc::new(Broken {
        data: MemFile::new(&[1; 4096]),
        fail_reads: true,
    });
    let unwritable = Arc::new(Broken {
        data: MemFile::new(&[1; 4096]),
        fail_reads: false,
    });
    let r = fds.insert(OpenFile::new(unreadable, OpenMode::ReadWrite));
    let wr = fds.insert(OpenFile::new(unwritable, OpenMode::ReadWrite));
    let a = vm.mmap(&fds, NULL, PAGE, RW, MAP_SHARED, r, 0).unwrap();
    assert_eq!(
        w.read_u32(&mut vm, a, U),
        Err(FaultOutcome::Signal(Signal::Bus { addr: a }))
    );
    let b = vm.mmap(&fds, NULL, PAGE, RW, MAP_SHARED, wr, 0).unwrap();
    w.write_u32(&mut vm, b, 2, U).unwrap();
    assert_eq!(vm.msync(b, PAGE), Err(myos_mm::MmError::AccessDenied));
    // munmap and exit still succeed and free everything (the data is lost,
    // as with any failed write-back).
    vm.munmap(b, PAGE).unwrap();
    drop(vm);
    w.finish();
}
