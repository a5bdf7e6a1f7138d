/* luamod.so: a Lua C module, built the usual way for Lua modules: WITHOUT linking liblua. Its
 * lua_* / luaL_* references stay undefined and are resolved, when Lua dlopens the module, from
 * whatever already provides them: liblua5.4.so in a dynamically linked host, or the host
 * executable itself, if the executable exports them (-Wl,--export-dynamic). */
#include <lauxlib.h>
#include <lua.h>

static int luamod_add(lua_State* L) {
  lua_Integer a = luaL_checkinteger(L, 1);
  lua_Integer b = luaL_checkinteger(L, 2);
  lua_pushinteger(L, a + b);
  return 1;
}

static const luaL_Reg luamod_funcs[] = {{"add", luamod_add}, {NULL, NULL}};

int luaopen_luamod(lua_State* L) {
  luaL_newlib(L, luamod_funcs);
  return 1;
}
