// The one escaping of text output (common/visible_text.h, viewer/render/visible_text.h): what a
// terminal would act on is shown as text, unambiguously; everything else is left as it is.
#include <catch2/catch.hpp>
#include <string>

#include "common/visible_text.h"
#include "render/terminal_style.h"
#include "render/visible_text.h"

using namespace dltrace;

TEST_CASE("visible text escapes what a terminal acts on, and nothing else",
          "[viewer][hostile][escape]") {
  using viewer::visible;
  CHECK(visible("/usr/lib/libfoo.so.1") == "/usr/lib/libfoo.so.1");
  CHECK(visible("caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x98\x80") ==
        "caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x98\x80");
  CHECK(visible("a\x1b[2Jb") == "a\\x1b[2Jb");
  CHECK(visible("\x07\r\n\t\x7f") == "\\x07\\x0d\\x0a\\x09\\x7f");
  CHECK(visible("back\\slash") == "back\\\\slash");  // so "\x1b" typed as text stays distinct
  CHECK(visible("\\x1b") != visible("\x1b"));
  CHECK(visible("bad\xff\xfe") == "bad\\xff\\xfe");
  CHECK(visible("\xc0\xaf") == "\\xc0\\xaf");           // overlong '/'
  CHECK(visible("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // a UTF-16 surrogate
  CHECK(visible("cut\xe2\x80") == "cut\\xe2\\x80");     // a sequence cut short
  CHECK(visible("\xc2\x9b"
                "31m") == "\\u009b31m");                    // C1 CSI
  CHECK(visible("abc\xe2\x80\xaexyz") == "abc\\u202exyz");  // right-to-left override

  // The recorder's fixed-buffer form cuts before an escape that does not fit, and never inside
  // a UTF-8 sequence.
  char buf[8];
  CHECK(visible::escape_to("ab\x1b"
                           "cdef",
                           6, buf, sizeof buf) == 7);
  CHECK(std::string(buf) == "ab\\x1bc");
  CHECK(visible::escape_to("abcdef\x1b", 7, buf, sizeof buf) == 6);
  CHECK(std::string(buf) == "abcdef");
  CHECK(visible::escape_to("abcde\xc3\xa9", 7, buf, sizeof buf) == 7);
  CHECK(visible::escape_to("abcdef\xc3\xa9", 8, buf, sizeof buf) == 6);
}

TEST_CASE("format_visible escapes every string argument and no style code",
          "[viewer][hostile][escape]") {
  const viewer::TerminalStyle style{true};
  const std::string name = "a\x1b[2Jb";
  CHECK(viewer::format_visible("{}{}{} {:>6}|", style.bold(), name, style.reset(), "x\ty") ==
        "\x1b[1ma\\x1b[2Jb\x1b[0m x\\x09y|");
  CHECK(viewer::format_visible("{} {}", std::string_view("\r"), 42) == "\\x0d 42");
}
