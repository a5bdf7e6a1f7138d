// What a dlerror() text says, in parts: glibc's messages are the only record of *why* a call
// failed, so explain parses the few shapes that matter (elf/dl-lookup.c, dl-load.c, dl-version.c).
#pragma once

#include <string>
#include <string_view>

namespace dltrace::viewer {

struct DlerrorText {
  enum class Kind {
    kOther,
    kUndefinedSymbol,  // "OBJ: undefined symbol: SYM[, version VER]"
    kNotFound,         // "NAME: cannot open shared object file: No such file or directory"
    kVersionNotFound,  // "OBJ: version `VER' not found (required by NEEDER)"
  } kind = Kind::kOther;
  std::string object;     // the object the message is about (may be "" for the executable)
  std::string symbol;     // kUndefinedSymbol
  std::string version;    // kUndefinedSymbol (optional), kVersionNotFound
  std::string needed_by;  // kVersionNotFound: the object that requires the version
};

DlerrorText parse_dlerror(std::string_view text);

}  // namespace dltrace::viewer
