/* bochscpu-python's wheel was linked against glibc 2.38, whose headers map
 * strtoull and sscanf to their C23 entry points. Older C libraries (Debian
 * 12 has 2.36) lack those names; these forward them to the classic ones,
 * which behave the same for the wheel's uses (no "0b" prefixes). Loaded
 * before the wheel by tests/emu/run_emulated.py. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

unsigned long long __isoc23_strtoull(const char* s, char** end, int base) { return strtoull(s, end, base); }

int __isoc23_sscanf(const char* s, const char* format, ...) {
  va_list args;
  va_start(args, format);
  int n = vsscanf(s, format, args);
  va_end(args);
  return n;
}
