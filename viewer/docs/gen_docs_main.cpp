// dltrace_gen_docs MANDIR COMPLETION: writes the man pages (MANDIR/man1/*.1) and the bash
// completion script from the dltrace command line, at build time (viewer/CMakeLists.txt), so that
// neither can drift from what `dltrace --help` prints.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli.h"
#include "common/version.h"
#include "docs/bash_completion.h"
#include "docs/man_page.h"

namespace {

bool write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) std::fprintf(stderr, "dltrace_gen_docs: cannot write %s\n", path.c_str());
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using namespace dltrace::viewer;
  if (argc != 3) {
    std::fprintf(stderr, "usage: dltrace_gen_docs MANDIR COMPLETION_FILE\n");
    return 2;
  }
  CommandResult result;
  const auto app = make_cli(result);
  const fs::path man1 = fs::path(argv[1]) / "man1";
  std::error_code ec;
  fs::remove_all(man1, ec);  // no page of a command that no longer exists
  fs::create_directories(man1, ec);
  fs::create_directories(fs::path(argv[2]).parent_path(), ec);
  bool ok = true;
  for (const ManPage& page : man_pages(*app, std::string("dltrace ") + dltrace::kBuildVersion))
    ok = write_file(man1 / (page.name + ".1"), page.roff) && ok;
  ok = write_file(argv[2], bash_completion(*app)) && ok;
  return ok ? 0 : 1;
}
