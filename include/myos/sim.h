/*
 * myos/sim.h — the host library's set-up call (host only, extension).
 *
 * Link C code against libmyos_capi.a (built by `cargo xtask capi`, see
 * crates/capi/README.md) and compile it with -DMYOS_HOSTED. One call boots
 * a simulated i386 and the whole memory manager; after it every function of
 * <myos/memory.h> works as in the kernel, and memory the API hands out
 * (kmalloc blocks, mmap regions) is real memory at host addresses equal to
 * the simulated virtual addresses (below 4 GiB), backed by simulated frames.
 */
#ifndef MYOS_SIM_H
#define MYOS_SIM_H

#include <stdint.h>

#ifndef MYOS_HOSTED
#error "<myos/sim.h> is for the host library: compile with -DMYOS_HOSTED"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Boots a simulated machine with `ram_bytes` of RAM (a multiple of 4096,
 * at least 2 MiB; 0 means 64 MiB) and sets up everything: the frame
 * allocator, the kernel page directory (init_paging), the kernel heap
 * (init_kheap), and one process whose page directory becomes
 * current_directory and receives mmap's mappings. Returns 0, or an MM_E*
 * code (and prints why): MM_EEXIST when already booted (once per process),
 * MM_EINVAL for a bad size, MM_ENOMEM when the host address ranges it needs
 * (0x00400000..0xC0000000 and 0xC0000000..0xFFC00000) are taken.
 */
int myos_sim_boot(uint32_t ram_bytes);

/*
 * Extension (PAE paging, see <myos/memory.h>): as myos_sim_boot, on a
 * simulated PAE CPU (EFER.NXE on) with `low_bytes` of RAM at physical 0
 * (0 means 64 MiB; a multiple of 4096, at least 2 MiB) and `high_bytes`
 * at physical 4 GiB (0: none; else the same rules), so frames above 4 GiB
 * exist. The memory manager runs PAE paging: myos_paging_mode() is
 * MYOS_PAGING_PAE, get_page64 works and get_page refuses. Same return
 * values; one boot per process, whichever kind.
 */
int myos_sim_boot_pae(uint32_t low_bytes, uint32_t high_bytes);

#ifdef __cplusplus
}
#endif

#endif /* MYOS_SIM_H */
