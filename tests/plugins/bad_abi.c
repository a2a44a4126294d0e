/* A plugin built for another ABI version: the server must refuse to start with it
 * (tests/integration/test_plugins.py). */
#include <ledgermq/plugin.h>

static const struct lmq_plugin bad_abi_plugin = {
    .abi_version = LMQ_PLUGIN_ABI_VERSION + 98,
    .name = "bad_abi",
};

const struct lmq_plugin *ledgermq_plugin_entry(void)
{
    return &bad_abi_plugin;
}
