// Fatal-signal recording behind the program's own view of its signal dispositions (see
// signal_dispositions.h), and the exported sigaction/signal family that keeps that view.
#include "signal_dispositions.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "arch/arch.h"
#include "interposed_functions.h"
#include "real_functions.h"

namespace dltrace::preload::signals {
namespace {

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
constexpr int kMaxSignal = 65;

constinit FatalRecorder g_record = nullptr;
// Signals whose SIG_DFL the stand-in may replace.
constinit bool g_tracked[kMaxSignal] = {};
// While the stand-in is installed: what the program set (SIG_DFL with its own mask and flags),
// which sigaction reports back as the old action.
DLTRACE_LARGE_BSS constinit struct sigaction g_program_view[kMaxSignal] = {};
constinit int g_locks[kMaxSignal] = {};

void on_fatal_signal(int sig, siginfo_t* info, void*);

bool is_stand_in(const struct sigaction& a) {
  return (a.sa_flags & SA_SIGINFO) != 0 && a.sa_sigaction == on_fatal_signal;
}

bool is_default(const struct sigaction& a) {
  return a.sa_handler == SIG_DFL;
}

struct sigaction stand_in() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  // Reset on delivery: the default action follows, under the true SIG_DFL.
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
  return sa;
}

void on_fatal_signal(int sig, siginfo_t* info, void*) {
  const int saved_errno = errno;
  if (g_record != nullptr) g_record(sig);
  // A hardware fault re-executes the faulting instruction on return, under SIG_DFL now; anything
  // sent (kill, raise, abort) is sent again.
  const bool fault = (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE) &&
                     info != nullptr && info->si_code > 0;
  if (!fault) raise(sig);
  errno = saved_errno;
}

// Every signal blocked on this thread while dispositions change, so that a handler on this
// thread cannot re-enter (one mask for any number of changes: two syscalls).
class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t saved_;
};

// The disposition of one tracked signal changes under its lock, taken with signals blocked
// (SignalsBlocked).
class DispositionLock {
 public:
  explicit DispositionLock(int sig) : lock_(&g_locks[sig]) {
    while (__atomic_exchange_n(lock_, 1, __ATOMIC_ACQUIRE) != 0) {
    }
  }
  ~DispositionLock() { __atomic_store_n(lock_, 0, __ATOMIC_RELEASE); }
  DispositionLock(const DispositionLock&) = delete;
  DispositionLock& operator=(const DispositionLock&) = delete;

 private:
  int* lock_;
};

bool tracked(int sig) {
  return sig > 0 && sig < kMaxSignal && g_tracked[sig];
}

// sigaction as the program sees it for a tracked signal.
int tracked_sigaction(int sig, const struct sigaction* act, struct sigaction* oact) {
  const auto real = real_functions().sigaction;
  SignalsBlocked blocked;
  DispositionLock lock(sig);
  struct sigaction current;
  const int r = real(sig, act, &current);
  if (r != 0) return r;
  const struct sigaction previous_view = g_program_view[sig];
  if (act != nullptr && is_default(*act)) {
    // The program's SIG_DFL went in first, so the kernel's copy (glibc adds SA_RESTORER and its
    // restorer) is what a later query reports; then the stand-in takes its place.
    real(sig, nullptr, &g_program_view[sig]);
    const struct sigaction sa = stand_in();
    real(sig, &sa, nullptr);
  }
  if (oact != nullptr) *oact = is_stand_in(current) ? previous_view : current;
  return 0;
}

// signal(), bsd_signal(), sysv_signal(): the real function sets the disposition with its own
// flags; the stand-in goes back in where it set SIG_DFL, and reports as SIG_DFL where it stood.
SigHandler tracked_signal(SigHandler (*real)(int, SigHandler), int sig, SigHandler handler) {
  const auto real_sigaction = real_functions().sigaction;
  SignalsBlocked blocked;
  DispositionLock lock(sig);
  SigHandler old = real(sig, handler);
  if (old == SIG_ERR) return old;
  if (reinterpret_cast<void*>(old) == reinterpret_cast<void*>(on_fatal_signal)) old = SIG_DFL;
  if (handler == SIG_DFL) {
    struct sigaction set;
    if (real_sigaction(sig, nullptr, &set) == 0) {
      g_program_view[sig] = set;
      const struct sigaction sa = stand_in();
      real_sigaction(sig, &sa, nullptr);
    }
  }
  return old;
}

}  // namespace

void install_fatal_handlers(FatalRecorder record) {
  const auto real = real_functions().sigaction;
  if (real == nullptr) return;
  g_record = record;
  const int saved_errno = errno;
  SignalsBlocked blocked;  // once for all five: 12 syscalls, not 20
  for (int sig : kFatalSignals) {
    DispositionLock lock(sig);
    struct sigaction old;
    // Only where the disposition is the default: a handler or SIG_IGN set before us (inherited
    // SIG_IGN, a constructor's handler) stays exactly as it is.
    if (real(sig, nullptr, &old) != 0 || !is_default(old)) continue;
    g_program_view[sig] = old;
    const struct sigaction sa = stand_in();
    if (real(sig, &sa, nullptr) == 0) g_tracked[sig] = true;
  }
  errno = saved_errno;
}

}  // namespace dltrace::preload::signals

using namespace dltrace::preload;

DLTRACE_EXPORT int sigaction(int sig, const struct sigaction* act,
                             struct sigaction* oact) noexcept {
  if (!signals::tracked(sig)) return real_functions().sigaction(sig, act, oact);
  return signals::tracked_sigaction(sig, act, oact);
}

DLTRACE_EXPORT SigHandler signal(int sig, SigHandler handler) noexcept {
  if (!signals::tracked(sig)) return real_functions().signal(sig, handler);
  return signals::tracked_signal(real_functions().signal, sig, handler);
}

// glibc's signal() and bsd_signal() are one function; sysv_signal() and __sysv_signal() another.
DLTRACE_EXPORT SigHandler bsd_signal(int sig, SigHandler handler) noexcept {
  return signal(sig, handler);
}

DLTRACE_EXPORT SigHandler sysv_signal(int sig, SigHandler handler) noexcept {
  if (!signals::tracked(sig)) return real_functions().sysv_signal(sig, handler);
  return signals::tracked_signal(real_functions().sysv_signal, sig, handler);
}

DLTRACE_EXPORT SigHandler __sysv_signal(int sig, SigHandler handler) noexcept {
  return sysv_signal(sig, handler);
}
