// The functions libdltrace.so exports and the real functions it calls, one row each. Everything
// that used to list them again is generated from these tables:
//   * RealFunctions (real_functions.h): one member per row with a type, found by its name;
//   * the version script: exports.map.in, run through the C preprocessor at build time, exports
//     every interposer row and dltrace_*, and nothing else;
//   * interposers.cpp checks at compile time that DLTRACE_RECORDED_CALLS names the rows of
//     format::CallKind (include/dltrace/format.h), in order.
// The bodies are written by hand: dl* in interposers.cpp, the process functions in
// signal_dispositions.cpp and process_end.cpp. tests/integration/footprint_test.cpp keeps its own
// explicit list on purpose, so that a new export is also a decision made in a test.
//
// Macros only, no #include: exports.map.in includes this file as well.
#pragma once

// The recorded dl* calls, one per format::CallKind row and in the same order:
// X(name, type of the real function).
#define DLTRACE_RECORDED_CALLS(X)                       \
  X(dlopen, void* (*)(const char*, int))                \
  X(dlmopen, void* (*)(Lmid_t, const char*, int))       \
  X(dlsym, void* (*)(void*, const char*))               \
  X(dlvsym, void* (*)(void*, const char*, const char*)) \
  X(dlclose, int (*)(void*))

// Real functions the recorder calls without interposing them: X(name, type).
#define DLTRACE_HELPER_FUNCTIONS(X) \
  X(dlerror, char* (*)())           \
  X(dlinfo, int (*)(void*, int, void*))

// Process functions interposed to learn how a process ends (signal dispositions, _exit, exec)
// without the program seeing a difference: X(name, type of the real function).
#define DLTRACE_PROCESS_INTERPOSERS(X)                                   \
  X(sigaction, int (*)(int, const struct sigaction*, struct sigaction*)) \
  X(signal, SigHandler (*)(int, SigHandler))                             \
  X(sysv_signal, SigHandler (*)(int, SigHandler))                        \
  X(_exit, void (*)(int))                                                \
  X(execve, int (*)(const char*, char* const*, char* const*))            \
  X(execv, int (*)(const char*, char* const*))                           \
  X(execvp, int (*)(const char*, char* const*))                          \
  X(execvpe, int (*)(const char*, char* const*, char* const*))           \
  X(fexecve, int (*)(int, char* const*, char* const*))

// Exported interposers with no real function of their own: each forwards to one above, as
// glibc's own do (bsd_signal is signal, _Exit is _exit, execl builds execv's vector): X(name).
#define DLTRACE_FORWARDING_INTERPOSERS(X) \
  X(bsd_signal)                           \
  X(__sysv_signal)                        \
  X(_Exit)                                \
  X(execl)                                \
  X(execlp)                               \
  X(execle)

// How every exported definition starts (the library is built with hidden visibility).
#define DLTRACE_EXPORT extern "C" __attribute__((visibility("default")))
