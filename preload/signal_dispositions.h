// The recorder learns about fatal signals without the program seeing it do so.
//
// A handler on SIGSEGV/SIGBUS/SIGABRT/SIGILL/SIGFPE records the signal in the trace and lets the
// default action happen. It stands in for SIG_DFL only: where the program (or its runtime: the
// JVM, Go, CPython's faulthandler) installs a handler, that handler is installed as it is; where
// it asks for SIG_DFL, ours goes back in. The interposed sigaction/signal/bsd_signal/sysv_signal
// report SIG_DFL (with the flags and mask the program last gave) wherever ours stands in, so a
// runtime that saves the previous handler to chain to it finds SIG_DFL, exactly as untraced.
#pragma once

namespace dltrace::preload::signals {

// Called from the signal handler (async-signal-safe code only) before the default action.
using FatalRecorder = void (*)(int sig);

// Installs the stand-in handler on every fatal signal whose disposition is SIG_DFL now.
void install_fatal_handlers(FatalRecorder record);

}  // namespace dltrace::preload::signals
