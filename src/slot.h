/*
** slot.h -- Redis Cluster key slots: which of the 16384 hash slots a key
** belongs to, exactly as a cluster node computes it (CLUSTER KEYSLOT).
**
** slot = CRC16-XMODEM(h) mod 16384, where h is the key's hash tag when it
** has one, else the whole key. The hash tag is the bytes between the first
** '{' and the first '}' after it, provided there is at least one byte
** between them: "{user1}.name" -> "user1"; "foo{}{bar}" -> the whole key
** (the first tag is empty); "foo{{bar}}zap" -> "{bar". Keys are binary
** safe (explicit length, NUL bytes allowed). Pure functions of their
** input: no state, safe from any thread, O(len).
*/
#ifndef CACHERT_SLOT_H
#define CACHERT_SLOT_H

#include <stddef.h>
#include <stdint.h>

/* The number of hash slots in a Redis Cluster; slots are 0..SLOT_COUNT-1. */
#define SLOT_COUNT 16384

/* CRC16-XMODEM (polynomial 0x1021, initial value 0, no reflection, no
** final xor) of `len` bytes at `buf` (may be NULL when len is 0).
** "123456789" gives 0x31C3. */
uint16_t slot_crc16(const char *buf, size_t len);

/* The cluster slot (0..SLOT_COUNT-1) of `key` (`len` bytes, binary safe;
** NULL only with len 0): CRC16 of its hash tag or of the whole key, see
** the top. The empty key is slot 0. */
uint16_t slot_of(const char *key, size_t len);

#endif
