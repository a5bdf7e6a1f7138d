// Interning names that come again and again with a memo keyed by their pointer in front of the
// writer's intern table: the symbol names of dlsym/dlvsym (programs pass the same strings, mostly
// literals, again and again), the paths a program dlopens, and the paths and sonames of the
// objects it loads (a library loaded and unloaded in a loop gets its link_map's name and its
// mapping back at the same addresses). A pointer compare plus a compare with the catalog's copy
// costs a fraction of hashing and probing the table.
#pragma once

#include <cstdint>

namespace dltrace::preload {

class TraceWriter;

// The string id of `name` (format::kNoId if the catalog is full), as writer.intern_string(name);
// `stored`, if given, receives the catalog's copy (as TraceWriter::intern_string's).
uint32_t intern_name(TraceWriter& writer, const char* name, const char** stored = nullptr);

}  // namespace dltrace::preload
