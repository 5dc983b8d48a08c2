/* Compiled by the test into preload.so. Named by LD_PRELOAD in .s2i/environment: every process that
   gets the build's variables says which uid it runs as. A root process (bwrap, setpriv) must never. */
#include <stdio.h>
#include <unistd.h>

__attribute__((constructor)) static void said(void) {
    fprintf(stderr, "SHIPYARD-PRELOAD uid=%u euid=%u\n", (unsigned)getuid(), (unsigned)geteuid());
}
