// The recorded calls, one row each: X(enumerator, name, value). Everything that lists them is
// generated from this table: format::CallKind, kCallKindCount and call_name() (format.h), the
// viewer's names and per-call columns, and in the recorder the interposed dl* functions, their
// real-function lookup and their exports (preload/interposed_functions.h). `value` is
// EventSlot::call in the trace file: never renumber a row; a new call takes the next value.
//
// Macros only, no #include: the recorder's version script is made from this file by the C
// preprocessor (preload/exports.map.in).
#pragma once

#define DLTRACE_CALL_KINDS(X) \
  X(kDlopen, dlopen, 1)       \
  X(kDlmopen, dlmopen, 2)     \
  X(kDlsym, dlsym, 3)         \
  X(kDlvsym, dlvsym, 4)       \
  X(kDlclose, dlclose, 5)
