// What ld.so's library search depends on that differs between CPUs: the default directories,
// what $LIB and $PLATFORM expand to, which /etc/ld.so.cache entries fit the process, and where
// the dynamic loader lives. Data keyed by ELF machine, so the viewer can reason about a trace
// recorded on another CPU; the CPU-specific *code* (hwcaps detection) is under common/arch/.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dltrace::common {

struct LoaderPlatform {
  uint16_t machine;                 // ELF e_machine (EM_X86_64, EM_AARCH64)
  const char* name;                 // "x86-64"
  const char* lib;                  // $LIB: Debian's multiarch directory, "lib/x86_64-linux-gnu"
  const char* platform;             // $PLATFORM when AT_PLATFORM is unknown
  const char* const* default_dirs;  // the trusted directories, searched last (no NODEFLIB)
  size_t default_dir_count;
  int32_t cache_flags;      // ld.so.cache entry flags of this ABI (FLAG_ELF_LIBC6 | machine)
  const char* interpreter;  // PT_INTERP of this ABI's programs
};

// The platform of an ELF machine, or nullptr when dltrace does not know it.
const LoaderPlatform* loader_platform(uint16_t machine);

// The platform whose dynamic loader has this file name (the last component of `interpreter`:
// "ld-linux-aarch64.so.1"), or nullptr.
const LoaderPlatform* loader_platform_of_loader(const char* file_name);

// The platform this code was compiled for (the recorder's process, the viewer's machine).
const LoaderPlatform& host_loader_platform();

}  // namespace dltrace::common
