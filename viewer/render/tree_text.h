// `dltrace tree`'s text: the load tree of one trace (model/load_graph.h), like libtree but of the
// run that happened, and the process tree of several traces with each process's load tree under
// it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "dltrace/reader.h"
#include "model/load_graph.h"
#include "model/process_tree.h"

namespace dltrace::viewer {

struct LoadTreeTextOptions {
  bool all = false;  // show system libraries, the recorder and a fork child's inherited objects
  int depth = -1;    // levels below the roots to show; -1 = no limit
  bool color = false;
  // The trace of a fork child, whose objects loaded before the fork (load_seq 0) are its
  // parent's: they are folded like system libraries.
  bool fork_child = false;
  // Objects that duplicate another (object id -> the one it duplicates: a second copy of an
  // API, one library loaded twice): shown and labelled even when they are system libraries.
  absl::flat_hash_map<uint32_t, uint32_t> duplicates;
};

// One line per node of the load tree (a dim second line names the caller of a dlopen), then
// how many nodes were folded and what the reader could not recover.
std::string load_tree_text(const LoadGraph& graph, const LoadTreeTextOptions& options);

// One line per process of `tree` (processes[i] and trace_paths[i] describe trace i), each with
// the text `load_tree(i)` returns indented under it. The load trees are asked for one at a time,
// in the order they are printed, so that only one trace's model need be held at a time.
std::string process_tree_text(const ProcessTree& tree,
                              const std::vector<const ProcessInfo*>& processes,
                              const std::vector<std::string>& trace_paths, bool color,
                              const std::function<std::string(size_t trace)>& load_tree);

}  // namespace dltrace::viewer
