// The fork gate: fork() never happens while a recorder thread holds a lock that the child would
// inherit locked.
//
// glibc resets only dl_load_lock in a fork child. dl_iterate_phdr's dl_load_write_lock stays held
// in the child if some thread held it at the moment of fork, and the child's next dl_iterate_phdr
// hangs forever. The recorder calls it often (object-table syncs). So everything the recorder does
// with it runs inside a Section, and a pthread_atfork prepare handler waits until no thread is
// inside one (new Sections wait for the fork to finish).
//
// Entering a Section costs a thread-local store and a load (no atomic read-modify-write): the
// forking thread makes every other thread's stores visible with membarrier(2) before it looks
// (an asymmetric fence; with a plain fence where membarrier is missing).
//
// Program threads can hold dl_load_write_lock at fork as well (inside their own dlopen/dlclose).
// A child of a threaded parent is therefore "cautious" (see cautious()): it avoids the calls that
// take that lock until a load of its own has shown the lock free.
#pragma once

#include <link.h>

#include <cstdint>

namespace dltrace::preload::fork_gate {

// Registers the atfork handlers and membarrier once. `child` runs in the fork child after the gate
// was reset (the recorder's switch to a new trace file).
void install(void (*child)());

// Inside a Section, fork waits (bounded) until the Section ends. Sections nest.
class Section {
 public:
  Section();
  ~Section();
  Section(const Section&) = delete;
  Section& operator=(const Section&) = delete;

 private:
  uint32_t* depth_;
};

// dl_iterate_phdr inside a Section: every walk of the loader's list the recorder makes goes
// through here.
int iterate_phdr(int (*callback)(dl_phdr_info*, size_t, void*), void* data);

// Whether this thread is inside a Section now: a signal handler that interrupted the recorder
// (a program's handler calling _exit or exec) must not take the locks that Section may hold.
bool in_section();

// True in a fork child of a process that had more than one thread, until proven_safe(): the
// recorder then makes no object-table sync (native stacks take no lock: stack_capture.h).
bool cautious();
// A load completed in this process after fork: the loader's write lock is free.
void proven_safe();
void enter_cautious();
// In a child made without fork() (a raw clone or fork syscall: no atfork handlers ran): resets
// the gate as the atfork child handler would, and makes the child cautious.
void after_unannounced_fork();

}  // namespace dltrace::preload::fork_gate
