// `dltrace bindings` output: each reference as LD_DEBUG=bindings prints it (text), or the
// "dltrace-bindings" JSON document.
#pragma once

#include <cstdio>
#include <vector>

#include "absl/status/status.h"
#include "analysis/symbol_bindings.h"
#include "analysis/symbol_copies.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

// "binding file A [0] to B [0]: normal symbol `S' [VER]", then the references that bind
// nowhere ("unresolved ... (weak: binds to 0)" / "(lazy: fails at the first call)"), then, for
// each two copies of one API that explain reports (`copies`, ApiCopy::reported()), how the
// references listed split between them.
void write_bindings_text(const TraceModel& model, const std::vector<SymbolBinding>& bindings,
                         const std::vector<ApiCopy>& copies, std::FILE* out);
// The same as the "dltrace-bindings" document: each binding to one of two copies also names the
// other (`other_copy`), and `copies` counts the split.
absl::Status write_bindings_json(const TraceModel& model,
                                 const std::vector<SymbolBinding>& bindings,
                                 const std::vector<ApiCopy>& copies, std::FILE* out);

}  // namespace dltrace::viewer
