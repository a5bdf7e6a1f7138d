// Writes the crafted traces of hostile_traces.h into DIR, with the local files the pointing trace
// names (a FIFO, a secret file, a directory; /dev/zero is the system's): what the bounded-run
// test gives every command, and the seeds of the viewer fuzzer.
// Usage: make_hostile_traces DIR [NESTED_DEPTH]
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "hostile_traces.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_hostile_traces DIR [NESTED_DEPTH]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const uint32_t depth =
      argc > 2 ? static_cast<uint32_t>(std::strtoul(argv[2], nullptr, 10)) : 100000;
  mkdir(dir.c_str(), 0755);
  const std::string fifo = dir + "/fifo.so", secret = dir + "/secret.so", sub = dir + "/subdir.so";
  remove(fifo.c_str());
  if (mkfifo(fifo.c_str(), 0600) != 0) std::perror("mkfifo");
  std::ofstream(secret) << "root:SECRET-HASH-LINE:19000:0:99999:7:::\n";
  mkdir(sub.c_str(), 0755);
  struct Trace {
    std::string name;
    std::string error;
  } traces[] = {
      {"escape.trace", dltrace::test::write_escape_trace(dir + "/escape.trace")},
      {"pointing.trace",
       dltrace::test::write_pointing_trace(dir + "/pointing.trace",
                                           {fifo, "/dev/zero", secret, sub, "/dev/stdin"})},
      {"nested.trace", dltrace::test::write_nested_trace(dir + "/nested.trace", depth)},
  };
  int status = 0;
  for (const auto& t : traces) {
    if (!t.error.empty()) {
      std::fprintf(stderr, "make_hostile_traces: %s: %s\n", t.name.c_str(), t.error.c_str());
      status = 1;
    }
  }
  return status;
}
