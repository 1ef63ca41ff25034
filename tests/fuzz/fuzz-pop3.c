/*
 * fuzz-pop3.c - libFuzzer target for pop3.so: arbitrary client bytes
 * through the real POP3 session state machine (pop3-session.c), the
 * commands (pop3-commands.c), the parser, UIDL and dot-stuffing code, on
 * the fake core of proto-pop3/test-pop3-session.c (conn with an output
 * that fills up, auth answered from the "loop", an in-memory INBOX that
 * records expunges). The driver is the pop3 owner's
 * proto-pop3/fuzz-pop3-session.c, reused whole so there is one harness:
 * byte 0 picks the output high-water mark, STLS availability and whether
 * to log in first (so TRANSACTION is reached), byte 1 the chunk size.
 *
 * Why the fake core rather than a real conn over a socketpair: the session
 * only talks to the core through conn.h/auth.h/store.h, so the fake runs
 * exactly the plugin code a client reaches, deterministically, ~10x
 * faster than a loop round trip per chunk, and it can assert what a real
 * core cannot see (only QUIT in TRANSACTION expunges, no store handle
 * leaked). The core's own conn input path is covered by tests/net.
 */
#include "fuzz-pop3-session.c"
