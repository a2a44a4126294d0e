/*
 * Subscription tree: topic filters stored level by level, so matching a
 * topic costs O(topic depth x wildcard branches), not O(subscriptions).
 * Subscribers are opaque owner pointers (the broker's sessions).
 */
#ifndef SUB_TREE_H
#define SUB_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sub_tree;

/* What the tree hands to a match callback. Pointers are valid during the callback only. */
struct sub_tree_entry {
    void *owner;
    uint8_t options; /* MQTT subscription options byte (QoS, no-local, RAP, retain handling) */
    uint32_t sub_id; /* subscription identifier, 0 = none */
    const uint8_t *share_group; /* NULL for a non-shared subscription */
    size_t share_group_len;
};

/* Called once per matching non-shared subscription, and once per matching shared group. */
typedef void (*sub_tree_match_cb)(void *ctx, const struct sub_tree_entry *entry);
/* Says whether owner should be preferred for a shared-group delivery (e.g. it is online). */
typedef bool (*sub_tree_eligible_cb)(void *ctx, void *owner);

/* Creates an empty tree. Returns 0 or LMQ_ENOMEM. */
int sub_tree_create(struct sub_tree **out);

/* Frees the tree and every node; owners are not touched. NULL is a no-op. */
void sub_tree_destroy(struct sub_tree *tree);

/*
 * Adds owner's subscription to filter (a valid, non-shared filter: the
 * "$share/group/" prefix already removed and passed as group, or group NULL).
 * If owner already has a subscription on the same (group, filter), its
 * options and sub_id are replaced and *existed is set true, else false.
 * Returns 0 or LMQ_ENOMEM.
 */
int sub_tree_add(struct sub_tree *tree, const uint8_t *filter, size_t filter_len,
                 const uint8_t *group, size_t group_len, void *owner, uint8_t options,
                 uint32_t sub_id, bool *existed);

/* Removes owner's subscription on (group, filter). Returns 0 or LMQ_ENOTFOUND. Frees empty nodes.
 */
int sub_tree_remove(struct sub_tree *tree, const uint8_t *filter, size_t filter_len,
                    const uint8_t *group, size_t group_len, void *owner);

/*
 * Calls cb for every subscription whose filter matches topic (a valid topic
 * name). Each shared group (same group and filter) yields one member, chosen
 * round robin, preferring members for which eligible() returns true
 * (eligible may be NULL). Wildcards in the first level never match topics
 * beginning with '$'. The tree must not be modified from inside cb.
 */
void sub_tree_match(struct sub_tree *tree, const uint8_t *topic, size_t topic_len,
                    sub_tree_match_cb cb, sub_tree_eligible_cb eligible, void *ctx);

/* Number of subscriptions in the tree (shared members counted one each). */
size_t sub_tree_count(const struct sub_tree *tree);

/* Number of nodes, the root included (1 for an empty tree). For tests and metrics. */
size_t sub_tree_node_count(const struct sub_tree *tree);

/*
 * Test-only fault injection: the nth allocation made by the tree from now on
 * fails (1 = the next one), once; 0 turns it off.
 */
void sub_tree_test_fail_alloc(struct sub_tree *tree, uint32_t nth);

#endif
