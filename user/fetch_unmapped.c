/* A jump to an unmapped user address: killed by SIGSEGV. The kernel's test
 * then checks the page-fault error code: the I/D (fetch) bit is there
 * exactly when the CPU runs with SMEP (classic paging reports it only then). */
#include "lib/myos.h"
MYOS_START

int main(void) {
    void (*wild)(void) = (void (*)(void))0x20000000u;
    wild();
    return 0; /* not reached */
}
