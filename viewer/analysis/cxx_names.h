// C++ symbol names as the C++ runtime spells them (abi::__cxa_demangle, never by hand), and the
// keys that find one function under another spelling: the other std::string ABI
// (_GLIBCXX_USE_CXX11_ABI), another ABI tag ([abi:cxx11]), or the plain C name of a function
// compiled as C++ (a missing extern "C").
#pragma once

#include <string>
#include <string_view>

namespace dltrace::viewer {

// Whether `symbol` is an Itanium C++ ABI name ("_Z...").
bool is_cxx_name(std::string_view symbol);

// "greet(std::string const&)" for "_Z5greetRKSs"; `symbol` as is when it is not a C++ name or
// the demangler refuses it (a version suffix "@GLIBC_2.34" is kept out of the demangling).
std::string demangle(std::string_view symbol);

// The demangled name with what only the ABI changes taken out: std::__cxx11:: (the new
// std::string/std::list of _GLIBCXX_USE_CXX11_ABI=1) and ABI tags ("[abi:cxx11]"), and
// std::basic_string<char, ...> written std::string. Equal keys: the same function.
std::string abi_neutral(std::string_view demangled);

// Whether a demangled name uses the new (C++11) library ABI: std::__cxx11:: or [abi:cxx11].
bool uses_cxx11_abi(std::string_view demangled);

// "create_plugin" for "create_plugin()" or "create_plugin(int, char const*)": the name a
// namespace-scope, non-template function would have had as extern "C"; "" for anything else
// (members, namespaces, templates, data, special names).
std::string plain_function_name(std::string_view demangled);

}  // namespace dltrace::viewer
