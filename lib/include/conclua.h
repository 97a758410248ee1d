/*
 * conclua.h - embedding conclua in a host program.
 *
 * conclua gives Lua 5.4 real OS threads, processes, locks, queues and shared
 * tables. A host opens the `conc` module into its own lua_State with
 * luaopen_conc() (or conclua_openlibs()), and the runtime creates a fresh
 * lua_State for every thread it starts: conclua_set_state_hook() lets the
 * host prepare each of those (register its own C bindings) before any code
 * runs in it.
 *
 * Thread-safety: every function here may be called from any thread, except
 * conclua_set_state_hook(), which must be called before the first thread is
 * started.
 */
#ifndef CONCLUA_H
#define CONCLUA_H

#ifdef __cplusplus
extern "C" {
#endif

#include <lua.h>

#define CONCLUA_VERSION "0.1.0"

/* Only the names in this header are exported from libconclua.so and conc.so;
 * everything else is built with hidden visibility. */
#if defined(__GNUC__)
#define CONCLUA_API __attribute__((visibility("default")))
#else
#define CONCLUA_API
#endif

/* The `conc` module opener: `package.preload.conc = luaopen_conc`, or called
 * through luaL_requiref. Returns 1 (the module table). */
CONCLUA_API int luaopen_conc(lua_State *L);

/* Called on every lua_State the runtime creates, after the standard
 * libraries and `conc` are open and before any user code runs in it. May
 * be called from any thread. */
typedef void (*conclua_state_hook)(lua_State *L, void *ud);
CONCLUA_API void conclua_set_state_hook(conclua_state_hook hook, void *ud);

/* Opens the standard libraries and `conc` (also as the global `conc`) into
 * L, as the conclua program does. */
CONCLUA_API void conclua_openlibs(lua_State *L);

/* A new lua_State prepared like every conc thread's: standard libraries,
 * `conc`, then the state hook. NULL on memory error. */
CONCLUA_API lua_State *conclua_newstate(void);

/* Runs the file at `path` (NULL: stdin) in protected mode with a traceback.
 * Returns LUA_OK or an error status with the message on top of the stack. */
CONCLUA_API int conclua_dofile(lua_State *L, const char *path);

/* The message handler conclua_dofile and the conclua program use (give it
 * to lua_pcall as msgh): like lua.c's, a string error gets a traceback, an
 * object with __tostring becomes that string, anything else is described. */
CONCLUA_API int conclua_msghandler(lua_State *L);

/* Waits for every non-daemon conc thread this process started, as the
 * conclua program does when its main chunk ends. */
CONCLUA_API void conclua_wait_threads(void);

/* ---- Ctrl-C ------------------------------------------------------------
 * One thread per process is interruptible: its blocking conc calls end
 * with the error "interrupted!" when an interrupt arrives. */

/* Makes the calling thread the interruptible one (on != 0), or not. */
CONCLUA_API void conclua_set_interruptible(int on);

/* Async-signal-safe: meant for a SIGINT handler running on the
 * interruptible thread. The blocking conc call that thread is in, or else
 * the next Lua instruction run in L, raises "interrupted!", once: the error
 * can be caught, and the cleanup code after it runs undisturbed. */
CONCLUA_API void conclua_interrupt(lua_State *L);

/* Drops an interrupt that no call consumed (call it when the protected
 * call it was meant for has returned). Not async-signal-safe. */
CONCLUA_API void conclua_interrupt_reset(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
