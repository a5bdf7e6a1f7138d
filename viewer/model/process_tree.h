// The process tree of several traces of one run (one trace per process image: the recorder
// writes a new trace after fork and after exec), rebuilt from each trace's ProcessInfo:
// pid/ppid link children to parents (outer_pid/outer_ppid when the recorder saw them, so a
// process in a PID namespace hangs under its real parent), and an image that ended with exec is
// chained to the next image of the same pid in start order.
#pragma once

#include <cstddef>
#include <limits>
#include <vector>

#include "dltrace/reader.h"

namespace dltrace::viewer {

enum class ProcessOrigin {
  kRoot,   // no parent among the traces
  kFork,   // a fork child still running its parent's program (same executable and argv)
  kChild,  // a child that runs its own program (fork+exec, vfork, posix_spawn)
  kExec,   // a later image of the same pid: the previous image called exec (or left no end)
};

struct ProcessNode {
  static constexpr size_t kNone = std::numeric_limits<size_t>::max();
  size_t parent = kNone;  // index into the input
  ProcessOrigin origin = ProcessOrigin::kRoot;
  std::vector<size_t> children;  // in start order
};

struct ProcessTree {
  std::vector<ProcessNode> nodes;  // one per input, same order
  std::vector<size_t> roots;       // in start order
};

// `processes[i]` describes trace i. Never builds a cycle, whatever pids a damaged trace claims.
ProcessTree build_process_tree(const std::vector<const ProcessInfo*>& processes);

}  // namespace dltrace::viewer
