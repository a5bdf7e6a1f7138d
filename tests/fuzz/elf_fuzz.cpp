// libFuzzer target: any bytes as the file a trace's object path names. The viewer reads such
// files to explain (ELF reading: dynamic section, versions, symbols, build-id), to say what a file
// is that is not a library (file kinds) and to symbolize stacks (elfutils). None of them may
// crash, hang or read out of bounds, whatever the file holds.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "analysis/elf_file.h"
#include "analysis/file_kind.h"
#include "analysis/symbolizer.h"
#include "dltrace/reader.h"

namespace {

volatile uint64_t g_sink;
std::string g_path;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char templ[] = "/tmp/dltrace-elf-fuzz.XXXXXX";
  if (!mkdtemp(templ)) std::abort();
  g_path = std::string(templ) + "/f.so";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dltrace::viewer;
  const int fd = open(g_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  if (write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  close(fd);

  if (auto elf = read_elf_file(g_path); elf.ok()) {
    const ElfFile& f = **elf;
    g_sink = g_sink + f.needed.size() + f.dynamic_symbols.size() + f.static_symbols.size() +
             f.version_definitions.size() + f.version_needs.size() + f.build_id.size();
    for (const auto& s : f.dynamic_symbols) {
      if (const ElfSymbol* e = f.exported(s.name, s.version)) g_sink = g_sink + e->value;
      g_sink = g_sink + f.dynamic_entries(s.name).size();
    }
  }
  const FileKind kind = classify_file(g_path, 62);
  g_sink = g_sink + kind.what.size() + kind.target.size();

  dltrace::ObjectRecord object;
  object.id = 1;
  object.path = g_path;
  object.base = 0x7f0000000000;
  object.map_start = object.base;
  object.map_end = object.base + 0x100000;
  Symbolizer symbolizer;
  for (uint64_t offset : {0x0ull, 0x40ull, 0x1000ull, 0x1234ull, 0x10000ull})
    g_sink = g_sink + symbolizer.lookup(object, object.base + offset).function.size();
  ElfCache cache;
  g_sink = g_sink + static_cast<int>(cache.for_object(object, g_path).check);
  return 0;
}
