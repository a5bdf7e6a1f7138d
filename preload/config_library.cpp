// libdltrace_config.so: the override config's parser (common/config.cpp with toml++ and a
// statically linked, hidden C++ runtime), loaded by the recorder only when DLTRACE_CONFIG is set.
// It parses once and hands the rules over as one block of plain data (config_block.h), so that
// nothing of it is used after the recorder unloads it.
#include <cxxabi.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/config_error.h"
#include "config_block.h"

namespace __gnu_cxx {
void __freeres() noexcept;  // libstdc++'s, for tools like valgrind; not in its headers
}  // namespace __gnu_cxx

namespace dltrace::preload {
namespace {

namespace cb = config_block;

cb::Header* to_block(const config::Config& cfg) {
  size_t size = sizeof(cb::Header) + cfg.rules.size() * sizeof(cb::Rule);
  for (const config::Rule& r : cfg.rules)
    size += r.match.pattern().size() + 1 + (r.has_caller ? r.caller.pattern().size() + 1 : 0);
  // Patterns are bounded by kMaxFileBytes: every offset fits in 32 bits.
  auto* block = static_cast<cb::Header*>(malloc(size));
  if (block == nullptr) return nullptr;
  block->version = cb::kVersion;
  block->rule_count = static_cast<uint32_t>(cfg.rules.size());
  block->size = size;
  auto* out = reinterpret_cast<cb::Rule*>(block + 1);
  char* base = reinterpret_cast<char*>(block);
  size_t text = sizeof(cb::Header) + cfg.rules.size() * sizeof(cb::Rule);
  const auto put = [&](const std::string& s, uint32_t* offset, uint32_t* length) {
    *offset = static_cast<uint32_t>(text);
    *length = static_cast<uint32_t>(s.size());
    memcpy(base + text, s.data(), s.size());
    base[text + s.size()] = '\0';
    text += s.size() + 1;
  };
  for (const config::Rule& r : cfg.rules) {
    cb::Rule rule{};
    rule.line = r.line;
    rule.col = r.col;
    rule.set = r.set;
    rule.add = r.add;
    rule.remove = r.remove;
    rule.has_set = r.has_set;
    rule.add_local = r.add_local;
    rule.remove_local = r.remove_local;
    rule.has_caller = r.has_caller;
    put(r.match.pattern(), &rule.match_offset, &rule.match_size);
    if (r.has_caller) put(r.caller.pattern(), &rule.caller_offset, &rule.caller_size);
    *out++ = rule;
  }
  return block;
}

// libstdc++'s emergency exception pool (eh_alloc.cc) is malloc'ed when this library is loaded and
// never freed: given back when the recorder unloads the library, so that the parse leaves nothing
// in the program's heap but the block the recorder keeps.
__attribute__((destructor)) void free_runtime_pools() {
  __gnu_cxx::__freeres();
}

}  // namespace
}  // namespace dltrace::preload

extern "C" __attribute__((visibility("default"))) dltrace::config_block::Header*
dltrace_config_load_v1(const char* path, char* error, size_t error_size) noexcept {
  using namespace dltrace;
  static_assert(sizeof(config_block::kLoadSymbol) == sizeof("dltrace_config_load_v1"));
  if (error_size != 0) error[0] = '\0';
  // libstdc++'s thread-local exception globals (16 bytes) are allocated by ld.so when first used
  // in a dlopen'ed library, and ld.so aborts the process if that allocation fails ("cannot
  // allocate memory for thread-local data"). The first use would be the std::bad_alloc a parse
  // under a memory limit throws: use them now, before the parse takes the memory.
  abi::__cxa_eh_globals* volatile globals = abi::__cxa_get_globals();  // declared const: kept
  (void)globals;
  config::Config cfg;
  config::Error why;
  config_block::Header* block = nullptr;
  if (config::load_file(path, &cfg, &why)) {
    block = preload::to_block(cfg);
    if (block == nullptr)
      config::format_error_line_to(error, error_size, path, 0, 0, "out of memory");
  } else {
    config::format_error_to(error, error_size, path, why);
  }
  return block;
}
