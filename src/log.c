/*
** log.c -- formatting and the default sink (stderr) of log.h.
*/
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void log_msg(const Logger *lg, int level, const char *fmt, ...)
{
    if (!log_enabled(lg, level))
        return;
    char msg[LOG_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (lg->fn != NULL)
        lg->fn(lg->ud, level, msg);
    else
        fprintf(stderr, "cachert: %s\n", msg);
}

const char *const log_level_names[] = {"off",  "error", "warn",
                                       "info", "debug", NULL};

const char *log_level_name(int level)
{
    return level >= LOG_OFF && level <= LOG_DEBUG ? log_level_names[level]
                                                  : "off";
}
