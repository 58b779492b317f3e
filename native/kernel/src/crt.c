/* crt.c - the kernel CRT routines a driver imports that glibc would get wrong (native/kernel/README.md,
 * "Compiling a driver for the harness"). C (gnu11) with -fshort-wchar, like the driver.
 *
 * wcslen: the driver's wchar_t is 16-bit; glibc's wcslen counts 32-bit units and would read past a 16-bit
 * string's terminator. Hidden visibility keeps every call in the image bound to this definition, never to
 * glibc's exported one. */
#include <fltKernel.h>

__attribute__((visibility("hidden"))) size_t wcslen(const wchar_t* s) {
  /* volatile: an optimiser that recognises the idiom (LLVM does for strlen-like loops) must not turn the
   * loop back into a call to wcslen, which is this function. */
  const volatile wchar_t* p = s;
  size_t n = 0;
  while (p[n] != 0) {
    ++n;
  }
  return n;
}
