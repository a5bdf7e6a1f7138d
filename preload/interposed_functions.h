// The functions libdltrace.so exports and the real functions it calls, one row each; the recorded
// dl* calls are the rows of DLTRACE_CALL_KINDS (include/dltrace/calls.h). Everything that used to
// list them again is generated from these tables:
//   * RealFunctions (real_functions.h): one member per real function, typed as libc declares it
//     and found by its name;
//   * the version script: exports.map.in, run through the C preprocessor at build time, exports
//     the recorded calls, the process interposers and dltrace_*, and nothing else.
// The bodies are written by hand: the recorded calls in interposers.cpp, the process functions in
// signal_dispositions.cpp and process_end.cpp. tests/integration/footprint_test.cpp keeps its own
// explicit list on purpose, so that a new export is also a decision made in a test.
//
// Macros only, no #include: exports.map.in includes this file as well.
#pragma once

// Real functions the recorder calls without interposing them: X(name).
#define DLTRACE_HELPER_FUNCTIONS(X) \
  X(dlerror)                        \
  X(dlinfo)

// Process functions interposed to learn how a process ends (signal dispositions, _exit, exec)
// without the program seeing a difference, each with its real function: X(name).
#define DLTRACE_PROCESS_INTERPOSERS(X) \
  X(sigaction)                         \
  X(signal)                            \
  X(sysv_signal)                       \
  X(_exit)                             \
  X(execve)                            \
  X(execv)                             \
  X(execvp)                            \
  X(execvpe)                           \
  X(fexecve)

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
