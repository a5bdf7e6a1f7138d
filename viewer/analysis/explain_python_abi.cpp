// An extension module that a CPython loaded and that needs a Py*/_Py* function this interpreter
// does not export: it was built for another Python. Linking or RTLD_GLOBAL cannot help; the
// module must be rebuilt for the running interpreter.
#include <dirent.h>

#include <algorithm>
#include <regex>

#include "analysis/explain.h"
#include "analysis/python_imports.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

// "3.11" from "/usr/bin/python3.11" or "libpython3.11.so.1.0", "" if none.
std::string python_version_in(std::string_view name) {
  static const std::regex kVersion(R"(python(\d+\.\d+))");
  std::match_results<std::string_view::const_iterator> m;
  return std::regex_search(name.begin(), name.end(), m, kVersion) ? m[1].str() : std::string();
}

// "3.13" from "mod.cpython-313-x86_64-linux-gnu.so", "" if the name has no such tag.
std::string abi_tag_version(std::string_view file) {
  static const std::regex kTag(R"(\.cpython-(\d)(\d+)[a-z]*-)");
  std::match_results<std::string_view::const_iterator> m;
  if (!std::regex_search(file.begin(), file.end(), m, kTag)) return {};
  return fmt::format("{}.{}", m[1].str(), m[2].str());
}

// Other CPython interpreters on this machine (executables and libpython), by version.
std::vector<std::pair<std::string, std::string>> interpreters_on_disk() {
  std::vector<std::pair<std::string, std::string>> out;
  static const std::regex kExe(R"(python\d+\.\d+)");
  static const std::regex kLib(R"(libpython\d+\.\d+\.so(\.[0-9.]+)?)");
  for (const char* dir :
       {"/usr/bin", "/usr/local/bin", "/usr/lib/x86_64-linux-gnu", "/usr/local/lib"}) {
    DIR* d = opendir(dir);
    if (!d) continue;
    while (dirent* entry = readdir(d)) {
      const std::string name = entry->d_name;
      if (std::regex_match(name, kExe) || std::regex_match(name, kLib))
        out.emplace_back(python_version_in(name), fmt::format("{}/{}", dir, name));
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

bool explain_python_abi(ExplainContext& ctx, const format::EventSlot& e, std::string_view symbol,
                        std::string_view needer, Finding& f) {
  if (!is_open_call(e.call) || !(symbol.starts_with("Py") || symbol.starts_with("_Py")))
    return false;
  const TraceModel& m = ctx.model();
  // The interpreter: the loaded object that carries the C API (the executable, or libpython
  // for an interpreter linked against it).
  const ObjectRecord* interpreter = nullptr;
  const ElfFile* interpreter_file = nullptr;
  for (const ObjectRecord* o : m.objects_by_load()) {
    if (!o->alive_at(e.seq)) continue;
    const ElfFile* file = ctx.file_of(*o);
    if (file && file->exported("Py_GetVersion")) {
      interpreter = o;
      interpreter_file = file;
      break;
    }
  }
  if (!interpreter || interpreter_file->exported(symbol)) return false;
  const std::string version = python_version_in(m.path_of(*interpreter)).empty()
                                  ? python_version_in(ctx.reader().process().exe)
                                  : python_version_in(m.path_of(*interpreter));
  const std::string running =
      version.empty() ? std::string("this Python") : fmt::format("Python {}", version);
  const std::string module(basename_of(needer));
  f.kind = "python-abi-mismatch";
  f.fact("python_version", version);
  f.fact("interpreter", std::string(m.path_of(*interpreter)));
  f.fact("needed_by", std::string(needer));
  f.title = fmt::format(
      "{} was built for another Python: it needs {}, which {} (the interpreter "
      "running, {}) does not have",
      module, symbol, running, m.path_of(*interpreter));
  f.evidence.push_back(fmt::format("{} exports the C API of {}; {} is not part of it",
                                   m.name_of(*interpreter), running, symbol));
  if (e.py_stack != format::kNoId &&
      attribute_python_stack(ctx.reader(), ctx.reader().py_stack(e.py_stack)).via_import)
    f.evidence.push_back(
        fmt::format("the import of {} loaded it: the import raised ImportError", module));
  if (std::string tag = abi_tag_version(module); !tag.empty() && tag != version) {
    f.fact("built_for", tag);
    f.evidence.push_back(fmt::format("its file name says it was built for CPython {}", tag));
  }
  std::string with, without;
  for (const auto& [v, path] : interpreters_on_disk()) {
    if (path == m.path_of(*interpreter) || path == ctx.reader().process().exe) continue;
    const ElfFile* other = ctx.elf().file(path);
    if (!other || !other->exported("Py_GetVersion")) continue;
    std::string& list = other->exported(symbol) ? with : without;
    if (list.find(v) == std::string::npos) list += (list.empty() ? "" : ", ") + v;
  }
  if (!with.empty()) {
    f.fact("versions_with_symbol", with);
    f.evidence.push_back(fmt::format("the Pythons on this machine that have {}: {}", symbol, with));
  } else {
    f.evidence.push_back(fmt::format(
        "no other Python on this machine has {} either: it comes from a newer or older CPython "
        "than those installed",
        symbol));
  }
  const std::string py = version.empty() ? std::string("python3") : "python" + version;
  f.fixes.push_back(
      {fmt::format("rebuild {} for {} (this interpreter): compile it with {}'s headers "
                   "($({}-config --includes)), or reinstall its package with {} -m pip install "
                   "--force-reinstall --no-binary :all: PACKAGE",
                   module, running, py, py, py),
       ""});
  f.fixes.push_back(
      {fmt::format("or run it with the Python it was built for{}",
                   with.empty() ? std::string() : fmt::format(" ({} has {})", with, symbol)),
       ""});
  f.evidence.push_back(
      "note: RTLD_GLOBAL, a dltrace override or linking the module against libpython cannot fix "
      "this: no Python loaded here defines that function");
  return true;
}

}  // namespace dltrace::viewer
