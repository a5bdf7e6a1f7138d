# Writes the build's version source (run at every build by the dltrace_version target, so the
# commit is that of the sources being built, not of the last configure). The file is rewritten
# only when its text changes, so an unchanged commit rebuilds nothing.
#   -DSOURCE_DIR=... -DOUTPUT=... -DTEMPLATE=... -DVERSION=0.1.0 [-DGIT_COMMIT=override]
if(NOT GIT_COMMIT)
  execute_process(COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
    OUTPUT_VARIABLE GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE git_result ERROR_QUIET)
  if(NOT git_result EQUAL 0)
    set(GIT_COMMIT "")  # not a git checkout (a release tarball), or no git: version only
  endif()
endif()
if(GIT_COMMIT)
  set(VERSION_TAG "${VERSION}+${GIT_COMMIT}")
else()
  set(VERSION_TAG "${VERSION}")
endif()
configure_file("${TEMPLATE}" "${OUTPUT}" @ONLY)
