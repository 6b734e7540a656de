// The C surface Tern uses: hiredis (Debian's libhiredis-dev 0.14) plus the few
// POSIX calls its connection loop needs that Swift's Glibc module does not expose.
#ifndef TERN_CHIREDIS_SHIM_H
#define TERN_CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

/// Clears hiredis's blocking flag so `redisBufferRead`/`redisBufferWrite` treat EAGAIN as "try later".
static inline void tern_redis_set_nonblocking(redisContext *c) {
    int flags = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
    c->flags &= ~REDIS_BLOCK;
}

/// Whether hiredis still holds bytes it has not written to the socket.
static inline int tern_redis_has_pending_output(const redisContext *c) {
    return c->obuf != NULL && sdslen(c->obuf) > 0;
}

#endif
