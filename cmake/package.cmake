# `cpack -G DEB` in a build tree: dltrace_<version>_<arch>.deb with /usr/bin/dltrace, the
# recorder in /usr/lib/<multiarch>/, the headers, the man pages, the bash completion, the docs
# and the examples (everything `cmake --install` installs). Depends: comes from dpkg-shlibdeps
# on the binaries (the recorder loads no library of its own but the override config's parser).
set(CPACK_PACKAGE_NAME dltrace)
set(CPACK_PACKAGE_VENDOR "dltrace")
set(CPACK_PACKAGE_CONTACT "dltrace maintainers <dltrace@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "record and explain dlopen/dlsym failures")
set(CPACK_PACKAGE_DESCRIPTION
    "dltrace records how every shared library and symbol was loaded (dlopen, dlmopen, dlsym,\n\
dlvsym, dlclose: flags, callers, results, dlerror() text, stacks) into a crash-safe trace\n\
file, and explains each failure from the trace and the ELF files: the missing symbol or\n\
library, why it was not visible, and a fix that works.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_RESOURCE_FILE_README ${CMAKE_SOURCE_DIR}/README.md)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES OFF)  # keep the symbols: explain and show symbolize our own frames too
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # dltrace_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "graphviz, python3")
include(CPack)
