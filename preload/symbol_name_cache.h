// Interning the symbol names of dlsym/dlvsym with a per-thread memo in front of the writer's
// intern table: a dlsym loop passes the same few strings again and again, and a pointer compare
// plus strcmp against the catalog's copy costs a fraction of hashing and probing the table.
#pragma once

#include <cstdint>

namespace dltrace::preload {

class TraceWriter;

// The string id of `name` (format::kNoId if the catalog is full), as writer.intern_string(name).
uint32_t intern_symbol_name(TraceWriter& writer, const char* name);

}  // namespace dltrace::preload
