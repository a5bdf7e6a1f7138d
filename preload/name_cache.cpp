#include "name_cache.h"

#include <string.h>

#include "arch/arch.h"
#include "dltrace/format.h"
#include "trace_writer.h"

namespace dltrace::preload {
namespace {

// Process-wide, two ways per set chosen by the program's pointer: a loader resolving hundreds or
// thousands of entry points passes as many distinct literals, more than any per-thread memo small
// enough for static TLS (each dlmopen namespace pays this library's TLS again) could hold.
// 128 KiB of .bss, touched only where names land.
constexpr unsigned kSets = 4096;

// Written by any thread, read by all without a lock: an entry may be read torn (key of one
// writer, ref of another) or stale (an earlier file's). Neither is trusted: the ref must name a
// committed string of the file open now (TraceWriter::string_at) whose text is the name's text
// now, and then its id is the right one for that text whatever pointer led to it. (Every ref of
// the file open now was stored here, for a string interned with strlen: a catalog text without a
// NUL of its own, so strcmp is an exact compare.)
struct Entry {
  const char* key;  // the program's pointer
  uint64_t ref;     // TraceWriter::string_ref of the catalog's copy
};
struct Set {
  Entry way[2];  // way[0] the newer
};
DLTRACE_LARGE_BSS constinit Set g_names[kSets];

// Neighbouring pointers go to neighbouring sets: two names in the same 4 KiB never share a set
// (the linker merges "puts" into the tail of "fputs", one byte apart), and a loop over the
// literals a loader packs into .rodata, or over strings allocated one after another, touches a
// few pages of the table rather than one per name. Each 4 KiB window starts at a hashed offset.
// Against a hash of the whole pointer: 23 instructions less per lookup over 2,000 names (fewer
// sets holding three), and 0 to 9 ns less per lookup over 50 or 2,000 names in dl_bench.
unsigned set_of(const char* name) {
  const auto p = reinterpret_cast<uint64_t>(name);
  return unsigned(p + ((p >> 12) * 0x9E3779B97F4A7C15ull >> 52)) & (kSets - 1);
}

const char* hit(TraceWriter& writer, const Entry& e, const char* name, uint32_t* id) {
  if (__atomic_load_n(&e.key, __ATOMIC_RELAXED) != name) return nullptr;
  const char* text = writer.string_at(__atomic_load_n(&e.ref, __ATOMIC_RELAXED), id);
  return text != nullptr && strcmp(name, text) == 0 ? text : nullptr;
}

void store(Entry& e, const char* key, uint64_t ref) {
  __atomic_store_n(&e.key, key, __ATOMIC_RELAXED);
  __atomic_store_n(&e.ref, ref, __ATOMIC_RELAXED);
}

}  // namespace

uint32_t intern_name(TraceWriter& writer, const char* name, const char** stored) {
  if (name == nullptr) return format::kNoId;
  Set& set = g_names[set_of(name)];
  uint32_t id;
  const char* text = hit(writer, set.way[0], name, &id);
  if (text == nullptr) text = hit(writer, set.way[1], name, &id);
  if (text != nullptr) {
    if (stored) *stored = text;
    return id;
  }
  id = writer.intern_string(name, strlen(name), &text);
  if (stored) *stored = text;
  if (id != format::kNoId && text != nullptr) {
    store(set.way[1], __atomic_load_n(&set.way[0].key, __ATOMIC_RELAXED),
          __atomic_load_n(&set.way[0].ref, __ATOMIC_RELAXED));
    store(set.way[0], name, writer.string_ref(text));
  }
  return id;
}

}  // namespace dltrace::preload
