#include "analysis/cxx_names.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace dltrace::viewer {
namespace {

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

}  // namespace

bool is_cxx_name(std::string_view symbol) {
  return symbol.size() > 2 && symbol.starts_with("_Z");
}

std::string demangle(std::string_view symbol) {
  const std::string plain(symbol.substr(0, symbol.find('@')));
  if (!is_cxx_name(plain)) return std::string(symbol);
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(
      abi::__cxa_demangle(plain.c_str(), nullptr, nullptr, &status), &std::free);
  if (status != 0 || !out) return std::string(symbol);
  return out.get();
}

std::string abi_neutral(std::string_view demangled) {
  std::string key(demangled);
  replace_all(key, "std::__cxx11::", "std::");
  replace_all(key, "std::basic_string<char, std::char_traits<char>, std::allocator<char> >",
              "std::string");
  // ABI tags: "name[abi:cxx11]" -> "name".
  for (size_t at = key.find("[abi:"); at != std::string::npos; at = key.find("[abi:", at)) {
    const size_t end = key.find(']', at);
    if (end == std::string::npos) break;
    key.erase(at, end - at + 1);
  }
  return key;
}

bool uses_cxx11_abi(std::string_view demangled) {
  return demangled.find("std::__cxx11::") != std::string_view::npos ||
         demangled.find("[abi:cxx11]") != std::string_view::npos;
}

std::string plain_function_name(std::string_view demangled) {
  const size_t paren = demangled.find('(');
  if (paren == std::string_view::npos || paren == 0 || demangled.back() != ')') return {};
  std::string_view name = demangled.substr(0, paren);
  if (size_t tag = name.find("[abi:"); tag != std::string_view::npos) name = name.substr(0, tag);
  for (char c : name)
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return {};
  return std::string(name);
}

}  // namespace dltrace::viewer
