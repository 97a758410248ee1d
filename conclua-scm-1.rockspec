-- conc for a stock Lua 5.4: `luarocks --lua-version 5.4 make` in the
-- checkout builds conc.so with CMake (module only) and installs it into the
-- rocks tree. CMake, not the "builtin" type: the module must be linked with
-- -Wl,-z,nodelete (it must never be unloaded under its own worker threads),
-- which the project's CMakeLists.txt does for every build.
rockspec_format = "3.0"
package = "conclua"
version = "scm-1"
source = {
   -- `luarocks make` builds the checkout it runs in and does not fetch this.
   url = "git+file:///conclua",
}
description = {
   summary = "Real OS threads, processes, locks and queues for Lua 5.4",
   detailed = [[
conc runs Lua functions in OS threads (conc.thread) and forked processes
(conc.process), truly in parallel, and shares locks, conditions,
semaphores, events, barriers, queues and shared tables between them.
Values are copied between threads; conc objects are shared.]],
}
supported_platforms = { "linux" }
dependencies = {
   "lua >= 5.4, < 5.5",
}
build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "Release",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      CONCLUA_MODULE_ONLY = "ON",
      CONCLUA_WERROR = "OFF",
      CONCLUA_LUA_INCDIR = "$(LUA_INCDIR)",
      CONCLUA_INSTALL_CMOD_DIR = "$(LIBDIR)",
   },
}
