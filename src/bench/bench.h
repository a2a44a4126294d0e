/*
 * `ledgermq bench`: a load generator for any MQTT 3.1.1/5.0 broker. One
 * process, one libuv loop, many connections, every packet through the
 * project's codec (mqtt_codec.h).
 */
#ifndef BENCH_H
#define BENCH_H

/*
 * Runs the load generator with the arguments after "bench" (argv[0] is the
 * first option). Prints the report on stdout and errors on stderr, and
 * returns the process exit code: 0 success, 1 usage error (one line on
 * stderr), 2 the broker refused or disconnected unexpectedly.
 */
int bench_main(int argc, char **argv);

#endif
