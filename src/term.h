/* The controlling terminal in raw mode, and its restoration on every way
 * out: the end of a run, exit(), and the fatal signals (SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGABRT), after which the signal takes its course.
 *
 * One terminal at a time: the process has one stdin, and only one console
 * may read it. */
#ifndef LUAVMM_TERM_H
#define LUAVMM_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- for console devices (the UART, virtio-console) ---- */

/* stdin as a console's input: one device in the process at a time.
 * `owner` is the device, `what` names it in messages ("the UART at port
 * 0x3f8"). Returns true when the caller has it now (or had it already);
 * false when another device has it, whose name goes to holder (n bytes). */
bool term_claim_stdin(const void *owner, const char *what, char *holder, size_t n);

/* Gives stdin back, if owner has it. */
void term_release_stdin(const void *owner);

/* At the start of a run of a console whose input is the terminal on fd:
 * the escape hint on stderr once per device (*hinted), and raw mode, with
 * Ctrl-C still a signal when there is no escape to end the run. Returns
 * whether it took the terminal: then term_restore() at the run's end. */
bool term_console_begin(int fd, bool escape, bool *hinted);

/* The console escape on input. Ctrl-A x ends the run; Ctrl-A Ctrl-A is one
 * Ctrl-A for the guest; Ctrl-A then anything else is both bytes. A Ctrl-A
 * at the end of one read waits for the next (pending). */
#define TERM_ESCAPE_CHAR 0x01
struct term_escape {
  bool pending;
};

/* Filters n bytes read from the input into out, which has room for 2n
 * bytes. Returns the bytes for the guest; *quit is set at Ctrl-A x, and
 * whatever followed it in `in` is dropped (it was not meant for this run). */
size_t term_escape_filter(struct term_escape *e, const uint8_t *in, size_t n, uint8_t *out,
                          bool *quit);

#endif
