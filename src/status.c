/*
** status.c -- names and messages of the CR_* status codes.
*/
#include "status.h"

const char *cr_strerror(int code)
{
    switch (code) {
    case CR_OK:
        return "ok";
#define CR_STATUS_MSG(name, msg)                                               \
    case CR_##name:                                                            \
        return msg;
        CR_STATUS_MAP(CR_STATUS_MSG)
#undef CR_STATUS_MSG
    }
    return "unknown error";
}

const char *cr_errname(int code)
{
    switch (code) {
    case CR_OK:
        return "OK";
#define CR_STATUS_NAME(name, msg)                                              \
    case CR_##name:                                                            \
        return #name;
        CR_STATUS_MAP(CR_STATUS_NAME)
#undef CR_STATUS_NAME
    }
    return "EUNKNOWN";
}
