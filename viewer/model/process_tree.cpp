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

  absl::flat_hash_map<int32_t, std::vector<size_t>> images;  // pid -> its traces in start order
  for (size_t i : order) images[processes[i]->pid].push_back(i);

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
    const auto& same_pid = images[p.pid];
    const auto pos = std::ranges::find(same_pid, i);
    if (pos != same_pid.begin()) {
      link(i, *(pos - 1), ProcessOrigin::kExec);
      continue;
    }
    auto parent_images = images.find(p.ppid);
    if (p.ppid == p.pid || parent_images == images.end()) continue;
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
