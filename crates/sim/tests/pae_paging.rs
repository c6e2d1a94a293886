//! Property test of the core's PAE page tables against the PAE machine's
//! independent walker: random map / unmap / protect (rights and NX) /
//! switch / access over three address spaces, with frames from above
//! 4 GiB, checked against a plain model both through the core's
//! `translate` and through the MMU (writes, and fetches with NX); every
//! frame back at the end.

use std::collections::BTreeMap;

use myos_mm::frames::{FrameAllocator, FrameSource, Zone};
use myos_mm::layout::{HEAP_START, KERNEL_BASE};
use myos_mm::paging::{AddressSpace, Pae, PageAttrs, PteFlags};
use myos_mm::{Frame, MmError, OwnedFrame, Page, PhysAddr, Platform, VirtAddr};
use myos_sim::err::{ERR_FETCH, ERR_PRESENT, ERR_USER, ERR_WRITE};
use myos_sim::pae::PaeMachine;
use myos_sim::{Mode, PageFault};
use proptest::prelude::*;

const MIB: u64 = 1 << 20;

/// Frame references by number: the test keeps the model's bookkeeping.
fn owned(f: Frame) -> OwnedFrame {
    // SAFETY: each number stands for the one reference the model tracks.
    unsafe { OwnedFrame::from_raw(f) }
}

#[derive(Debug, Clone)]
enum Op {
    Map(usize, u16, bool),
    Unmap(usize, u16),
    Protect(usize, u16, bool, bool),
    Switch(usize),
    Access(usize, u16),
}

/// A few pages spread over page tables of all three user directories and
/// the kernel's.
fn page_of(n: u16) -> Page {
    let n = u32::from(n) % 64;
    let va = match n % 5 {
        0 => 0x0040_0000 + (n / 5) * 0x1000,
        1 => 0x0080_0000 + (n / 5) * 0x20_1000,
        2 => 0x4000_0000 + (n / 5) * 0x1000,
        3 => 0xBFFF_F000 - (n / 5) * 0x1000,
        _ => HEAP_START + (n / 5) * 0x1000,
    };
    Page::from_start(VirtAddr::new(va)).unwrap()
}

fn attrs(writable: bool, exec: bool) -> PageAttrs {
    let flags = if writable {
        PteFlags::USER | PteFlags::WRITABLE
    } else {
        PteFlags::USER
    };
    PageAttrs::new(flags).with_no_exec(!exec)
}

/// (frame, writable, executable)
type Model = BTreeMap<u32, (Frame, bool, bool)>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn pae_paging_matches_model_and_walker(ops in proptest::collection::vec(
        prop_oneof![
            4 => (0usize..3, any::<u16>(), any::<bool>()).prop_map(|(s, p, x)| Op::Map(s, p, x)),
            3 => (0usize..3, any::<u16>()).prop_map(|(s, p)| Op::Unmap(s, p)),
            2 => (0usize..3, any::<u16>(), any::<bool>(), any::<bool>())
                .prop_map(|(s, p, w, x)| Op::Protect(s, p, w, x)),
            1 => (0usize..3).prop_map(Op::Switch),
            3 => (0usize..3, any::<u16>()).prop_map(|(s, p)| Op::Access(s, p)),
        ], 1..200)) {
        let m = PaeMachine::split_ram(16 * MIB, 8 * MIB).build()
            .unwrap();
        let map = m.memory_map();
        // SAFETY: the allocator is dropped before the machine.
        let mut fa = unsafe { FrameAllocator::new_below(&m, &map, m.ram_end()) }.unwrap();
        let boot = fa.stats();
        let kernel = AddressSpace::<Pae>::create_kernel(&m, &mut fa, PhysAddr::new(16 << 20)).unwrap();
        kernel.activate(&m);
        let mut spaces: Vec<AddressSpace<Pae>> =
            (0..3).map(|_| AddressSpace::new_user(&m, &mut fa, &kernel).unwrap()).collect();
        let mut model: Vec<Model> = vec![Model::new(); 3];
        let mut kmodel = Model::new();
        let mut active = None;
        for op in ops {
            match op {
                Op::Map(s, p, exec) => {
                    let page = page_of(p);
                    let kernel_page = page.start().as_u32() >= KERNEL_BASE;
                    let mm = if kernel_page { &mut kmodel } else { &mut model[s] };
                    let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
                    prop_assert!(f.start().as_u64() >= 1 << 32, "{:?}", f);
                    let r = spaces[s]
                        .map(&m, &mut fa, page, owned(f), attrs(true, exec))
                        .map_err(|e| e.error);
                    match mm.entry(page.number()) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            prop_assert_eq!(r.err(), Some(MmError::AlreadyMapped));
                            fa.release(owned(f)).unwrap();
                        }
                        std::collections::btree_map::Entry::Vacant(v) => {
                            r.unwrap().flush(&m);
                            v.insert((f, true, exec));
                        }
                    }
                }
                Op::Unmap(s, p) => {
                    let page = page_of(p);
                    let kernel_page = page.start().as_u32() >= KERNEL_BASE;
                    let mm = if kernel_page { &mut kmodel } else { &mut model[s] };
                    let r = spaces[s].unmap(&m, &mut fa, page);
                    match mm.remove(&page.number()) {
                        Some((f, _, _)) => {
                            let (got, fl) = r.unwrap();
                            fl.flush(&m);
                            prop_assert_eq!(got.frame(), f);
                            fa.release(got).unwrap();
                        }
                        None => prop_assert_eq!(r.map(|(f, fl)| (f.into_raw(), fl)).err(), Some(MmError::NotMapped)),
                    }
                }
                Op::Protect(s, p, writable, exec) => {
                    let page = page_of(p);
                    let kernel_page = page.start().as_u32() >= KERNEL_BASE;
                    let mm = if kernel_page { &mut kmodel } else { &mut model[s] };
                    let r = spaces[s].protect(&m, page, attrs(writable, exec));
                    match mm.get_mut(&page.number()) {
                        Some(e) => {
                            r.unwrap().flush(&m);
                            e.1 = writable;
                            e.2 = exec;
                        }
                        None => prop_assert_eq!(r.err(), Some(MmError::NotMapped)),
                    }
                }
                Op::Switch(s) => {
                    spaces[s].activate(&m);
                    active = Some(s);
                }
                Op::Access(s, p) => {
                    let page = page_of(p);
                    let kernel_page = page.start().as_u32() >= KERNEL_BASE;
                    let want = if kernel_page { kmodel.get(&page.number()) } else { model[s].get(&page.number()) };
                    let va = page.start().as_u32() + 0x10;
                    prop_assert_eq!(
                        spaces[s].translate(&m, VirtAddr::new(va)),
                        want.map(|e| e.0.start().checked_add(0x10).unwrap())
                    );
                    if active == Some(s) && !kernel_page {
                        // The independent walker agrees: rights and NX.
                        let wrote = m.write_u32(va, 0x5A5A_0000 | u32::from(p), Mode::User);
                        let fetched = m.fetch(va, Mode::User);
                        match want {
                            None => {
                                prop_assert_eq!(wrote, Err(PageFault::new(va, ERR_USER | ERR_WRITE)));
                                prop_assert_eq!(fetched, Err(PageFault::new(va, ERR_USER | ERR_FETCH)));
                            }
                            Some(&(f, writable, exec)) => {
                                if writable {
                                    prop_assert_eq!(wrote, Ok(()));
                                    let mut b = [0u8; 4];
                                    m.read_frame(f, 0x10, &mut b);
                                    prop_assert_eq!(u32::from_le_bytes(b), 0x5A5A_0000 | u32::from(p));
                                } else {
                                    prop_assert_eq!(wrote, Err(PageFault::new(va, ERR_USER | ERR_WRITE | ERR_PRESENT)));
                                }
                                if exec {
                                    prop_assert!(fetched.is_ok(), "{:?}", fetched);
                                } else {
                                    prop_assert_eq!(fetched, Err(PageFault::new(va, ERR_USER | ERR_FETCH | ERR_PRESENT)));
                                }
                            }
                        }
                    }
                }
            }
        }
        kernel.activate(&m);
        for s in &spaces {
            s.deactivate(&m);
        }
        for s in spaces {
            s.destroy(&m, &mut fa);
        }
        // Park CR3 on an empty PDPT, then the kernel space (and the frames
        // still mapped in its tables) goes.
        let park = fa.alloc(Zone::Direct).unwrap();
        m.zero_frame(park.frame());
        m.set_cr3(park.start().as_u32()).unwrap();
        // SAFETY: every user space is gone; the kernel space is not loaded.
        unsafe { kernel.destroy_kernel(&m, &mut fa) };
        fa.release(park).unwrap();
        prop_assert_eq!(fa.stats(), boot);
        fa.validate().unwrap();
    }
}
