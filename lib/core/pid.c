/* pid.c - the one process-liveness check; see pid.h. */
#include "pid.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mutex.h" /* cc_pid */

int cc_pid_dead(int32_t pid) {
  char path[64], buf[512], *p;
  ssize_t n;
  int fd;
  if (pid <= 0 || pid == cc_pid) return 0;
  if (kill(pid, 0) == -1 && errno == ESRCH) return 1;
  /* kill() succeeds on a zombie: read its state, the letter after the
   * command name, which itself may contain ')' (so the last one counts). */
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) return errno == ENOENT;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  p = strrchr(buf, ')');
  return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}
