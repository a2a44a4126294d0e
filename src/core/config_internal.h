/*
 * What config.c's sections in other files offer it (config_webhooks.c). Not part of config.h.
 */
#ifndef LMQ_CONFIG_INTERNAL_H
#define LMQ_CONFIG_INTERNAL_H

#include <stddef.h>

struct lmq_config;

/* [webhook.NAME] key = value (section is the whole "webhook.NAME"). 0 or LMQ_EINVAL. */
int config_set_webhook(struct lmq_config *cfg, const char *section, const char *key,
                       const char *value, char *err, size_t err_len);
/* [events] key = value. 0 or LMQ_EINVAL. */
int config_set_events(struct lmq_config *cfg, const char *key, const char *value, char *err,
                      size_t err_len);
/* [plugins] key = value (config_plugins.c). 0 or LMQ_EINVAL. */
int config_set_plugins(struct lmq_config *cfg, const char *key, const char *value, char *err,
                       size_t err_len);
/* [plugin.NAME] key = value. 0 or LMQ_EINVAL. */
int config_set_plugin(struct lmq_config *cfg, const char *section, const char *key,
                      const char *value, char *err, size_t err_len);
/* [seal] key = value (config_seal.c). 0 or LMQ_EINVAL. */
int config_set_seal(struct lmq_config *cfg, const char *key, const char *value, char *err,
                    size_t err_len);
/* [seal] has rpc, key_file and chain_id when any key is set. 0 or LMQ_EINVAL. */
int config_validate_seal(const struct lmq_config *cfg, char *err, size_t err_len);
/* Every webhook has its url and secret. 0 or LMQ_EINVAL. */
/* [chain] key = value (config_chain.c). 0 or LMQ_EINVAL. */
int config_set_chain(struct lmq_config *cfg, const char *key, const char *value, char *err,
                     size_t err_len);
/* Defaults of [chain] (config_chain.c). */
void config_chain_defaults(struct lmq_config *cfg);
int config_validate_webhooks(const struct lmq_config *cfg, char *err, size_t err_len);

#endif
