// Private to the POSIX compat layer: the simulator stream socket, shared by the port (compat_fltlib.cc) and
// the management requests (compat_manage.cc).
#pragma once

#include <sys/socket.h>

#include "../sim/session.h"
#include "../sim/wire.h"
#include "win32.h"

namespace fltmgr {
namespace compat {

#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // macOS: SO_NOSIGPIPE is set on the socket instead
#endif

// Blocking connect to a unix or tcp endpoint, bounded by the deadline (SO_SNDTIMEO, set to what is left of
// it, also bounds later writes; EINTR is resumed). Close-on-exec, no SIGPIPE. Returns the fd, or -1 with *hr
// set (ERROR_FILE_NOT_FOUND when nobody serves the endpoint, as when the minifilter is not there).
int OpenSocket(const wire::Endpoint& ep, sim::Clock::time_point deadline, HRESULT* hr);

}  // namespace compat
}  // namespace fltmgr
