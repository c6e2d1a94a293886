/* Only for the test=kstack-overflow boot: asks the kernel to recurse on this
 * process's kernel stack (system call 401, enabled by that boot only); the
 * guard page below the stack must turn it into a reported double fault. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    return syscall3(401, 0, 0, 0) == -38 ? 1 : 2; /* ENOSYS when not enabled */
}
