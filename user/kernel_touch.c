/* Only for the test=smep and test=smap boots: puts a tiny function
 * (`mov eax, 42; ret`) in a page of its own, runs it, then asks the kernel
 * (system call 402, enabled by those boots only) to call it from ring 0
 * (test=smep) or to read the page from ring 0 with AC clear (test=smap).
 * Either must end in a kernel oops naming SMEP or SMAP, not a hang. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    uint8_t *code = mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) {
        return 1;
    }
    static const uint8_t ret42[] = {0xB8, 42, 0, 0, 0, 0xC3};
    for (uint32_t i = 0; i < sizeof ret42; i++) {
        code[i] = ret42[i];
    }
    if (((int (*)(void))code)() != 42) {
        return 2;
    }
    put_num("kernel_touch: user code page at ", (uint32_t)code);
    int r = syscall3(402, (uint32_t)code, 0, 0);
    put_num("kernel_touch: the kernel came back with ", (uint32_t)r);
    return r == -38 ? 3 : 4; /* ENOSYS when not enabled */
}
