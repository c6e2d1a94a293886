//! Shared (memfd) RAM: another host mapping of a frame sees the machine's
//! bytes and the machine sees writes made through it.
#![cfg(feature = "memfd")]

use std::os::fd::{AsRawFd, BorrowedFd};

use myos_mm::{Frame, Platform};
use myos_sim::SimMachine;

/// Maps the page at byte `offset` of the memfd `fd` once more, at a host
/// address of the kernel's choosing.
fn map_page(fd: BorrowedFd<'_>, offset: u64) -> *mut u8 {
    // SAFETY: a fresh shared mapping of one page of the memfd; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset as i64,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p.cast()
}

/// Maps frame `n` of `m`'s RAM once more, at a host address of the kernel's choosing.
fn alias(m: &SimMachine, n: u32) -> *mut u8 {
    map_page(
        m.ram_fd().expect("shared RAM has a memfd"),
        u64::from(n) * 4096,
    )
}

#[test]
fn plain_ram_has_no_fd() {
    assert!(SimMachine::new(1 << 20).unwrap().ram_fd().is_none());
}

#[test]
fn an_alias_and_the_machine_see_the_same_bytes() {
    let m = SimMachine::builder(16 << 20)
        .shared_ram(true)
        .build()
        .unwrap();
    assert_eq!(
        m.read_phys_u32(0x5000).unwrap(),
        0,
        "memfd RAM starts zeroed"
    );
    m.write_phys_u32(0x5010, 0xDEAD_BEEF).unwrap();
    let a = alias(&m, 5);
    // SAFETY: `a` maps one whole page (above); offsets stay inside it.
    unsafe {
        assert_eq!(a.add(0x10).cast::<u32>().read_volatile(), 0xDEAD_BEEF);
        a.add(0x20).cast::<u32>().write_volatile(0x1234_5678);
    }
    assert_eq!(m.read_phys_u32(0x5020).unwrap(), 0x1234_5678);
    // frame_ptr is a view of the same file too.
    let f = m.frame_ptr(Frame::from_number(5).unwrap()).cast::<u8>();
    // SAFETY: frame 5 is in RAM; the pointer is valid for the whole page.
    let through_frame_ptr = unsafe { f.as_ptr().add(0x20).cast::<u32>().read() };
    assert_eq!(through_frame_ptr, 0x1234_5678);
    // SAFETY: unmaps exactly the page mapped by `alias`.
    assert_eq!(unsafe { libc::munmap(a.cast(), 4096) }, 0);
}

#[test]
fn large_shared_ram_is_sparse() {
    // 4 GiB of memfd RAM costs nothing until touched.
    let m = SimMachine::builder(1 << 32)
        .shared_ram(true)
        .build()
        .unwrap();
    m.write_phys_u32(0xFFFF_FFFC, 7).unwrap();
    assert_eq!(m.read_phys_u32(0xFFFF_FFFC).unwrap(), 7);
}

#[test]
fn pae_banks_have_one_memfd_each() {
    use myos_sim::pae::PaeMachine;

    let high = 1u64 << 32;
    let m = PaeMachine::builder()
        .ram(0, 16 << 20)
        .ram(high, 16 << 20)
        .shared_ram(true)
        .build()
        .unwrap();
    let (fd, off) = m.ram_fd(high + 0x3000).expect("shared bank above 4 GiB");
    assert_eq!(off, 0x3000, "offsets are relative to the bank");
    let (low_fd, low_off) = m.ram_fd(0x3000).expect("shared bank at 0");
    assert_eq!(low_off, 0x3000);
    assert_ne!(fd.as_raw_fd(), low_fd.as_raw_fd(), "one file per bank");
    assert!(m.ram_fd(16 << 20).is_none(), "no bank, no file");
    m.write_phys_u64(high + 0x3008, 0x1122_3344_5566_7788)
        .unwrap();
    let p = map_page(fd, off);
    // SAFETY: `p` maps one whole page; the offset stays inside it.
    unsafe {
        assert_eq!(
            p.cast::<u8>().add(8).cast::<u64>().read_volatile(),
            0x1122_3344_5566_7788
        );
        p.cast::<u8>().add(16).cast::<u32>().write_volatile(0xCAFE);
    }
    assert_eq!(m.read_phys_u32(high + 0x3010).unwrap(), 0xCAFE);
    // SAFETY: unmaps exactly the page mapped above.
    assert_eq!(unsafe { libc::munmap(p.cast(), 4096) }, 0);
    let plain = PaeMachine::builder().ram(0, 1 << 20).build().unwrap();
    assert!(plain.ram_fd(0).is_none(), "plain RAM has no fd");
}
