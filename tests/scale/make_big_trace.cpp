// make_big_trace OUT EVENTS [STACK_DEPTH] [--python]: writes a synthetic trace of EVENTS readable
// events (see big_trace.h; --python: every dlopen made from Python code, BigTraceOptions::
// python_loads), for the manual 10-million-event run documented in README.md:
//   build/bin/make_big_trace /tmp/10m.trace 10000000
//   /usr/bin/time -v build/bin/dltrace export --format json /tmp/10m.trace -o /dev/null
#include <cstdio>
#include <cstdlib>
#include <string>

#include "big_trace.h"

int main(int argc, char** argv) {
  dltrace::test::BigTraceOptions options;
  if (argc > 1 && std::string(argv[argc - 1]) == "--python") {
    options.python_loads = true;
    --argc;
  }
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: %s OUT EVENTS [STACK_DEPTH] [--python]\n", argv[0]);
    return 2;
  }
  options.events = std::strtoull(argv[2], nullptr, 10);
  if (argc == 4) options.stack_depth = static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 10));
  if (options.events == 0) {
    std::fprintf(stderr, "%s: EVENTS must be a positive number\n", argv[0]);
    return 2;
  }
  const std::string error = dltrace::test::write_big_trace(argv[1], options);
  if (!error.empty()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], error.c_str());
    return 1;
  }
  return 0;
}
