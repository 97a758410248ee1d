/* test_actor.c - wait/hold records and wait-for graph cycle detection,
 * with a fake lock type whose owner is set by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "actor.h"

typedef struct fake_lock {
  cc_obj_t h;
  cc_actor_t *owner;
} fake_lock_t;

static cc_actor_t *fake_owner(cc_obj_t *o) {
  return ((fake_lock_t *)o)->owner;
}
static const cc_type_t fake_type = {"lock", NULL, fake_owner, NULL};

static fake_lock_t *mk(const char *name, cc_actor_t *owner) {
  fake_lock_t *l = cc_obj_new(&fake_type, sizeof *l, name);
  l->owner = owner;
  return l;
}

/* Makes actor `a` look as if it were blocked, untimed, on lock `o`. */
static void park(cc_actor_t *a, cc_obj_t *o) {
  atomic_store(&a->waiting_on, o);
  atomic_store(&a->wait_kind, CC_WAIT_LOCK);
  atomic_store(&a->wait_timed, 0);
}

static void test_self_deadlock(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  fake_lock_t *l = mk("knife", me);
  assert_int_equal(cc_wait_begin(&l->h, CC_WAIT_LOCK, CC_FOREVER), CC_EDEADLOCK);
  assert_string_equal(cc_deadlock_message(),
                      "deadlock: thread 'main' waits for lock 'knife' held by thread "
                      "'main' (itself)");
  /* Nothing was recorded: the actor is not left waiting. */
  assert_null(atomic_load(&me->waiting_on));
  cc_obj_unref(&l->h);
}

static void test_two_cycle(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  cc_actor_t *cook2 = cc_actor_new("cook2", 1002, CC_ACTOR_THREAD);
  fake_lock_t *knife = mk("knife", me), *pot = mk("pot", cook2);
  park(cook2, &knife->h);
  assert_int_equal(cc_wait_begin(&pot->h, CC_WAIT_LOCK, CC_FOREVER), CC_EDEADLOCK);
  assert_string_equal(cc_deadlock_message(),
                      "deadlock: thread 'main' waits for lock 'pot' held by thread "
                      "'cook2', which waits for lock 'knife' held by thread 'main'");
  /* A timed wait is never an error, and a timed waiter is not an edge. */
  assert_int_equal(cc_wait_begin(&pot->h, CC_WAIT_LOCK, cc_deadline_in(1)), 0);
  cc_wait_end(&pot->h, CC_ETIMEOUT);
  atomic_store(&cook2->wait_timed, 1);
  assert_int_equal(cc_wait_begin(&pot->h, CC_WAIT_LOCK, CC_FOREVER), 0);
  cc_wait_end(&pot->h, 0);
  cc_actor_free(cook2);
  cc_obj_unref(&knife->h);
  cc_obj_unref(&pot->h);
}

static void test_three_cycle_and_process(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  cc_actor_t *b = cc_actor_new("b", 2, CC_ACTOR_THREAD);
  cc_actor_t *c = cc_actor_new("c", 3, CC_ACTOR_PROCESS);
  fake_lock_t *l1 = mk("L1", b), *l2 = mk("L2", c), *l3 = mk("L3", me);
  park(b, &l2->h);
  park(c, &l3->h);
  assert_int_equal(cc_wait_begin(&l1->h, CC_WAIT_LOCK, CC_FOREVER), CC_EDEADLOCK);
  char want[256];
  snprintf(want, sizeof want,
           "deadlock: thread 'main' waits for lock 'L1' held by thread 'b', which waits "
           "for lock 'L2' held by process 'c' (pid %d), which waits for lock 'L3' held "
           "by thread 'main'",
           (int)c->pid);
  assert_string_equal(cc_deadlock_message(), want);
  /* Break the chain: c no longer waits. */
  atomic_store(&c->wait_kind, 0);
  assert_int_equal(cc_wait_begin(&l1->h, CC_WAIT_LOCK, CC_FOREVER), 0);
  assert_ptr_equal(atomic_load(&me->waiting_on), &l1->h);
  cc_wait_end(&l1->h, 0);
  assert_null(atomic_load(&me->waiting_on));
  cc_actor_free(b);
  cc_actor_free(c);
  cc_obj_unref(&l1->h);
  cc_obj_unref(&l2->h);
  cc_obj_unref(&l3->h);
}

static void test_non_lock_waits_are_not_edges(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  cc_actor_t *b = cc_actor_new("b", 2, CC_ACTOR_THREAD);
  fake_lock_t *l1 = mk("L1", b), *l2 = mk("L2", me);
  atomic_store(&b->waiting_on, &l2->h);
  atomic_store(&b->wait_kind, CC_WAIT_QUEUE);
  assert_int_equal(cc_wait_begin(&l1->h, CC_WAIT_LOCK, CC_FOREVER), 0);
  cc_wait_end(&l1->h, 0);
  cc_actor_free(b);
  cc_obj_unref(&l1->h);
  cc_obj_unref(&l2->h);
}

static void test_holds_tracked_in_order(void **state) {
  (void)state;
  cc_actor_t *me = cc_self();
  fake_lock_t *a = mk("a", NULL), *b = mk("b", NULL), *c = mk("c", NULL);
  int32_t base = atomic_load(&me->nheld);
  cc_hold(&a->h);
  cc_hold(&b->h);
  cc_hold(&c->h);
  assert_int_equal(atomic_load(&me->nheld), base + 3);
  cc_unhold(&b->h);
  assert_int_equal(atomic_load(&me->nheld), base + 2);
  assert_ptr_equal(atomic_load(&me->held[base]), &a->h);
  assert_ptr_equal(atomic_load(&me->held[base + 1]), &c->h);
  cc_unhold(&c->h);
  cc_unhold(&a->h);
  assert_int_equal(atomic_load(&me->nheld), base);
  cc_obj_unref(&a->h);
  cc_obj_unref(&b->h);
  cc_obj_unref(&c->h);
}

static int events;
static void observer(cc_actor_t *a, cc_obj_t *o, int ev, int result) {
  (void)a;
  (void)o;
  (void)result;
  events |= 1 << ev;
}

static void test_observer_sees_every_event(void **state) {
  (void)state;
  fake_lock_t *l = mk("o", NULL);
  events = 0;
  cc_observer = observer;
  cc_wait_begin(&l->h, CC_WAIT_EVENT, CC_FOREVER);
  cc_wait_end(&l->h, 0);
  cc_hold(&l->h);
  cc_unhold(&l->h);
  cc_observer = NULL;
  assert_int_equal(events, 0xF);
  cc_obj_unref(&l->h);
}

static void test_actor_slots_recycled(void **state) {
  (void)state;
  cc_actor_t *a = cc_actor_new("x", 1, CC_ACTOR_THREAD);
  uint32_t idx = a->index;
  assert_ptr_equal(cc_actor_at(idx), a);
  cc_actor_free(a);
  cc_actor_t *b = cc_actor_new("y", 2, CC_ACTOR_THREAD);
  assert_int_equal(b->index, idx);
  assert_string_equal(b->name, "y");
  cc_actor_free(b);
  assert_null(cc_actor_at(CC_MAX_ACTORS));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_self_deadlock),
      cmocka_unit_test(test_two_cycle),
      cmocka_unit_test(test_three_cycle_and_process),
      cmocka_unit_test(test_non_lock_waits_are_not_edges),
      cmocka_unit_test(test_holds_tracked_in_order),
      cmocka_unit_test(test_observer_sees_every_event),
      cmocka_unit_test(test_actor_slots_recycled),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
