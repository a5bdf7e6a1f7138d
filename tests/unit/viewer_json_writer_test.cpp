// JsonWriter: escaping (quotes, backslashes, control characters, UTF-8), separators, numbers.
#include <catch2/catch.hpp>
#include <charconv>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "render/json_writer.h"

using dltrace::viewer::JsonWriter;

namespace {
std::string json_quoted(std::string_view s) {
  std::string out;
  JsonWriter::append_string(out, s);
  return out;
}
}  // namespace

TEST_CASE("json writer escapes quotes, backslashes and control characters", "[viewer][json]") {
  CHECK(json_quoted("plain") == "\"plain\"");
  CHECK(json_quoted("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json_quoted("\n\t\r\b\f") == "\"\\n\\t\\r\\b\\f\"");
  CHECK(json_quoted(std::string_view("\x01\x1f\0", 3)) == "\"\\u0001\\u001f\\u0000\"");
  CHECK(json_quoted("\x7f") == "\"\x7f\"");  // DEL is legal in JSON strings
  CHECK(json_quoted("") == "\"\"");
}

TEST_CASE("json writer keeps valid UTF-8 and replaces invalid bytes", "[viewer][json]") {
  CHECK(json_quoted("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") ==
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  const std::string bad = "\xff|\xc3|\xe2\x82|\xed\xa0\x80|\xc0\xaf|\xf4\x90\x80\x80";
  const std::string out = json_quoted(bad);
  // Every invalid sequence became U+FFFD; the result parses and round-trips as text.
  auto parsed = nlohmann::json::parse(out);
  const std::string text = parsed.get<std::string>();
  CHECK(text.find("\xef\xbf\xbd|") == 0);
  CHECK(text.find('\xff') == std::string::npos);
  CHECK(text.find("\xed\xa0\x80") == std::string::npos);  // a UTF-16 surrogate is not UTF-8
}

TEST_CASE("json writer separates members and elements and writes numbers", "[viewer][json]") {
  JsonWriter w;
  w.begin_object();
  w.key("a").value(1);
  w.key("b");
  w.begin_array();
  w.value(std::numeric_limits<uint64_t>::max());
  w.value(int64_t{-5});
  w.null();
  w.value(true);
  w.value("s");
  w.begin_object();
  w.end_object();
  w.end_array();
  w.key("h").hex(0x7f00deadbeef);
  w.key("z").hex(0);
  w.key("r").raw("[1,2]");
  w.end_object();
  CHECK(w.str() ==
        "{\"a\":1,\"b\":[18446744073709551615,-5,null,true,\"s\",{}],\"h\":\"0x7f00deadbeef\","
        "\"z\":\"0x0\",\"r\":[1,2]}");
  CHECK_NOTHROW(nlohmann::json::parse(w.str()));
}

TEST_CASE("json writer streams JSON Lines to a file", "[viewer][json]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  {
    JsonWriter w(f);
    for (int i = 0; i < 100000; ++i) {
      w.begin_object();
      w.key("i").value(i);
      w.key("s").value("x\ny");
      w.end_object();
      w.end_line();
    }
    REQUIRE(w.finish().ok());
  }
  std::rewind(f);
  char line[256];
  int n = 0;
  while (std::fgets(line, sizeof line, f)) {
    auto j = nlohmann::json::parse(line);
    REQUIRE(j["i"] == n);
    REQUIRE(j["s"] == "x\ny");
    ++n;
  }
  CHECK(n == 100000);
  std::fclose(f);
}

TEST_CASE("json writer formats integers and addresses like to_chars", "[viewer][json]") {
  std::vector<uint64_t> values = {0,
                                  1,
                                  9,
                                  10,
                                  99,
                                  100,
                                  101,
                                  4096,
                                  0xff,
                                  0x100,
                                  0x7f00deadbeef,
                                  std::numeric_limits<uint64_t>::max(),
                                  std::numeric_limits<uint64_t>::max() - 1};
  for (uint64_t p = 1; p != 0 && p <= std::numeric_limits<uint64_t>::max() / 10; p *= 10) {
    values.insert(values.end(), {p - 1, p, p + 1, p * 10 - 1});
  }
  for (int bit = 0; bit < 64; ++bit) {
    const uint64_t b = uint64_t{1} << bit;
    values.insert(values.end(), {b - 1, b, b + 1, b | (b >> 1)});
  }
  for (uint64_t v : values) {
    char expected[32], got[32];
    INFO(v);
    *std::to_chars(expected, expected + sizeof expected, v).ptr = 0;
    *dltrace::viewer::json_text::number(got, v) = 0;
    CHECK(std::string(got) == expected);
    *std::to_chars(expected, expected + sizeof expected, v, 16).ptr = 0;
    *dltrace::viewer::json_text::hex(got, v) = 0;
    CHECK(std::string(got) == "\"0x" + std::string(expected) + "\"");
  }
  char got[32];
  *dltrace::viewer::json_text::number(got, int64_t{-1234567}) = 0;
  CHECK(std::string(got) == "-1234567");
  *dltrace::viewer::json_text::number(got, uint16_t{65535}) = 0;
  CHECK(std::string(got) == "65535");
}
