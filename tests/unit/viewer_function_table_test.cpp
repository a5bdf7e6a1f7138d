// FunctionTable (the symbolizer's address -> function lookup) against what it replaces,
// elfutils' dwfl_module_addrinfo: the same symbol and offset at every address of a fixture
// library built to hold the hard cases, and around every symbol of libc.
#include <elfutils/libdwfl.h>
#include <link.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "analysis/symbolizer.h"

namespace {

struct LoadedObject {
  std::string path;
  uint64_t base = 0;
};

// The path and load base of the shared object containing `address`.
LoadedObject object_containing(const void* address) {
  struct Search {
    uintptr_t address;
    LoadedObject found;
  } search{reinterpret_cast<uintptr_t>(address), {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
          if (ph.p_type == PT_LOAD && s->address >= start && s->address < start + ph.p_memsz) {
            s->found = {info->dlpi_name, info->dlpi_addr};
            return 1;
          }
        }
        return 0;
      },
      &search);
  return search.found;
}

// A module opened as the symbolizer opens one: offline, at a load base like a traced process's.
class OfflineModule {
 public:
  OfflineModule(const std::string& path, uint64_t base) {
    dwfl_ = dltrace::viewer::begin_offline_session();
    REQUIRE(dwfl_ != nullptr);
    dwfl_report_begin(dwfl_);
    mod_ = dwfl_report_elf(dwfl_, path.c_str(), path.c_str(), -1, base, true);
    dwfl_report_end(dwfl_, nullptr, nullptr);
    INFO(path);
    REQUIRE(mod_ != nullptr);
  }
  ~OfflineModule() { dwfl_end(dwfl_); }
  OfflineModule(const OfflineModule&) = delete;
  OfflineModule& operator=(const OfflineModule&) = delete;
  Dwfl_Module* get() const { return mod_; }

 private:
  Dwfl* dwfl_ = nullptr;
  Dwfl_Module* mod_ = nullptr;
};

// Compares the table with dwfl_module_addrinfo at each address; returns how many differ
// (the first few are printed).
size_t count_differences(Dwfl_Module* mod, const dltrace::viewer::FunctionTable& table,
                         const std::vector<uint64_t>& addresses) {
  size_t differ = 0;
  for (const uint64_t addr : addresses) {
    GElf_Off offset = 0;
    GElf_Sym sym;
    const char* want = dwfl_module_addrinfo(mod, addr, &offset, &sym, nullptr, nullptr, nullptr);
    const auto got = table.find(addr);
    const bool same = want == nullptr ? got.name == nullptr
                                      : got.name != nullptr && std::string(got.name) == want &&
                                            got.offset == offset;
    if (!same && differ++ < 10)
      UNSCOPED_INFO("at 0x" << std::hex << addr << ": dwfl_module_addrinfo "
                            << (want ? want : "(none)") << "+0x" << offset << ", table "
                            << (got.name ? got.name : "(none)") << "+0x" << got.offset);
  }
  return differ;
}

struct SymbolSpan {
  uint64_t value = 0, size = 0;
};

// The module's named symbols (any type), by address.
std::vector<SymbolSpan> symbols_of(Dwfl_Module* mod) {
  std::vector<SymbolSpan> out;
  const int n = dwfl_module_getsymtab(mod);
  for (int i = 1; i < n; ++i) {
    GElf_Sym sym;
    GElf_Addr value = 0;
    if (const char* name = dwfl_module_getsym_info(mod, i, &sym, &value, nullptr, nullptr, nullptr);
        name && *name)
      out.push_back({value, sym.st_size});
  }
  std::sort(out.begin(), out.end(),
            [](const SymbolSpan& a, const SymbolSpan& b) { return a.value < b.value; });
  return out;
}

}  // namespace

TEST_CASE("function table matches dwfl_module_addrinfo at every address of a library",
          "[viewer][symbolizer]") {
  // Aliases of each binding, nested and same-start symbols, labels without a size inside and
  // outside .text, a global label on a local function, an absolute symbol, data objects.
  const std::string path = std::string(DLTRACE_TEST_FIXTURES_DIR) + "/libsym_cases.so";
  const uint64_t base = 0x7f1234560000;
  OfflineModule mod(path, base);
  const dltrace::viewer::FunctionTable table(mod.get());

  // Every address from below the first symbol to past the end of the library's data.
  const auto symbols = symbols_of(mod.get());
  REQUIRE(symbols.size() > 20);
  uint64_t end = 0;
  for (const auto& s : symbols) end = std::max(end, s.value + s.size);
  std::vector<uint64_t> addresses;
  for (uint64_t a = base; a < end + 64; ++a) addresses.push_back(a);
  for (uint64_t a : {uint64_t(0), uint64_t(0x40), base - 1, ~uint64_t(0)}) addresses.push_back(a);
  CHECK(count_differences(mod.get(), table, addresses) == 0);

  // Spot checks of what the rules give (the comparison above is the real test).
  const auto name_at = [&](uint64_t vaddr) {
    const auto m = table.find(base + vaddr);
    return m.name ? std::string(m.name) + "+" + std::to_string(m.offset) : std::string("-");
  };
  CHECK(name_at(0x1104) == "sym_inner+0");           // the nested function, not its outer one
  CHECK(name_at(0x1106) == "sym_outer+6");           // past the inner one, and the weak alias
  CHECK(name_at(0x1109) == "sym_label_local+1");     // a local label when no global matches
  CHECK(name_at(0x110d) == "sym_label_on_local+0");  // a global label at the address wins...
  CHECK(name_at(0x110e) == "sym_local_sized+1");     // ...but past it the sized local does
  CHECK(name_at(0x1115) == "sym_same_b+0");          // same start and binding: the smaller
}

TEST_CASE("function table matches dwfl_module_addrinfo over libc's first functions",
          "[viewer][symbolizer]") {
  // libc with its full symbol table when libc6-dbg is installed (its .dynsym otherwise):
  // thousands of symbols, aliases everywhere (memcpy / __memcpy...), IFUNCs, local labels.
  const LoadedObject libc = object_containing(reinterpret_cast<const void*>(&std::fputs));
  REQUIRE(!libc.path.empty());
  OfflineModule mod(libc.path, libc.base);
  const dltrace::viewer::FunctionTable table(mod.get());
  const auto symbols = symbols_of(mod.get());
  REQUIRE(symbols.size() > 1000);

  std::vector<uint64_t> addresses;
  // Every address of the first 4 KB from the first symbol with a size...
  auto first = std::find_if(symbols.begin(), symbols.end(), [&](const SymbolSpan& s) {
    return s.size != 0 && s.value >= libc.base;
  });
  REQUIRE(first != symbols.end());
  for (uint64_t a = first->value - 16; a < first->value + 4096; ++a) addresses.push_back(a);
  // ...and around the start and end of every label without a size, every alias (symbols of
  // one start) and one in 16 of the others (each dwfl_module_addrinfo call scans all of them).
  for (size_t i = 0; i < symbols.size(); ++i) {
    const SymbolSpan& s = symbols[i];
    const bool alias = (i > 0 && symbols[i - 1].value == s.value) ||
                       (i + 1 < symbols.size() && symbols[i + 1].value == s.value);
    if (s.size != 0 && !alias && i % 16 != 0) continue;
    for (const uint64_t a : {s.value - 1, s.value, s.value + 1, s.value + s.size - 1,
                             s.value + s.size, s.value + s.size + 1})
      addresses.push_back(a);
  }
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  INFO(libc.path << ": " << symbols.size() << " symbols, " << addresses.size() << " addresses");
  CHECK(count_differences(mod.get(), table, addresses) == 0);
}
