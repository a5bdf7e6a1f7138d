/* host: an application with a plugin interface. It knows nothing about Python (it does not link
 * libpython); it opens the plugin ./libembed.so the way many plugin hosts do, with
 * RTLD_NOW | RTLD_LOCAL, and asks it to run some Python. Exits 0 if the Python code ran, 1 if not.
 */
#include <dlfcn.h>
#include <stdio.h>

static const char kCode[] =
    "import json, decimal\n"
    "print(json.dumps({'ok': decimal.Decimal('1.5')}, default=str))\n";

int main(void) {
  void* plugin = dlopen("./libembed.so", RTLD_NOW | RTLD_LOCAL);
  if (plugin == NULL) {
    fprintf(stderr, "host: dlopen: %s\n", dlerror());
    return 1;
  }
  int (*embed_run)(const char*) = (int (*)(const char*))dlsym(plugin, "embed_run");
  if (embed_run == NULL) {
    fprintf(stderr, "host: dlsym: %s\n", dlerror());
    return 1;
  }
  if (embed_run(kCode) != 0) {
    fprintf(stderr, "host: the plugin's Python code failed\n");
    return 1;
  }
  printf("host: the plugin's Python code ran\n");
  return 0;
}
