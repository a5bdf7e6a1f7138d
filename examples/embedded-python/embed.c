/* libembed.so: a plugin that embeds Python. It links libpython (pkg-config python3-embed), the
 * way application plugins that offer Python scripting do.
 *
 *   int embed_run(const char* code)   starts Python on first use, runs `code` with
 *                                     PyRun_SimpleString (which prints any traceback to stderr)
 *                                     and returns 0 on success, -1 if the code raised.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int start_python(void) {
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  /* Use the installation these headers belong to (Debian's /usr/bin/python3), even if another
   * python3 (pyenv, a venv) comes first on PATH. */
  PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, "/usr/bin/python3");
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    fprintf(stderr, "libembed: cannot start Python: %s\n", status.err_msg ? status.err_msg : "?");
    return -1;
  }
  return 0;
}

int embed_run(const char* code) {
  if (!Py_IsInitialized() && start_python() != 0) return -1;
  int rc = PyRun_SimpleString(code);
  fflush(stdout);
  fflush(stderr);
  return rc;
}
