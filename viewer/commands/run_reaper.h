// `dltrace run` as a child subreaper: the ends it observes (wait statuses of its child and of the
// orphaned descendants reparented to it) and how it writes them into the traces the recorder
// left without an end (SIGKILL, ld.so's own fatal _exit(127), a raw exit_group).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace dltrace::viewer {

// One process `dltrace run` reaped.
struct ObservedEnd {
  pid_t pid = 0;
  int wait_status = 0;
  uint64_t monotonic_ns = 0;  // CLOCK_MONOTONIC when it was reaped
};

// Makes the calling process a child subreaper (PR_SET_CHILD_SUBREAPER): orphaned descendants are
// reparented to it instead of to init. False if the kernel refused.
bool become_subreaper();

// Waits for `child`, reaping any other child (orphans reparented to us) that ends meanwhile into
// `others`. Retries on EINTR; false (errno set) if `child` cannot be waited for.
bool wait_for_child(pid_t child, int* wait_status, std::vector<ObservedEnd>* others);

// After the main child ended: reaps the children that have already ended and those that end
// within `grace`, then returns, never waiting for longer-lived ones (daemons stay running and
// are reparented to init when we exit).
std::vector<ObservedEnd> reap_orphans(std::chrono::milliseconds grace);

// CLOCK_MONOTONIC now, in ns: the clock of the traces' start and end times.
uint64_t monotonic_now_ns();

// Writes each end into the most recent trace (by start time) among `traces` of that pid (the
// header's outer_pid when the recorder saw it, else its pid), if that trace has no recorded end:
// end_code, end_monotonic_ns, end_via = kEndViaObserved, then end_kind last (readers take it as
// the commit). A trace that recorded its own end is left alone. Returns the traces written.
std::vector<std::string> record_observed_ends(const std::vector<std::string>& traces,
                                              const std::vector<ObservedEnd>& ends);

}  // namespace dltrace::viewer
