// The subdirectories ld.so tries in front of each directory of a search path (glibc 2.36,
// elf/dl-hwcaps.c): glibc-hwcaps/<level> for each ISA level the CPU supports, best first; then
// the legacy HWCAP subdirectories, every combination of the legacy names ("tls/haswell/x86_64",
// ...) in glibc's order; then the directory itself. The list `ld.so --help` prints, computed
// for the running CPU without running ld.so (the recorder cannot start a process).
#pragma once

#include <cstddef>

namespace dltrace::common {

struct HwcapsSubdirs {
  static constexpr size_t kMax = 40;
  const char* names[kMax] =
      {};  // relative subdirectories; the last one is "" (the directory itself)
  size_t count = 0;
  // $PLATFORM as ld.so expands it: glibc's own platform name for the CPU ("haswell") when it
  // has one, else nullptr (then AT_PLATFORM, e.g. "x86_64").
  const char* platform = nullptr;
  char storage[1536] = {};  // the combined legacy names point here
};

// Fills *out for this CPU. Allocates nothing; call once and keep the result.
void compute_hwcaps_subdirs(HwcapsSubdirs* out);

// Implemented per CPU in common/arch/<cpu>/hwcaps.cpp.
namespace arch {
// glibc-hwcaps subdirectory names the CPU supports, best first ("x86-64-v4", ...).
size_t glibc_hwcaps_levels(const char** out, size_t cap);
// Legacy HWCAP names after "tls", in the order glibc nests them ("haswell", "avx512_1", ...);
// *platform: glibc's platform name for the CPU, nullptr when it has none.
size_t legacy_hwcaps_names(const char** out, size_t cap, const char** platform);
}  // namespace arch

}  // namespace dltrace::common
