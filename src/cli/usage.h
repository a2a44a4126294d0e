/*
 * The usage text of every ledgermq command, in one table: `ledgermq help`, `ledgermq help CMD`
 * and `ledgermq CMD --help|-h` print from it (and man pages can be generated from it). Each text
 * reads: "usage: " and the synopsis (continuation lines indented), a blank line, what the command
 * does, "options:", then "exit codes:".
 */
#ifndef LMQ_CLI_USAGE_H
#define LMQ_CLI_USAGE_H

#include <stdbool.h>
#include <stdio.h>

struct cli_usage {
    const char *name;    /* the command, as typed after "ledgermq" */
    const char *summary; /* one line: what it does (`ledgermq help`, a man page's NAME) */
    const char *text;    /* the whole usage text, ending in a newline */
};

/* The entry of command name, or NULL when there is no such command. */
const struct cli_usage *cli_usage_find(const char *name);

/* Prints the usage text of command name (which must exist) to f. */
void cli_usage_print(FILE *f, const char *name);

/* Prints the overview of every command (`ledgermq help`) to f. */
void cli_usage_print_all(FILE *f);

/* True when an argument asks for help ("--help" or "-h"). */
bool cli_usage_asks_help(int argc, char **argv);

#endif
