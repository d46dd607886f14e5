/*
** log.h -- the one way cachert's C code reports what happens: a level and
** a message, through the owner's function (cache.on_log in Lua), or one
** line "cachert: <message>" on stderr by default.
**
** Levels, from the most to the least severe: error, warn (the default:
** outages and refusals), info (state changes: connected, replay done),
** debug (every reconnect attempt). A Logger drops messages less severe
** than its level; LOG_OFF drops all.
*/
#ifndef CACHERT_LOG_H
#define CACHERT_LOG_H

#include <stdint.h>

enum { LOG_OFF = 0, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

#define LOG_MESSAGE_MAX 512 /* bytes of one message, NUL included */

/* Receives one message (valid during the call only). */
typedef void (*log_fn)(void *ud, int level, const char *message);

typedef struct Logger {
    int level; /* LOG_OFF .. LOG_DEBUG */
    log_fn fn; /* NULL: one line on stderr */
    void *ud;
} Logger;

/* True when `lg` keeps messages of `level`. */
static inline int log_enabled(const Logger *lg, int level)
{
    return level != LOG_OFF && level <= lg->level;
}

/* Formats and hands over one message when `lg` keeps `level`. */
void log_msg(const Logger *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The level names indexed by level, "off" first, then NULL. */
extern const char *const log_level_names[];

/* "error", "warn", "info", "debug" ("off" for LOG_OFF). */
const char *log_level_name(int level);

#endif
