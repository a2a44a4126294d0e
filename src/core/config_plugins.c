/*
 * The [plugins] and [plugin.NAME] sections (docs/PROTOCOL.md "Plugins"; README's configuration
 * reference).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_internal.h"
#include "core/lmq.h"

int config_set_plugins(struct lmq_config *cfg, const char *key, const char *value, char *err,
                       size_t err_len)
{
    struct lmq_plugins_config *p = &cfg->plugins;
    if (strcmp(key, "load") == 0) {
        uint32_t count = 0;
        char list[LMQ_PLUGINS_MAX][LMQ_PATH_MAX_BYTES];
        for (const char *s = value; *s != '\0';) {
            while (*s == ' ' || *s == ',')
                s++;
            const char *end = strchr(s, ',');
            size_t n = end != NULL ? (size_t)(end - s) : strlen(s);
            while (n > 0 && s[n - 1] == ' ')
                n--;
            if (n == 0)
                break;
            if (count == LMQ_PLUGINS_MAX || n >= LMQ_PATH_MAX_BYTES) {
                lmq_errf(err, err_len,
                         "[plugins] load: expected at most %d shared object paths, "
                         "comma-separated",
                         LMQ_PLUGINS_MAX);
                return LMQ_EINVAL;
            }
            memcpy(list[count], s, n);
            list[count++][n] = '\0';
            s += n;
        }
        memcpy(p->load, list, sizeof(list));
        p->count = count;
        return 0;
    }
    if (strcmp(key, "slow_us") == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (value[0] < '0' || value[0] > '9' || errno != 0 || *end != '\0' || v < 1 ||
            v > 10000000) {
            lmq_errf(err, err_len,
                     "[plugins] slow_us: expected an integer 1..10000000, got "
                     "\"%.40s\"",
                     value);
            return LMQ_EINVAL;
        }
        p->slow_us = (uint32_t)v;
        return 0;
    }
    lmq_errf(err, err_len, "[plugins] %s: unknown key (expected load or slow_us)", key);
    return LMQ_EINVAL;
}

int config_set_plugin(struct lmq_config *cfg, const char *section, const char *key,
                      const char *value, char *err, size_t err_len)
{
    struct lmq_plugins_config *p = &cfg->plugins;
    const char *name = section + strlen("plugin.");
    size_t n = strlen(name);
    bool ok = n > 0 && n <= LMQ_PLUGIN_NAME_MAX_CHARS;
    for (size_t i = 0; ok && i < n; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
             name[i] == '_';
    if (!ok) {
        lmq_errf(err, err_len, "[%.60s]: a plugin's name is 1..%d characters of a-z 0-9 _", section,
                 LMQ_PLUGIN_NAME_MAX_CHARS);
        return LMQ_EINVAL;
    }
    if (strcmp(key, "args") != 0) {
        lmq_errf(err, err_len, "[plugin.%s] %s: unknown key (expected args)", name, key);
        return LMQ_EINVAL;
    }
    if (strlen(value) >= LMQ_PLUGIN_ARGS_MAX_BYTES) {
        lmq_errf(err, err_len, "[plugin.%s] args: at most %d bytes", name,
                 LMQ_PLUGIN_ARGS_MAX_BYTES - 1);
        return LMQ_EINVAL;
    }
    uint32_t i = 0;
    while (i < p->args_count && strcmp(p->args[i].name, name) != 0)
        i++;
    if (i == LMQ_PLUGINS_MAX) {
        lmq_errf(err, err_len, "[plugin.%s]: at most %d plugin sections", name, LMQ_PLUGINS_MAX);
        return LMQ_EINVAL;
    }
    if (i == p->args_count)
        p->args_count++;
    snprintf(p->args[i].name, sizeof(p->args[i].name), "%s", name);
    snprintf(p->args[i].args, sizeof(p->args[i].args), "%s", value);
    return 0;
}
