#include "render/bindings_output.h"

#include <algorithm>

#include "fmt/format.h"
#include "render/json_writer.h"

namespace dltrace::viewer {
namespace {

// ld.so names objects by l_name, the main program by "" (printed as the executable's path).
std::string file_name(const TraceModel& model, uint32_t id) {
  const ObjectRecord* o = model.reader().object(id);
  return o ? std::string(model.path_of(*o)) : fmt::format("#{}", id);
}

int64_t lmid_of(const TraceModel& model, uint32_t id) {
  const ObjectRecord* o = model.reader().object(id);
  return o ? o->lmid : 0;
}

// The copy a binding to `to` of `symbol` is not, when `to` holds one of two copies of it.
const ApiCopy* copy_of(const std::vector<ApiCopy>& copies, uint32_t to, const std::string& symbol,
                       uint32_t* other) {
  for (const ApiCopy& c : copies) {
    if (to != c.first && to != c.second) continue;
    if (std::find(c.symbols.begin(), c.symbols.end(), symbol) == c.symbols.end()) continue;
    *other = to == c.first ? c.second : c.first;
    return &c;
  }
  return nullptr;
}

// How many of `bindings` go to each copy of `c`.
std::pair<size_t, size_t> split_counts(const ApiCopy& c, const std::vector<ApiCopy>& copies,
                                       const std::vector<SymbolBinding>& bindings) {
  size_t first = 0, second = 0;
  for (const SymbolBinding& b : bindings) {
    uint32_t other = format::kNoId;
    if (copy_of(copies, b.to, b.symbol, &other) != &c) continue;
    (b.to == c.first ? first : second)++;
  }
  return {first, second};
}

const char* relocation_name(uint8_t relocations) {
  if (relocations & ElfSymbol::kRelocCopy) return "copy";
  if (relocations == ElfSymbol::kRelocJumpSlot) return "jump-slot";
  return "data";
}

}  // namespace

void write_bindings_text(const TraceModel& model, const std::vector<SymbolBinding>& bindings,
                         const std::vector<ApiCopy>& copies, std::FILE* out) {
  for (const SymbolBinding& b : bindings) {
    if (b.to == format::kNoId) continue;
    fmt::print(out, "binding file {} [{}] to {} [{}]: {} symbol `{}'{}\n", file_name(model, b.from),
               lmid_of(model, b.from), file_name(model, b.to), lmid_of(model, b.to),
               b.protected_symbol ? "protected" : "normal", b.symbol,
               b.to_version.empty() ? "" : fmt::format(" [{}]", b.to_version));
  }
  for (const SymbolBinding& b : bindings) {
    if (b.to != format::kNoId) continue;
    fmt::print(out, "unresolved in {} [{}]: symbol `{}'{} ({})\n", file_name(model, b.from),
               lmid_of(model, b.from), b.symbol,
               b.version.empty() ? "" : fmt::format(" [{}]", b.version),
               b.weak ? "weak: binds to 0"
               : b.relocations == ElfSymbol::kRelocJumpSlot
                   ? "a function: under RTLD_LAZY it fails at the first call"
                   : "undefined symbol: the load fails");
  }
  for (const ApiCopy& c : copies) {
    const auto [first, second] = split_counts(c, copies, bindings);
    if (first + second == 0) continue;
    fmt::print(out,
               "two copies: {} has its own copy of {} definitions that {} already has; of the "
               "references above, {} bind to {}'s copy and {} to {}'s (dltrace explain says "
               "why this splits state, and the fix)\n",
               file_name(model, c.second), c.symbols.size(), file_name(model, c.first), first,
               file_name(model, c.first), second, file_name(model, c.second));
  }
}

absl::Status write_bindings_json(const TraceModel& model,
                                 const std::vector<SymbolBinding>& bindings,
                                 const std::vector<ApiCopy>& copies, std::FILE* out) {
  JsonWriter w(out);
  w.begin_object();
  w.key("format").value("dltrace-bindings");
  w.key("version").value(1);
  w.key("bindings").begin_array();
  for (const SymbolBinding& b : bindings) {
    w.begin_object();
    w.key("from").value(file_name(model, b.from));
    w.key("from_id").value(b.from);
    w.key("namespace").value(lmid_of(model, b.from));
    w.key("symbol").value(b.symbol);
    w.key("version").value(b.version);
    w.key("relocation").value(relocation_name(b.relocations));
    w.key("weak").value(b.weak);
    w.key("protected").value(b.protected_symbol);
    if (b.to == format::kNoId) {
      w.key("to").null();
      w.key("to_id").null();
    } else {
      w.key("to").value(file_name(model, b.to));
      w.key("to_id").value(b.to);
    }
    w.key("to_version").value(b.to_version);
    uint32_t other = format::kNoId;
    if (copy_of(copies, b.to, b.symbol, &other) != nullptr)
      w.key("other_copy").value(file_name(model, other));
    else
      w.key("other_copy").null();
    w.end_object();
  }
  w.end_array();
  w.key("copies").begin_array();
  for (const ApiCopy& c : copies) {
    const auto [first, second] = split_counts(c, copies, bindings);
    if (first + second == 0) continue;
    w.begin_object();
    w.key("first").value(file_name(model, c.first));
    w.key("second").value(file_name(model, c.second));
    w.key("symbols").value(c.symbols.size());
    w.key("bound_to_first").value(first);
    w.key("bound_to_second").value(second);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  w.end_line();
  return w.finish();
}

}  // namespace dltrace::viewer
