// Interning the symbol names of dlsym/dlvsym with a memo keyed by the program's pointer in front
// of the writer's intern table: programs pass the same strings (mostly literals) again and again,
// and a pointer compare plus a compare with the catalog's copy costs a fraction of hashing and
// probing the table.
#pragma once

#include <cstdint>

namespace dltrace::preload {

class TraceWriter;

// The string id of `name` (format::kNoId if the catalog is full), as writer.intern_string(name).
uint32_t intern_symbol_name(TraceWriter& writer, const char* name);

}  // namespace dltrace::preload
