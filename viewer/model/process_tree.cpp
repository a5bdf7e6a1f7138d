#include "model/process_tree.h"

#include <algorithm>
#include <numeric>

#include "absl/container/flat_hash_map.h"

namespace dltrace::viewer {

ProcessTree build_process_tree(const std::vector<const ProcessInfo*>& processes) {
  const size_t n = processes.size();
  ProcessTree tree;
  tree.nodes.resize(n);
  // Start order (CLOCK_MONOTONIC is system-wide, so start times compare across processes).
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::ranges::stable_sort(order, {}, [&](size_t i) { return processes[i]->start_monotonic_ns; });

  // A process is known by the pid seen from outside any PID namespace when the recorder saw it
  // (a sandboxed zygote is pid 1 with ppid 0 inside its namespace), else by its own pid.
  auto pid_of = [&](size_t i) {
    const ProcessInfo& p = *processes[i];
    return p.outer_pid != 0 ? p.outer_pid : p.pid;
  };
  auto ppid_of = [&](size_t i) {
    const ProcessInfo& p = *processes[i];
    return p.outer_pid != 0 ? p.outer_ppid : p.ppid;
  };
  absl::flat_hash_map<int32_t, std::vector<size_t>> images;  // pid -> its traces in start order
  for (size_t i : order) images[pid_of(i)].push_back(i);

  auto creates_cycle = [&](size_t child, size_t parent) {
    for (size_t p = parent, steps = 0; p != ProcessNode::kNone; p = tree.nodes[p].parent) {
      if (p == child || ++steps > n) return true;
    }
    return false;
  };
  auto link = [&](size_t child, size_t parent, ProcessOrigin origin) {
    if (creates_cycle(child, parent)) return;
    tree.nodes[child].parent = parent;
    tree.nodes[child].origin = origin;
  };

  for (size_t i : order) {
    const ProcessInfo& p = *processes[i];
    const int32_t pid = pid_of(i), ppid = ppid_of(i);
    const auto& same_pid = images[pid];
    const auto pos = std::ranges::find(same_pid, i);
    // The previous image of this pid exec'ed this one, unless it recorded another end (exit,
    // signal): then the pid was reused by an unrelated process. Without an end (older
    // recorders, or an exec nobody saw) the next image of the pid is taken for its exec.
    if (pos != same_pid.begin()) {
      const ProcessInfo& previous = *processes[*(pos - 1)];
      if (previous.end == format::EndKind::kExec || previous.end == format::EndKind::kRunning) {
        link(i, *(pos - 1), ProcessOrigin::kExec);
        continue;
      }
    }
    auto parent_images = images.find(ppid);
    if (ppid == 0 || ppid == pid || parent_images == images.end()) continue;
    // The parent's image that was running when this process started: the last one that
    // started before it (or its first, when clocks disagree).
    size_t parent = parent_images->second.front();
    for (size_t candidate : parent_images->second) {
      if (processes[candidate]->start_monotonic_ns <= p.start_monotonic_ns) parent = candidate;
    }
    const ProcessInfo& pp = *processes[parent];
    const bool fork = pp.exe == p.exe && pp.argv == p.argv;
    link(i, parent, fork ? ProcessOrigin::kFork : ProcessOrigin::kChild);
  }
  for (size_t i : order) {
    const size_t parent = tree.nodes[i].parent;
    (parent == ProcessNode::kNone ? tree.roots : tree.nodes[parent].children).push_back(i);
  }
  return tree;
}

}  // namespace dltrace::viewer
