// Which process the recorder is in. A trace belongs to one process: a fork child must not write
// into its parent's file. atfork handlers cover fork(); a raw clone or fork syscall runs none, and
// a vfork child shares its parent's memory. The hot path tells them apart with one load (a word
// the kernel wipes in every child) and no getpid().
#include <sys/mman.h>
#include <unistd.h>

#include "event_clock.h"
#include "fork_gate.h"
#include "object_table.h"
#include "recorder_internal.h"
#include "thread_state.h"

namespace dltrace::preload::recorder {

// A word in a private page that every fork-like child (fork, a raw clone or fork syscall) gets
// zeroed (MADV_WIPEONFORK): the hot path tells a new process from one load, without getpid(),
// also where no atfork handler ran. 1 = this process's recorder state is its own.
namespace {
constinit uint32_t g_same_process_fallback = 1;  // kernels without MADV_WIPEONFORK (< 4.14)
}
// Initialised (not zero): the pointer lies in data ld.so has already written (relocated), so that
// checking it at start-up faults in no page of its own.
constinit uint32_t* g_same_process = &g_same_process_fallback;

void mark_same_process() {
  if (g_same_process == &g_same_process_fallback) {
    void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED && madvise(page, 4096, MADV_WIPEONFORK) == 0)
      g_same_process = static_cast<uint32_t*>(page);
    else if (page != MAP_FAILED)
      munmap(page, 4096);  // (tried again in a fork child: never where the kernel has it)
  }
  __atomic_store_n(g_same_process, 1u, __ATOMIC_RELAXED);
}

// The child of fork(): a trace of its own, with the same settings, and the objects it inherited.
void after_fork_child() {
  t_state.tid = 0;
  mark_same_process();
  if (g_state.load(std::memory_order_relaxed) != kActive) return;
  g_writer.abandon_after_fork();
  g_pid = getpid();
  char error[512];
  if (!g_writer.open(g_pattern, g_buffer_size, g_stack_depth.load(std::memory_order_relaxed), error,
                     sizeof(error))) {
    g_state.store(kOff, std::memory_order_release);
    fail(error);
    return;
  }
  if (g_config_path) g_writer.set_config_path(g_config_path);
  start_clock(g_writer.header());
  write_process_info();
  write_outer_pids();
  if (fork_gate::cautious())
    __atomic_fetch_or(&g_writer.header()->recorder_flags, format::kRecorderForkChildCautious,
                      __ATOMIC_RELAXED);
  objects::rewrite_after_fork();
}

// A child made by a raw clone or fork syscall: no atfork handler ran, and nothing is known of the
// locks its parent's threads held. It switches to a trace of its own, cautiously.
__attribute__((noinline)) void after_unannounced_fork() {
  if (getpid() == g_pid) {  // not a new process after all (the page could not be wiped)
    mark_same_process();
    return;
  }
  fork_gate::after_unannounced_fork();
  after_fork_child();
}

bool owns_trace() {
  if (g_state.load(std::memory_order_acquire) != kActive) return false;
  if (!same_process()) after_unannounced_fork();
  return g_state.load(std::memory_order_acquire) == kActive && getpid() == g_pid;
}

}  // namespace dltrace::preload::recorder
