#include "symbol_name_cache.h"

#include <string.h>

#include "dltrace/format.h"
#include "trace_writer.h"

namespace dltrace::preload {
namespace {

// Small: this library's static TLS is paid again by its copy in every dlmopen namespace.
constexpr unsigned kEntries = 4;

struct Entry {
  const char* key;   // the program's pointer
  const char* text;  // the catalog's copy of the string it pointed to
  uint32_t id;
  uint32_t epoch;  // writer epoch `text` belongs to
};

struct SymbolNameCache {
  Entry entries[kEntries];
  uint32_t next;  // entry to replace next
};

constinit thread_local SymbolNameCache t_names{};

}  // namespace

uint32_t intern_symbol_name(TraceWriter& writer, const char* name) {
  if (name == nullptr) return format::kNoId;
  SymbolNameCache& c = t_names;
  const uint32_t epoch = writer.epoch();
  // The pointer alone proves nothing (buffers are reused): the text is compared too, and only
  // within the same file, whose catalog `text` points into.
  for (const Entry& e : c.entries)
    if (e.key == name && e.epoch == epoch && strcmp(e.text, name) == 0) return e.id;
  const char* text = nullptr;
  const uint32_t id = writer.intern_string(name, strlen(name), &text);
  if (id != format::kNoId && text != nullptr) {
    c.entries[c.next] = {name, text, id, epoch};
    c.next = (c.next + 1) % kEntries;
  }
  return id;
}

}  // namespace dltrace::preload
