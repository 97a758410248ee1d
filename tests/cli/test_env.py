"""CONCLUA_* variables with bad values are refused with a message that names
the variable, the value and what it may be; good values are taken."""
from clitest import CliTestCase, clean_env, main


class Env(CliTestCase):
    def test_bad_values_are_refused(self):
        for name, value in [("CONCLUA_SPIN", "abc"), ("CONCLUA_SPIN", "-1"),
                            ("CONCLUA_SPIN", "12x"), ("CONCLUA_NO_PIDFD", "2"),
                            ("CONCLUA_DUMP_SITES", "yes")]:
            r = self.run_conclua(["-e", "print('ran')"], env=clean_env(**{name: value}))
            self.assertEqual(r.rc, 1, (name, value, r))
            self.assertEqual(r.out, "", (name, value))
            self.assertIn("%s must be a whole number" % name, r.err)
            self.assertIn("not '%s'" % value, r.err)

    def test_good_values_are_taken(self):
        for name, value in [("CONCLUA_SPIN", "0"), ("CONCLUA_SPIN", "5000"),
                            ("CONCLUA_NO_PIDFD", "1"), ("CONCLUA_DUMP_SITES", "0"),
                            ("CONCLUA_SPIN", "")]:
            r = self.run_conclua(["-e", "print(select(2, conc.process(function() return 'ok' end):join()))"],
                                 env=clean_env(**{name: value}))
            self.assertEqual((r.rc, r.out, r.err), (0, "ok\n", ""), (name, value))


if __name__ == "__main__":
    main()
