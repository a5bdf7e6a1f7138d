#include "common/loader_platform.h"

#include <elf.h>

#include <cstring>

namespace dltrace::common {
namespace {

// glibc's ld.so.cache flags (elf/cache.h): FLAG_ELF_LIBC6 plus the ABI's own bits.
constexpr int32_t kFlagElfLibc6 = 0x0003;
constexpr int32_t kFlagX8664Lib64 = 0x0300;
constexpr int32_t kFlagAarch64Lib64 = 0x0a00;

// Debian's glibc is built with slibdir=/lib/<triplet>: these, then the historic /lib and
// /usr/lib, are `system search path` in LD_DEBUG=libs (checked by a test on x86-64).
constexpr const char* kX8664Dirs[] = {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib",
                                      "/usr/lib"};
constexpr const char* kAarch64Dirs[] = {"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                                        "/lib", "/usr/lib"};

constexpr LoaderPlatform kPlatforms[] = {
    {EM_X86_64, "x86-64", "lib/x86_64-linux-gnu", "x86_64", kX8664Dirs, 4,
     kFlagElfLibc6 | kFlagX8664Lib64, "/lib64/ld-linux-x86-64.so.2"},
    {EM_AARCH64, "aarch64", "lib/aarch64-linux-gnu", "aarch64", kAarch64Dirs, 4,
     kFlagElfLibc6 | kFlagAarch64Lib64, "/lib/ld-linux-aarch64.so.1"},
};

}  // namespace

const LoaderPlatform* loader_platform(uint16_t machine) {
  for (const LoaderPlatform& p : kPlatforms)
    if (p.machine == machine) return &p;
  return nullptr;
}

const LoaderPlatform* loader_platform_of_loader(const char* file_name) {
  for (const LoaderPlatform& p : kPlatforms) {
    const char* slash = strrchr(p.interpreter, '/');
    if (strcmp(slash != nullptr ? slash + 1 : p.interpreter, file_name) == 0) return &p;
  }
  return nullptr;
}

const LoaderPlatform& host_loader_platform() {
#if defined(__x86_64__)
  return kPlatforms[0];
#elif defined(__aarch64__)
  return kPlatforms[1];
#else
#error "dltrace: add this CPU to kPlatforms (common/loader_platform.cpp) and common/arch/"
#endif
}

}  // namespace dltrace::common
