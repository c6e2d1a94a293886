/*
 * jamesm.c — the steps of James Molloy's kernel tutorial, chapter 7 (main.c
 * and paging), written with the tutorial's names through <myos/jamesm.h>:
 * proof that a kernel which followed the tutorial compiles against
 * libmyos.a by changing its includes. Returns 0 when every step behaved.
 */
#include <myos/console.h>
#include <myos/jamesm.h>

int jamesm_chapter7(void) {
    int bad = 0;
    initialise_paging();

    /* main.c: kmalloc returns u32int; freed blocks are reused. */
    u32int a = kmalloc(8);
    u32int b = kmalloc(8);
    u32int c = kmalloc(8);
    kprintf("jamesm: a: %#x, b: %#x, c: %#x\n", a, b, c);
    kfree((void *)c);
    kfree((void *)b);
    u32int d = kmalloc(12);
    kprintf("jamesm: d: %#x\n", d);
    bad |= !a || !b || !c || !d || mm_errno() != 0;
    kfree((void *)d);
    kfree((void *)a);

    /* kmalloc_a / kmalloc_p / kmalloc_ap. */
    u32int phys = 0;
    u32int pa = kmalloc_a(100);
    u32int pp = kmalloc_p(100, &phys);
    bad |= (pa & 0xFFF) != 0 || !pp || get_physical_address(pp) != phys;
    u32int pap = kmalloc_ap(0x2000, &phys);
    bad |= (pap & 0xFFF) != 0 || (phys & 0xFFF) != 0 ||
           get_physical_address(pap + 0x1000) != phys + 0x1000;
    kfree((void *)pa);
    kfree((void *)pp);
    kfree((void *)pap);

    /* kheap.c: create_heap / alloc / free. */
    heap_t *h = create_heap(JAMESM_CREATE_HEAP_START, JAMESM_CREATE_HEAP_START + 0x10000,
                            JAMESM_CREATE_HEAP_START + 0x100000, 0, 0);
    bad |= h == NULL;
    void *x = alloc(64, 0, h);
    void *y = alloc(64, 1, h);
    bad |= x == NULL || y == NULL || ((u32int)y & 0xFFF) != 0;
    free(x, h);
    free(y, h);
    bad |= mm_errno() != 0 || kheap == NULL;

    /* paging.c: get_page + alloc_frame / free_frame in the current directory. */
    page_t *page = get_page(0x00800000, 1, current_directory);
    bad |= page == NULL;
    alloc_frame(page, 0, 1);
    bad |= !page->present || !page->rw || !page->user;
    *(volatile u32int *)0x00800000 = 0xCAFE;
    bad |= *(volatile u32int *)0x00800000 != 0xCAFE;
    free_frame(page);
    bad |= page->present || mm_errno() != 0;
    switch_page_directory(current_directory);
    bad |= mm_errno() != 0;

    kprintf("jamesm: %s\n", bad ? "FAILED" : "ok");
    return bad;
}
