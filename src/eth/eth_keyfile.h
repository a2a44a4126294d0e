/*
 * The sealing key file (`ledgermq keygen --eth FILE`): a secp256k1 private key for sending
 * Ethereum transactions, kept apart from identity keys (Ed25519 JWKs) so that neither can be
 * used as the other. One JSON object, mode 0600:
 *   {"type":"ledgermq-eth-key","version":1,"address":"0x<EIP-55>","private_key":"0x<64 hex>"}
 */
#ifndef ETH_KEYFILE_H
#define ETH_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"
#include "eth/eth_key.h"

#define ETH_KEYFILE_TYPE "ledgermq-eth-key"
#define ETH_KEYFILE_MAX_BYTES 4096

/* Writes a new key file at path (never overwriting: LMQ_EEXIST), 0600, synced, created
 * atomically (a crash leaves no half file under path). Returns 0, LMQ_EEXIST, LMQ_EINVAL (bad
 * key, path too long) or LMQ_EIO; err says why. */
int eth_keyfile_save(const char *path, const uint8_t priv[ETH_PRIVKEY_BYTES], char *err,
                     size_t err_len) LMQ_WUR;
/* Reads a key file: the private key and its address. Refuses (LMQ_EPROTO) anything but this
 * format, an identity key file by name, a key whose address is not the one written beside it,
 * and (LMQ_EIO) a file others can read. err says why. */
int eth_keyfile_load(const char *path, uint8_t priv[ETH_PRIVKEY_BYTES],
                     uint8_t addr[ETH_ADDRESS_BYTES], char *err, size_t err_len) LMQ_WUR;

#endif
