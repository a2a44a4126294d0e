/* The MQTT broker: listeners, connections, sessions and routing on one libuv loop. */
#ifndef BROKER_H
#define BROKER_H

#include "core/config.h"

/*
 * Runs the broker with cfg until SIGTERM or SIGINT. Logs a JSON "ready" line
 * naming every bound listener once it accepts connections. SIGHUP re-reads
 * cfg->config_path (when set) and applies the log level.
 * Returns the process exit code: 0 clean shutdown, 1 configuration or
 * listen error, 2 storage failure.
 */
int broker_run(const struct lmq_config *cfg);

#endif
