/* An invalid instruction (#UD): killed by SIGILL. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    __asm__ volatile("ud2");
    return 0;
}
