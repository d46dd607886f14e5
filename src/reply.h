/*
** reply.h -- the replies a connection's reader builds (conn.c): each object
** in one block with its bytes (a string's, an array's element vector), and
** a way to keep a reply past the callback it was handed to.
**
** Ownership: the connection owns every reply and frees it with reply_free()
** once the reply's callback returned, unless the callback kept it with
** reply_keep(); a kept reply belongs to the keeper, who frees it with
** reply_release(). So a GET's value is read in place from the reply when
** the request completes, never copied. The layout is not hiredis's: a reply
** from reply_reader_new() must never go to freeReplyObject(), nor one from
** elsewhere (redisCommand, a reply made on the stack) to reply_keep(),
** reply_free() or reply_release(). RESP2 only (hiredis 0.14's types).
*/
#ifndef CACHERT_REPLY_H
#define CACHERT_REPLY_H

#include <hiredis/hiredis.h>

/* A reader whose replies are built here (free it with redisReaderFree).
** NULL when out of memory. */
redisReader *reply_reader_new(void);

/* Frees a whole reply (its elements included) unless it was kept. */
void reply_free(void *reply);

/* Keeps `reply`, a whole reply as the connection hands it to a callback
** (never one of its elements), past that callback; returns it. */
const redisReply *reply_keep(const redisReply *reply);

/* Frees a reply kept with reply_keep(). NULL does nothing. */
void reply_release(const redisReply *reply);

#endif
