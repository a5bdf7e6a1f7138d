// The process tree of several traces (model/process_tree): pid/ppid, fork, exec, start order.
// How `dltrace tree T1 T2 ... | DIR` prints it: viewer_tree_processes_test.cpp.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "model/process_tree.h"

using namespace dltrace;
using viewer::ProcessNode;
using viewer::ProcessOrigin;

namespace {

ProcessInfo process(int32_t pid, int32_t ppid, uint64_t start, std::string exe,
                    std::vector<std::string> argv) {
  ProcessInfo p;
  p.pid = pid;
  p.ppid = ppid;
  p.start_monotonic_ns = start;
  p.exe = std::move(exe);
  p.argv = std::move(argv);
  return p;
}

viewer::ProcessTree tree_of(const std::vector<ProcessInfo>& processes) {
  std::vector<const ProcessInfo*> ptrs;
  for (const auto& p : processes) ptrs.push_back(&p);
  return viewer::build_process_tree(ptrs);
}

}  // namespace

TEST_CASE("process tree: pid/ppid, fork, child, exec, start order", "[viewer][process]") {
  const std::vector<std::string> app = {"python3", "mp.py"};
  std::vector<ProcessInfo> ps = {
      process(100, 1, 1000, "/usr/bin/python3.11", app),                       // 0 root
      process(101, 100, 2000, "/usr/bin/python3.11", app),                     // 1 fork
      process(102, 100, 3000, "/usr/bin/python3.11", {"python3", "-c", "x"}),  // 2 child
      process(103, 100, 4000, "/usr/bin/true", {"true"}),                      // 3 exec of 4
      process(103, 100, 3500, "/usr/bin/python3.11", app),                     // 4 fork
      process(200, 999, 500, "/bin/sh", {"sh"}),                               // 5 root
  };
  const viewer::ProcessTree t = tree_of(ps);
  CHECK(t.roots == std::vector<size_t>{5, 0});
  CHECK(t.nodes[0].children == std::vector<size_t>{1, 2, 4});
  CHECK(t.nodes[1].origin == ProcessOrigin::kFork);
  CHECK(t.nodes[2].origin == ProcessOrigin::kChild);
  CHECK(t.nodes[4].origin == ProcessOrigin::kFork);
  CHECK(t.nodes[4].children == std::vector<size_t>{3});
  CHECK(t.nodes[3].origin == ProcessOrigin::kExec);
  CHECK(t.nodes[3].parent == 4);
  CHECK(t.nodes[5].parent == ProcessNode::kNone);
}

TEST_CASE("process tree: a child of an exec'ed process hangs under the image that ran it",
          "[viewer][process]") {
  std::vector<ProcessInfo> ps = {
      process(10, 1, 100, "/bin/sh", {"sh", "run.sh"}),    // 0
      process(10, 1, 200, "/usr/bin/python3.11", {"py"}),  // 1: sh exec'ed python
      process(11, 10, 150, "/usr/bin/env", {"env"}),       // 2: started by sh
      process(12, 10, 250, "/usr/bin/ls", {"ls"}),         // 3: started by python
  };
  const viewer::ProcessTree t = tree_of(ps);
  CHECK(t.roots == std::vector<size_t>{0});
  CHECK(t.nodes[0].children == std::vector<size_t>{2, 1});
  CHECK(t.nodes[1].children == std::vector<size_t>{3});
}

TEST_CASE("process tree: pids that claim each other as parents make no cycle",
          "[viewer][process]") {
  std::vector<ProcessInfo> ps = {
      process(300, 301, 10, "/a", {"a"}), process(301, 300, 20, "/b", {"b"}),
      process(302, 302, 30, "/c", {"c"}),  // its own parent
  };
  const viewer::ProcessTree t = tree_of(ps);
  // Every process is reachable from a root exactly once.
  std::vector<int> seen(ps.size(), 0);
  std::vector<size_t> todo = t.roots;
  while (!todo.empty()) {
    const size_t i = todo.back();
    todo.pop_back();
    REQUIRE(i < ps.size());
    REQUIRE(++seen[i] == 1);
    for (size_t c : t.nodes[i].children) todo.push_back(c);
  }
  CHECK(std::ranges::all_of(seen, [](int n) { return n == 1; }));
  CHECK(t.roots.size() == 2);
}

TEST_CASE("process tree: an exec'ed image follows the image that exec'ed, a reused pid does not",
          "[viewer][process]") {
  std::vector<ProcessInfo> ps = {
      process(10, 1, 100, "/usr/bin/dash", {"sh", "-c", "exec ls"}),  // 0: exec'ed ls
      process(10, 1, 200, "/usr/bin/ls", {"ls"}),                     // 1: ls, exit 0
      process(10, 1, 300, "/usr/bin/cat", {"cat"}),                   // 2: the pid reused
      process(20, 1, 400, "/usr/bin/a", {"a"}),                       // 3: no recorded end
      process(20, 1, 500, "/usr/bin/b", {"b"}),                       // 4: taken for its exec
  };
  ps[0].end = format::EndKind::kExec;
  ps[0].exec_target = "/usr/bin/ls";
  ps[1].end = format::EndKind::kExit;
  ps[2].end = format::EndKind::kExit;
  const viewer::ProcessTree t = tree_of(ps);
  CHECK(t.nodes[1].parent == 0);
  CHECK(t.nodes[1].origin == ProcessOrigin::kExec);
  CHECK(t.nodes[2].parent == ProcessNode::kNone);
  CHECK(t.nodes[2].origin == ProcessOrigin::kRoot);
  CHECK(t.nodes[4].parent == 3);
  CHECK(t.nodes[4].origin == ProcessOrigin::kExec);
  CHECK(t.roots == std::vector<size_t>{0, 2, 3});
}

TEST_CASE("process tree: a process in a PID namespace hangs under its real parent by outer pid",
          "[viewer][process]") {
  const std::vector<std::string> chrome = {"chrome"};
  std::vector<ProcessInfo> ps = {
      process(4000, 3000, 100, "/opt/chrome/chrome", chrome),                 // 0 browser
      process(1, 0, 200, "/opt/chrome/chrome", {"chrome", "--type=zygote"}),  // 1 zygote
      process(2, 1, 300, "/opt/chrome/chrome", {"chrome", "--type=zygote"}),  // 2 its fork
      process(1, 0, 50, "/sbin/init", {"init"}),                              // 3 real pid 1
  };
  ps[0].outer_pid = 4000, ps[0].outer_ppid = 3000;
  ps[1].outer_pid = 4010, ps[1].outer_ppid = 4000;
  ps[2].outer_pid = 4011, ps[2].outer_ppid = 4010;
  ps[3].outer_pid = 1, ps[3].outer_ppid = 0;
  const viewer::ProcessTree t = tree_of(ps);
  CHECK(t.nodes[1].parent == 0);
  CHECK(t.nodes[1].origin == ProcessOrigin::kChild);
  CHECK(t.nodes[2].parent == 1);
  CHECK(t.nodes[2].origin == ProcessOrigin::kFork);
  CHECK(t.nodes[3].parent == ProcessNode::kNone);
  CHECK(t.roots == std::vector<size_t>{3, 0});
}
