/*
** status.h -- status codes shared by every layer.
**
** Functions that can fail return int: CR_OK (0) or a negative CR_E* code.
** One X-macro list is the single source of the enum, the names and the
** messages. Messages are lowercase with no final period.
*/
#ifndef CACHERT_STATUS_H
#define CACHERT_STATUS_H

#define CR_STATUS_MAP(X)                                                       \
    X(ENOMEM, "out of memory")                                                 \
    X(EINVAL, "invalid argument")                                              \
    X(ETOOBIG, "entry is larger than the store's byte limit")                  \
    X(ECORRUPT, "stored value could not be decoded")                           \
    X(ETIMEDOUT, "operation timed out")                                        \
    X(ECONNREFUSED, "could not connect to redis")                              \
    X(ECONNRESET, "connection to redis lost")                                  \
    X(EAUTH, "redis refused the login or the database")                        \
    X(EPROTO, "redis protocol error")                                          \
    X(EREPLY, "redis replied with an error")                                   \
    X(EVALUETOOBIG, "value is larger than the value size limit")               \
    X(ENOPERM, "the redis user lacks a permission cachert needs")              \
    X(EREADONLY, "redis is a read-only replica")                               \
    X(EREJECTED, "redis refused the connection")                               \
    X(ETLS, "TLS error")                                                       \
    X(ECLUSTERDOWN, "redis cluster cannot serve this slot now")

enum {
    CR_OK = 0,
#define CR_STATUS_ENUM(name, msg) CR_##name,
    CR_STATUS_FIRST_ = -100,
    CR_STATUS_MAP(CR_STATUS_ENUM)
#undef CR_STATUS_ENUM
};

/* Returns a static message for `code` ("ok" for CR_OK, "unknown error" for
** anything else). Never NULL. */
const char *cr_strerror(int code);

/* Returns the static name of `code`, e.g. "ETIMEDOUT"; "OK" for CR_OK. */
const char *cr_errname(int code);

#endif
