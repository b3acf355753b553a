/* The controlling terminal in raw mode, and its restoration on every way
 * out: the end of a run, exit(), and the fatal signals (SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGABRT), after which the signal takes its course.
 *
 * One terminal at a time: the process has one stdin, and only one console
 * may read it. */
#ifndef LUAVMM_TERM_H
#define LUAVMM_TERM_H

#include <stdbool.h>

/* Puts the terminal on fd in raw mode: no echo, no line editing, no
 * CR-to-NL translation, no flow control, bytes as they come. Output
 * processing stays on, so a bare "\n" from a guest still starts a line.
 * With signals, Ctrl-C and Ctrl-\ still raise SIGINT and SIGQUIT (and
 * Ctrl-Z SIGTSTP); without, they are plain bytes for the guest.
 * Returns 1 when it changed the terminal, 0 when fd is not a terminal or
 * another fd is raw already, -1 on error (errno set). */
int term_raw(int fd, bool signals);

/* Puts back the settings term_raw found, if it changed any. Idempotent. */
void term_restore(void);

/* True while a terminal is in raw mode. */
bool term_is_raw(void);

#endif
