/* Placeholder translation unit so the ledger library exists before its first module lands. */
#include "crypto/hash.h"
