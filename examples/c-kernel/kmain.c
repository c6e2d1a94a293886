/*
 * kmain.c — a minimal C kernel on libmyos.a: serial console, an IDT with the
 * page-fault vector wired to the library, myos_init from the multiboot
 * information, then the spec's three examples (examples/c), the
 * tutorial-compatibility check (jamesm.c) and a few checks of its own.
 * Prints PASS/FAIL lines on COM1 and exits QEMU through isa-debug-exit
 * (0x10: success, QEMU status 33; 0x11: failure, status 35).
 */
#include <string.h>

#include <myos/boot.h>
#include <myos/console.h>
#include <myos/memory.h>

/* The spec's examples (compiled with -DMYOS_EXAMPLE_NO_MAIN). */
void basic_page_allocation(void);
void heap_memory_usage(void);
void memory_mapping(void);
/* jamesm.c: the tutorial's chapter-7 steps through <myos/jamesm.h>. */
int jamesm_chapter7(void);

/* The linker script's symbols: the kernel image's physical range. */
extern char __kernel_phys_start[], __kernel_phys_end[];

/* ---- port I/O, serial console, QEMU exit ---- */

static inline void outb(uint16_t port, uint8_t v) {
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port) {
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

#define COM1 0x3F8

static void serial_init(void) {
    outb(COM1 + 1, 0x00); /* no interrupts */
    outb(COM1 + 3, 0x80); /* DLAB */
    outb(COM1 + 0, 0x01); /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0xC7); /* FIFO */
}

/* The console callback given to myos_init. */
static void serial_write(const char *s, uint32_t len) {
    for (uint32_t i = 0; i < len; i++) {
        while (!(inb(COM1 + 5) & 0x20))
            ;
        outb(COM1, (uint8_t)s[i]);
    }
}

/* The kernel's own memset: libmyos.a defines the mem/str functions as weak
 * symbols, so this definition wins (the library's Rust code calls it too)
 * and the link has no duplicate. A kernel's own versions must behave as C's
 * do (memset returns dest). */
void *memset(void *dest, int c, size_t n) {
    void *d = dest;
    __asm__ volatile("cld; rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dest;
}

static void puts_serial(const char *s) {
    serial_write(s, (uint32_t)strlen(s));
}

static __attribute__((noreturn)) void qemu_exit(int success) {
    outb(0xF4, success ? 0x10 : 0x11);
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* The panic hook given to myos_init: print, fail. */
static void on_panic(const char *msg, uint32_t len) {
    serial_write(msg, len);
    qemu_exit(0);
}

/* ---- IDT and the page-fault vector ---- */

struct idt_entry {
    uint16_t base_lo;
    uint16_t selector;
    uint8_t zero;
    uint8_t flags;
    uint16_t base_hi;
} __attribute__((packed));

struct idt_ptr {
    uint16_t limit;
    uint32_t base;
} __attribute__((packed));

/* What isr.S pushes: pusha, then vector and error code, then the CPU's frame. */
struct trap {
    uint32_t edi, esi, ebp, esp, ebx, edx, ecx, eax;
    uint32_t vector, error;
    uint32_t eip, cs, eflags;
};

extern uint32_t isr_table[32];
static struct idt_entry idt[256];
static uint32_t page_faults;

static void idt_init(void) {
    for (int i = 0; i < 32; i++) {
        uint32_t a = isr_table[i];
        idt[i] = (struct idt_entry){(uint16_t)a, 0x08, 0, 0x8E, (uint16_t)(a >> 16)};
    }
    struct idt_ptr p = {sizeof(idt) - 1, (uint32_t)idt};
    __asm__ volatile("lidt %0" : : "m"(p));
}

/* Called by isr.S for vectors 0..31. ISR 14 goes to libmyos; a fault it
 * resolves returns and the faulting instruction runs again. */
void isr_dispatch(struct trap *t) {
    if (t->vector == 14) {
        uint32_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        int err = myos_page_fault(cr2, t->error);
        if (err == 0) {
            page_faults++;
            return;
        }
        kprintf("FAIL page fault at %#x (error %#x, eip %#x): %s\n", cr2, t->error, t->eip,
                mm_strerror(err));
        qemu_exit(0);
    }
    kprintf("FAIL exception %u (error %#x) at eip %#x\n", t->vector, t->error, t->eip);
    qemu_exit(0);
}

/* ---- the checks ---- */

static int failures;

/* Prints through serial_write directly: kprintf's console is registered by
 * myos_init, and the first checks run before it. */
static void check(int ok, const char *what) {
    puts_serial(ok ? "PASS " : "FAIL ");
    puts_serial(what);
    puts_serial("\n");
    if (!ok)
        failures++;
}

/* Every bad description is refused with its code, and nothing changes. */
static void bad_boot_descriptions(void) {
    struct myos_mem_region one = {0x100000, 0x1000000, MYOS_MEM_USABLE};
    struct myos_boot b = {MYOS_BOOT_VERSION, &one, 1, 0, (uint32_t)__kernel_phys_start,
                          (uint32_t)__kernel_phys_end, serial_write, on_panic};
    check(myos_init(NULL) == MYOS_BOOT_ENULL, "myos_init(NULL) is MYOS_BOOT_ENULL");
    struct myos_boot v = b;
    v.version = 99;
    check(myos_init(&v) == MYOS_BOOT_EVERSION, "a wrong version is MYOS_BOOT_EVERSION");
    struct myos_boot e = b;
    e.map_len = 0;
    check(myos_init(&e) == MYOS_BOOT_EEMPTY, "an empty map is MYOS_BOOT_EEMPTY");
    struct myos_boot n = b;
    n.map = NULL;
    n.multiboot_info = 0;
    check(myos_init(&n) == MYOS_BOOT_ENOMAP, "no map at all is MYOS_BOOT_ENOMAP");
    struct myos_mem_region two[2] = {{0x100000, 0x1000000, MYOS_MEM_USABLE},
                                     {0x800000, 0x1000000, MYOS_MEM_USABLE}};
    struct myos_boot o = b;
    o.map = two;
    o.map_len = 2;
    check(myos_init(&o) == MYOS_BOOT_EOVERLAP, "overlapping regions are MYOS_BOOT_EOVERLAP");
    struct myos_mem_region odd = {0x100000, 0x1000800, MYOS_MEM_USABLE};
    struct myos_boot u = b;
    u.map = &odd;
    check(myos_init(&u) == MYOS_BOOT_EUNALIGNED, "an unaligned region is MYOS_BOOT_EUNALIGNED");
    struct myos_boot k = b;
    k.kernel_phys_start = 0x2000000;
    k.kernel_phys_end = 0x2100000;
    check(myos_init(&k) == MYOS_BOOT_EKERNEL, "a kernel outside RAM is MYOS_BOOT_EKERNEL");
}

void kmain(uint32_t magic, uint32_t mb_info) {
    serial_init();
    puts_serial("c-kernel: booting on libmyos.a\n");
    if (magic != 0x2BADB002) {
        puts_serial("FAIL not loaded by a multiboot loader\n");
        qemu_exit(0);
    }
    idt_init();

    bad_boot_descriptions();

    struct myos_boot boot = {
        .version = MYOS_BOOT_VERSION,
        .map = NULL, /* read the multiboot memory map */
        .map_len = 0,
        .multiboot_info = mb_info,
        .kernel_phys_start = (uint32_t)__kernel_phys_start,
        .kernel_phys_end = (uint32_t)__kernel_phys_end,
        .console_write = serial_write,
        .panic = on_panic,
    };
    int r = myos_init(&boot);
    if (r != MYOS_BOOT_OK) {
        puts_serial("FAIL myos_init: ");
        puts_serial(myos_boot_strerror(r));
        puts_serial("\n");
        qemu_exit(0);
    }
    kprintf("PASS myos_init: %u frames free, kernel image %#x..%#x\n", myos_frames_free(),
            (uint32_t)__kernel_phys_start, (uint32_t)__kernel_phys_end);
    check(myos_init(&boot) == MYOS_BOOT_EALREADY, "a second myos_init is MYOS_BOOT_EALREADY");
    check(kernel_directory != NULL && current_directory != NULL,
          "kernel_directory and current_directory are set");

    basic_page_allocation();
    check(mm_errno() == 0 && get_physical_address(0x1000) != MM_PHYS_NONE,
          "examples/c/basic_page_allocation.c");
    heap_memory_usage();
    check(mm_errno() == 0, "examples/c/heap_memory_usage.c");
    uint32_t faults = page_faults;
    memory_mapping();
    check(mm_errno() == 0 && page_faults > faults,
          "examples/c/memory_mapping.c (its memset faulted in through ISR 14)");

    /* A fault no region explains is refused, not resolved. */
    check(myos_page_fault(0x50000000, 0x2) == MM_EFAULT, "an unmapped fault is MM_EFAULT");

    /* kmalloc'd memory is usable, freed blocks come back. */
    uint32_t before = get_used_memory();
    char *p = kmalloc(100000);
    check(p != NULL, "kmalloc(100000)");
    memset(p, 0x5A, 100000);
    check(p[99999] == 0x5A, "kmalloc'd memory is writable");
    kfree(p);
    check(mm_errno() == 0 && get_used_memory() == before, "kfree gives the block back");
    kfree(p);
    check(mm_errno() == MM_EINVAL, "a double kfree is refused with MM_EINVAL");

    check(jamesm_chapter7() == 0, "include/myos/jamesm.h: the tutorial's chapter 7 steps");

    if (failures == 0) {
        kprintf("c-kernel: all checks passed (%u page faults serviced)\n", page_faults);
        qemu_exit(1);
    }
    kprintf("c-kernel: %d checks failed\n", failures);
    qemu_exit(0);
}
