#include "render/visible_text.h"

namespace dltrace::viewer {

void append_visible(std::string& out, std::string_view text) {
  visible::escape(text.data(), text.size(),
                  [&out](const char* piece, size_t size, bool) { out.append(piece, size); });
}

std::string visible(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  append_visible(out, text);
  return out;
}

}  // namespace dltrace::viewer
