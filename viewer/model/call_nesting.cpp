#include "model/call_nesting.h"

namespace dltrace::viewer {

int CallNesting::depth_of(const format::EventSlot& e) {
  auto& st = open_[e.tid];
  while (!st.empty() && st.back().first != e.parent_seq) st.pop_back();
  int depth = 0;
  // A parent that is not on the stack (its event lost, or the stack cleared below): depth 1.
  if (e.parent_seq != 0) depth = st.empty() ? 1 : st.back().second + 1;
  if (st.size() > 64) st.clear();  // a damaged trace must not grow this without bound
  st.emplace_back(e.seq, depth);
  return depth;
}

}  // namespace dltrace::viewer
