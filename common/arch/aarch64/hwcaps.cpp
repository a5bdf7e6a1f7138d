// AArch64's hwcaps as glibc 2.36 decides them: no glibc-hwcaps subdirectories (sysdeps/aarch64
// defines none), and the legacy names are the platform (AT_PLATFORM, "aarch64"; glibc has no
// platform names of its own there) and "atomics" when the CPU has LSE atomics (HWCAP_IMPORTANT is
// HWCAP_ATOMICS in sysdeps/unix/sysv/linux/aarch64/dl-procinfo.h). As `ld.so --help` prints them.
#include "common/hwcaps.h"

#include <sys/auxv.h>

#include <cerrno>

namespace dltrace::common::arch {

size_t glibc_hwcaps_levels(const char**, size_t) {
  return 0;
}

size_t legacy_hwcaps_names(const char** out, size_t cap, const char** platform_out) {
  constexpr unsigned long kHwcapAtomics = 1ul << 8;  // HWCAP_ATOMICS (asm/hwcap.h)
  const int saved = errno;                           // getauxval: ENOENT for a missing entry
  const auto* at_platform = reinterpret_cast<const char*>(getauxval(AT_PLATFORM));
  const unsigned long hwcap = getauxval(AT_HWCAP);
  errno = saved;
  *platform_out = nullptr;  // $PLATFORM is AT_PLATFORM
  size_t n = 0;
  if (at_platform != nullptr && at_platform[0] != '\0' && n < cap) out[n++] = at_platform;
  if ((hwcap & kHwcapAtomics) != 0 && n < cap) out[n++] = "atomics";
  return n;
}

}  // namespace dltrace::common::arch
