#include "analysis/symbolizer.h"

#include <cxxabi.h>
#include <elfutils/libdwfl.h>

#include <cstdlib>
#include <utility>

#include <fmt/format.h>

namespace dltrace::viewer {
namespace {

// Offline session: the files on disk, debug info via .gnu_debuglink / build-id directories.
char* g_debuginfo_path = nullptr;
const Dwfl_Callbacks kCallbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &g_debuginfo_path,
};

std::string demangle(const char* raw) {
  if (raw == nullptr) return {};
  // Dynamic symbols carry their version ("__libc_start_main@@GLIBC_2.34"): drop it.
  const std::string versioned(raw);
  const std::string plain = versioned.substr(0, versioned.find('@'));
  const char* name = plain.c_str();
  if (name[0] == '_' && name[1] == 'Z') {
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (status == 0 && out != nullptr) {
      std::string s(out);
      std::free(out);
      return s;
    }
  }
  return name;
}

std::string to_hex(const unsigned char* bytes, int n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) {
    s += kDigits[bytes[i] >> 4];
    s += kDigits[bytes[i] & 15];
  }
  return s;
}

}  // namespace

struct Symbolizer::Module {
  Dwfl* dwfl = nullptr;
  Dwfl_Module* mod = nullptr;
  std::string problem;
  ~Module() {
    if (dwfl) dwfl_end(dwfl);
  }
};

Symbolizer::Symbolizer(std::string main_program) : main_program_(std::move(main_program)) {}
Symbolizer::~Symbolizer() = default;

Symbolizer::Module& Symbolizer::module_for(const ObjectRecord& object) {
  auto [it, inserted] = modules_.try_emplace(object.id);
  if (!inserted) return *it->second;
  it->second = std::make_unique<Module>();
  Module& m = *it->second;
  if (object.flags & format::kObjectVdso) {
    m.problem = "the vDSO has no file on disk";
    return m;
  }
  const std::string& path = object.path.empty() ? main_program_ : object.path;
  if (path.empty() || path[0] != '/') {
    m.problem = "no absolute path recorded";
    return m;
  }
  m.dwfl = dwfl_begin(&kCallbacks);
  if (m.dwfl == nullptr) {
    m.problem = dwfl_errmsg(-1);
    return m;
  }
  dwfl_report_begin(m.dwfl);
  // base = l_addr with add_p_vaddr: the module's addresses are its file vaddrs + l_addr, as in
  // the traced process.
  m.mod = dwfl_report_elf(m.dwfl, path.c_str(), path.c_str(), -1, object.base, true);
  dwfl_report_end(m.dwfl, nullptr, nullptr);
  if (m.mod == nullptr) {
    m.problem = fmt::format("cannot read {}: {}", path, dwfl_errmsg(-1));
    return m;
  }
  if (!object.build_id.empty()) {
    const unsigned char* bits = nullptr;
    GElf_Addr vaddr = 0;
    const int n = dwfl_module_build_id(m.mod, &bits, &vaddr);
    if (n > 0 && to_hex(bits, n) != object.build_id) {
      m.problem = fmt::format("{} changed since the trace was recorded (build-id {}, recorded {})", path, to_hex(bits, n), object.build_id);
      m.mod = nullptr;
    }
  }
  return m;
}

const SymbolInfo& Symbolizer::lookup(const ObjectRecord& object, uint64_t ip,
                                     bool return_address) {
  const uint64_t addr = (return_address && ip > 0) ? ip - 1 : ip;
  auto [it, inserted] = cache_.try_emplace(std::pair{object.id, addr});
  if (!inserted) return it->second;
  SymbolInfo& info = it->second;
  Module& m = module_for(object);
  if (m.mod == nullptr) return info;
  GElf_Off offset = 0;
  GElf_Sym sym;
  if (const char* name = dwfl_module_addrinfo(m.mod, addr, &offset, &sym, nullptr, nullptr,
                                              nullptr)) {
    info.function = demangle(name);
    // Report the offset of the return address itself, as backtraces conventionally do.
    info.function_offset = offset + (addr != ip ? 1 : 0);
  }
  if (Dwfl_Line* line = dwfl_module_getsrc(m.mod, addr)) {
    int lineno = 0;
    if (const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr)) {
      info.file = file;
      info.line = lineno;
    }
  }
  return info;
}

std::string Symbolizer::problem(uint32_t object_id) const {
  auto it = modules_.find(object_id);
  return it == modules_.end() ? std::string() : it->second->problem;
}

}  // namespace dltrace::viewer
