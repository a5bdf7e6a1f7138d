// dlsym_names MODE HANDLE K N: N calls of dlsym cycling through K distinct names, for callgrind
// (run_benchmarks.sh takes the difference of two N to cancel start-up, giving instructions per
// call). MODE: native (libc's own dlsym through a pointer: the interposer is bypassed) or traced
// (the plain dlsym symbol). HANDLE: lib (bench_many's handle: names bench_many_0 ...), default
// (RTLD_DEFAULT) or next (RTLD_NEXT): these two cycle through K libc functions.
#define _GNU_SOURCE  // dlvsym
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char* const kLibcNames[] = {
    "fopen",   "fclose",       "fread",   "fwrite",  "fprintf", "printf",  "sprintf", "snprintf",
    "malloc",  "free",         "calloc",  "realloc", "strlen",  "strcmp",  "strncmp", "strchr",
    "strrchr", "strstr",       "memcpy",  "memmove", "memset",  "memcmp",  "open",    "close",
    "read",    "write",        "lseek",   "stat",    "fstat",   "mmap",    "munmap",  "mprotect",
    "getpid",  "getppid",      "getenv",  "setenv",  "qsort",   "bsearch", "atoi",    "strtol",
    "strtoul", "strdup",       "strndup", "fflush",  "fgets",   "fputs",   "puts",    "getline",
    "time",    "clock_gettime"};

typedef void* (*DlsymFn)(void*, const char*);

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: dlsym_names native|traced lib|default|next K N\n");
    return 2;
  }
  const int native = strcmp(argv[1], "native") == 0;
  const long k = atol(argv[3]), n = atol(argv[4]);
  void* handle = RTLD_DEFAULT;
  const long libc_count = (long)(sizeof kLibcNames / sizeof kLibcNames[0]);
  if (strcmp(argv[2], "lib") == 0) {
    handle = dlopen(BENCH_MANY_LIB, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL || k < 1 || k > BENCH_MANY_COUNT) return 1;
  } else {
    if (strcmp(argv[2], "next") == 0) handle = RTLD_NEXT;
    if (k < 1 || k > libc_count) return 1;
  }
  const char** names = calloc((size_t)k, sizeof *names);
  for (long i = 0; i < k; ++i) {
    if (handle == RTLD_DEFAULT || handle == RTLD_NEXT) {
      names[i] = kLibcNames[i];
    } else {
      char* name = malloc(32);
      snprintf(name, 32, "bench_many_%ld", i);
      names[i] = name;
    }
  }
  DlsymFn call = dlsym;
  if (native) {
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    call = (DlsymFn)dlvsym(libc, "dlsym", "GLIBC_2.34");
    if (call == NULL) return 1;
  }
  long found = 0;
  for (long i = 0, j = 0; i < n; ++i) {
    found += call(handle, names[j]) != NULL;
    if (++j == k) j = 0;
  }
  return found == n ? 0 : 1;
}
