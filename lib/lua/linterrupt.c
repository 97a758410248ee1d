/*
 * linterrupt.c - Ctrl-C as one catchable "interrupted!" error.
 *
 * conclua_interrupt (from a SIGINT handler) both marks the core's interrupt
 * pending, so that a blocking conc wait of the interruptible thread returns
 * CC_EINTR, and sets a hook on the state, so that running Lua code stops at
 * its next instruction. Whichever delivers the error first consumes both:
 * the hook clears the flag, and conc_raise's CC_EINTR path clears the hook.
 * So one Ctrl-C raises once, and code that catches it runs undisturbed.
 *
 * Under a host interpreter (stock lua5.4), luaopen_conc chains the host's
 * SIGINT handler: a Ctrl-C that finds the interruptible thread parked in a
 * conc wait interrupts that wait (the host's own handler only sets a hook,
 * which a parked thread never reaches); any other Ctrl-C goes to the host's
 * handler as before.
 */
#include <signal.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "conclua.h"
#include "interrupt.h"
#include "lconc.h"

/* The state the last interrupt was aimed at. */
static lua_State *volatile intr_state;

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  cc_interrupt_take();
  luaL_error(L, "interrupted!");
}

void conclua_interrupt(lua_State *L) {
  cc_interrupt_raise();
  if (!L) return; /* only the conc waits are interrupted */
  intr_state = L;
  lua_sethook(L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

void conclua_interrupt_reset(lua_State *L) {
  if (L && lua_gethook(L) == stop_hook) lua_sethook(L, NULL, 0, 0);
  cc_interrupt_take();
}

void conclua_set_interruptible(int on) {
  cc_thread_set_interruptible(on);
}

void conc_interrupt_consumed(void) {
  conclua_interrupt_reset(intr_state);
}

/* ---- chaining a host's handler ---------------------------------------- */

static struct sigaction host_sa;
static lua_State *host_L;
static volatile sig_atomic_t chained;

static void chained_sigint(int sig, siginfo_t *si, void *uc) {
  if (cc_interrupt_in_wait) {
    /* As lua.c does: the next Ctrl-C ends the program if this one is
     * swallowed. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGINT, &dfl, NULL);
    conclua_interrupt(host_L);
  } else if (host_sa.sa_flags & SA_SIGINFO) {
    host_sa.sa_sigaction(sig, si, uc);
  } else if (host_sa.sa_handler != SIG_DFL && host_sa.sa_handler != SIG_IGN) {
    host_sa.sa_handler(sig);
  }
}

void conc_chain_sigint(lua_State *L) {
  struct sigaction cur, sa;
  if (sigaction(SIGINT, NULL, &cur) != 0) return;
  if (cur.sa_flags & SA_SIGINFO) {
    if (cur.sa_sigaction == chained_sigint) return;
  } else if (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN) {
    return; /* no handler: Ctrl-C ends the host, as it would anyway */
  }
  if (chained) return; /* one chain per process */
  host_sa = cur;
  host_L = L;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = chained_sigint;
  sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: the futex wait returns EINTR */
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) != 0) return;
  chained = 1;
  cc_thread_set_interruptible(1);
}
