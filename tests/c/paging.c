/*
 * Page directories, get_page, alloc_frame/free_frame, map_page/unmap_page,
 * get_physical_address: results, documented semantics and every failure.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"

#define PHYS(p) ((uint32_t)(p)->frame << 12)

TEST_MAIN {
    BOOT(32 << 20);
    uint32_t baseline = myos_frames_free();
    CHECK(baseline > 0, "frames");

    /* Directories. */
    CHECK(current_directory != NULL && kernel_directory != NULL &&
              current_directory != kernel_directory,
          "the C process's directory is current");
    page_directory_t *proc = current_directory;
    switch_page_directory(NULL);
    CHECK(mm_errno() == MM_EINVAL && current_directory == proc, "switch to NULL refused");
    switch_page_directory((page_directory_t *)&baseline);
    CHECK(mm_errno() == MM_EINVAL && current_directory == proc, "switch to a bogus pointer refused");

    /* get_page: no table and make == 0 gives NULL. */
    CHECK(get_page(0x80000000u, 0, current_directory) == NULL && mm_errno() == MM_EINVAL,
          "get_page(make=0) on an unmapped address");
    CHECK(get_page(0x1000, 1, NULL) == NULL && mm_errno() == MM_EINVAL, "NULL directory");
    CHECK(get_page(0x1000, 1, (page_directory_t *)&baseline) == NULL && mm_errno() == MM_EINVAL,
          "bogus directory");
    CHECK(get_page(0xC0100000u, 1, current_directory) == NULL && mm_errno() == MM_EPERM,
          "direct map: fixed 4 MiB pages");
    CHECK(get_page(0xFFC00000u, 1, current_directory) == NULL && mm_errno() == MM_EINVAL,
          "top 4 MiB: no page tables");

    /* get_page(make=1), then the same entry without make. */
    page_t *p = get_page(0x00600000, 1, current_directory);
    CHECK(p != NULL && mm_errno() == 0 && !p->present, "get_page(make=1)");
    CHECK(get_page(0x00600000, 0, current_directory) == p, "same entry with make=0");
    CHECK(get_page(0x00601000, 0, current_directory) == p + 1, "next entry, same table");
    CHECK(get_physical_address(0x00600000) == MM_PHYS_NONE && mm_errno() == MM_EINVAL,
          "get_physical_address of an unmapped address is MM_PHYS_NONE");

    /* alloc_frame. */
    alloc_frame(NULL, 0, 1);
    CHECK(mm_errno() == MM_EINVAL, "alloc_frame(NULL)");
    alloc_frame(p, 0, 1);
    CHECK(mm_errno() == 0 && p->present && p->rw && p->user && !p->accessed && !p->dirty,
          "alloc_frame: user, writable");
    CHECK(myos_frames_free() == baseline - 2, "one frame for the table, one for the page: %u",
          baseline - myos_frames_free());
    uint32_t frame = PHYS(p);
    alloc_frame(p, 1, 0);
    CHECK(mm_errno() == 0 && PHYS(p) == frame && p->user && p->rw, "alloc_frame leaves a present page");
    CHECK(get_physical_address(0x00600123) == (frame | 0x123), "translation %#x",
          get_physical_address(0x00600123));

    /* The page is real memory at its address; the MMU sets A and D. */
    volatile uint32_t *w = (volatile uint32_t *)0x00600010;
    *w = 0xDEADBEEF;
    CHECK(*w == 0xDEADBEEF, "write and read back");
    CHECK(p->accessed && p->dirty, "accessed %u dirty %u", p->accessed, p->dirty);

    /* map_page over the page with the frame it has (the spec's first example). */
    map_page(0x00600000, get_physical_address(0x00600000), 1, 0);
    CHECK(mm_errno() == 0 && PHYS(p) == frame && !p->user && !p->rw, "remap with the same frame");
    CHECK(myos_frames_free() == baseline - 2, "no frame leaked or lost by remapping");
    map_page(0x00600000, frame, 0, 1);

    /* A second mapping of the frame shares it. */
    map_page(0x00601000, frame, 0, 1);
    CHECK(mm_errno() == 0 && get_physical_address(0x00601000) == frame, "alias mapping");
    CHECK(*(volatile uint32_t *)0x00601010 == 0xDEADBEEF, "both pages show the same frame");
    unmap_page(0x00600000);
    CHECK(mm_errno() == 0 && get_physical_address(0x00600000) == MM_PHYS_NONE, "unmap_page");
    CHECK(myos_frames_free() == baseline - 2, "the frame lives on in the other mapping");
    CHECK(*(volatile uint32_t *)0x00601010 == 0xDEADBEEF, "still readable through the alias");

    /* map_page over a mapping with another frame releases the old one. */
    page_t *q = get_page(0x00602000, 1, current_directory);
    alloc_frame(q, 0, 1);
    uint32_t other = PHYS(q);
    CHECK(other != frame && myos_frames_free() == baseline - 3, "second frame");
    map_page(0x00601000, other, 0, 1);
    CHECK(get_physical_address(0x00601000) == other && myos_frames_free() == baseline - 2,
          "replacing the last mapping of a frame frees it (%d)", (int)(baseline - myos_frames_free()));

    /* Device memory (reserved, outside the allocator) maps without a reference. */
    map_page(0x00603000, 0x000B8000, 1, 1);
    CHECK(mm_errno() == 0 && get_physical_address(0x00603000) == 0x000B8000, "VGA text memory");
    unmap_page(0x00603000);
    CHECK(mm_errno() == 0, "unmapping device memory");

    /* Failures. */
    map_page(0xC0000000u, 0x1000, 1, 1);
    CHECK(mm_errno() == MM_EPERM, "map_page in the direct map");
    map_page(0xFFC01000u, 0x1000, 1, 1);
    CHECK(mm_errno() == MM_EINVAL, "map_page in the top 4 MiB");
    unmap_page(0x00604000);
    CHECK(mm_errno() == MM_EINVAL, "unmap_page of an unmapped page");
    CHECK(get_physical_address(0xC0001234u) == 0x1234, "direct map translates");

    /* free_frame. */
    free_frame(NULL);
    CHECK(mm_errno() == MM_EINVAL, "free_frame(NULL)");
    free_frame(q);
    CHECK(mm_errno() == 0 && !q->present && get_physical_address(0x00602000) == MM_PHYS_NONE,
          "free_frame");
    CHECK(myos_frames_free() == baseline - 2, "its frame went back: %d",
          (int)(baseline - myos_frames_free()));
    free_frame(q);
    CHECK(mm_errno() == 0, "free_frame of a free page does nothing");

    /* A detached page_t (not in any table) works as in the design it comes from. */
    page_t loose;
    memset(&loose, 0, sizeof loose);
    alloc_frame(&loose, 1, 1);
    CHECK(mm_errno() == 0 && loose.present && !loose.user, "alloc_frame on a detached entry");
    free_frame(&loose);
    CHECK(mm_errno() == 0 && !loose.present, "free_frame on a detached entry");

    /* Directories are separate below 0xC0000000. */
    page_t *k = get_page(0x00700000, 1, kernel_directory);
    alloc_frame(k, 1, 1);
    CHECK(mm_errno() == 0 && get_physical_address(0x00700000) == MM_PHYS_NONE,
          "a kernel-directory mapping is not in the process directory");
    switch_page_directory(kernel_directory);
    CHECK(current_directory == kernel_directory && get_physical_address(0x00700000) == PHYS(k),
          "... but is once the kernel directory is loaded");
    free_frame(k);
    switch_page_directory(proc);
    CHECK(mm_errno() == 0 && current_directory == proc, "back to the process");

    /* Unmapping the last page of a user table frees the table. */
    unmap_page(0x00601000);
    CHECK(mm_errno() == 0 && get_page(0x00600000, 0, current_directory) == NULL,
          "the empty table is gone");
    CHECK(myos_frames_free() == baseline - 1, "all frames back but the kernel directory's table: %d",
          (int)(baseline - myos_frames_free()));

    /* The PAE extension under classic paging: the page64_t calls refuse,
     * the 64-bit translation works, frames at or above 4 GiB are refused. */
    uint32_t before64 = myos_frames_free();
    CHECK(myos_paging_mode() == MYOS_PAGING_CLASSIC && mm_errno() == 0, "classic paging");
    CHECK(get_page64(0x00600000, 1, current_directory) == NULL && mm_errno() == MM_EOPNOTSUPP,
          "get_page64 under classic paging");
    page64_t loose64;
    memset(&loose64, 0, sizeof loose64);
    alloc_frame64(&loose64, 1, 1, 0);
    CHECK(mm_errno() == MM_EOPNOTSUPP && loose64.raw == 0, "alloc_frame64 under classic paging");
    loose64.present = 1;
    free_frame64(&loose64);
    CHECK(mm_errno() == MM_EOPNOTSUPP && loose64.present, "free_frame64 under classic paging");
    CHECK(get_physical_address64(0xC0001234u) == 0x1234 && mm_errno() == 0,
          "get_physical_address64 in the direct map");
    CHECK(get_physical_address64(0x00600000) == MM_PHYS64_NONE && mm_errno() == MM_EINVAL,
          "get_physical_address64 of an unmapped address");
    map_page64(0x00600000, 0x100000000ull, 1, 1);
    CHECK(mm_errno() == MM_EINVAL && get_physical_address64(0x00600000) == MM_PHYS64_NONE,
          "map_page64 above 4 GiB refused by classic entries");
    map_page64(0x00600000, 0x000B8000, 1, 1);
    CHECK(mm_errno() == 0 && get_physical_address(0x00600000) == 0x000B8000, "map_page64 below 4 GiB");
    unmap_page(0x00600000);
    CHECK(mm_errno() == 0 && myos_frames_free() == before64, "no frame leaked: %d",
          (int)(before64 - myos_frames_free()));
    DONE();
}
