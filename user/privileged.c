/* A privileged instruction in ring 3 (#GP): killed by SIGSEGV. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    __asm__ volatile("hlt");
    return 0;
}
