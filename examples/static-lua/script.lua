-- Loads the C module ./luamod.so with require (Lua dlopens it RTLD_NOW|RTLD_LOCAL) and calls it.
package.cpath = "./?.so;" .. package.cpath
local luamod = require "luamod"
print("luamod.add(2, 3) = " .. luamod.add(2, 3))
