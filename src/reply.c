/*
** reply.c -- the reply objects of reply.h. Each is one malloc block: a
** header, the redisReply, then a string's bytes (NUL-terminated) or an
** array's element vector. hiredis's own functions take two blocks for a
** string, and a GET's value was copied once more to outlive the callback.
*/
#include "reply.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct Block {
    bool kept; /* reply_keep: reply_free leaves it to reply_release */
    redisReply r;
} Block;

/* The block of `r` (replies are handed out const; the block is ours). */
static Block *block_of(const redisReply *r)
{
    return (Block *)((uintptr_t)r - offsetof(Block, r));
}

/* A new object of `type` with `extra` bytes after it, linked into its
** parent array as hiredis's own functions do. */
static redisReply *create(const redisReadTask *task, int type, size_t extra)
{
    Block *b = malloc(sizeof(*b) + extra);
    if (b == NULL)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->r.type = type;
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = &b->r;
    }
    return &b->r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = create(task, task->type, len + 1);
    if (r == NULL)
        return NULL;
    r->str = (char *)(block_of(r) + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    redisReply *r = create(task, REDIS_REPLY_ARRAY, n * sizeof(redisReply *));
    if (r == NULL)
        return NULL;
    if (n > 0) {
        r->element = (redisReply **)(void *)(block_of(r) + 1);
        memset(r->element, 0, n * sizeof(redisReply *));
    }
    r->elements = n;
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = create(task, REDIS_REPLY_INTEGER, 0);
    if (r != NULL)
        r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return create(task, REDIS_REPLY_NIL, 0);
}

/* Frees `r` and its elements (an array cut short by an error has NULL
** ones past where the reader stopped). */
static void destroy(redisReply *r)
{
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i] != NULL)
                destroy(r->element[i]);
    free(block_of(r));
}

static redisReplyObjectFunctions functions = {
    .createString = create_string,
    .createArray = create_array,
    .createInteger = create_integer,
    .createNil = create_nil,
    .freeObject = reply_free,
};

redisReader *reply_reader_new(void)
{
    return redisReaderCreateWithFunctions(&functions);
}

void reply_free(void *reply)
{
    if (reply != NULL && !block_of(reply)->kept)
        destroy(reply);
}

const redisReply *reply_keep(const redisReply *reply)
{
    block_of(reply)->kept = true;
    return reply;
}

void reply_release(const redisReply *reply)
{
    if (reply != NULL)
        destroy(&block_of(reply)->r);
}
