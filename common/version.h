// The version of this build: printed by `dltrace --version`, written by the recorder into every
// trace header (format::FileHeader::recorder_version), compared by the viewer with a trace's.
// Defined in a source generated at build time (cmake/version.cmake), so that a new commit only
// recompiles that one file.
#pragma once

namespace dltrace {
extern const char kBuildVersion[];     // the project's version, "0.1.0"
extern const char kBuildCommit[];      // abbreviated git commit, "" when not built from git
extern const char kBuildVersionTag[];  // what a trace records: "0.1.0+43613ba9c1e2" or "0.1.0"
}  // namespace dltrace
