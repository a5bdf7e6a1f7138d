# The build's version and git commit, for `dltrace --version` and the recorder_version field of
# every trace header. DLTRACE_VERSION_SOURCE is a generated .cpp defining common/version.h; it is
# regenerated at each build (cmake/write_version.cmake) and compiled by every target that needs it.
set(DLTRACE_GIT_COMMIT "" CACHE STRING
    "Commit to report when not building from a git checkout (default: git rev-parse HEAD, or none)")
set(DLTRACE_VERSION_SOURCE ${CMAKE_BINARY_DIR}/generated/version.cpp)
add_custom_target(dltrace_version
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${CMAKE_SOURCE_DIR} -DOUTPUT=${DLTRACE_VERSION_SOURCE}
          -DTEMPLATE=${CMAKE_SOURCE_DIR}/common/version.cpp.in -DVERSION=${PROJECT_VERSION}
          -DGIT_COMMIT=${DLTRACE_GIT_COMMIT} -P ${CMAKE_SOURCE_DIR}/cmake/write_version.cmake
  BYPRODUCTS ${DLTRACE_VERSION_SOURCE}
  COMMENT "Checking the git commit for the version"
  VERBATIM)
