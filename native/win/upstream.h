// Private to the Windows simulator client: environment reads and the byte stream to the simulator (a named pipe or TCP
// loopback, docs/wire-protocol.md), shared by a port's relay (sim_fltlib.cc) and the management requests
// (sim_manage.cc). Implemented in sim_fltlib.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "../compat/win32.h"
#include "../sim/session.h"
#include "../sim/wire.h"

namespace fltmgr {
namespace winsim {

// An environment variable's value (GetEnvironmentVariableA at call time); false when unset.
bool ReadEnv(const char* name, std::string* out);

class Upstream {
 public:
  virtual ~Upstream() = default;
  // Starts an overlapped read; false if it failed at once (the stream is over).
  virtual bool StartRead(uint8_t* buffer, DWORD size) = 0;
  virtual HANDLE ReadEvent() const = 0;
  // After ReadEvent() is signalled (or with wait = true, blocking): bytes read (> 0), 0 = end of stream,
  // -1 = error, -2 = a zero-length pipe message (read again).
  virtual long FinishRead(bool wait) = 0;
  // Writes everything (blocking). Callers serialise.
  virtual bool WriteAll(const uint8_t* data, size_t size) = 0;
  // Cancels every operation on the stream (unblocks the reader and writers).
  virtual void CancelAll() = 0;
};

// Connects to a pipe or tcp endpoint within the deadline: S_OK, or the failure (ERROR_FILE_NOT_FOUND when
// nobody serves it, as when the minifilter is not there).
HRESULT OpenUpstream(const wire::Endpoint& ep, sim::Clock::time_point deadline, std::unique_ptr<Upstream>* out);

// One blocking read of at most room bytes, waiting at most timeoutMs (< 0: no limit): what
// sim::Session::ReadUpstream returns (bytes, 0 = read again, kReadEnded, kReadTimedOut, as -1 and -2).
long ReadUpstreamFor(Upstream& up, uint8_t* at, size_t room, int timeoutMs);

}  // namespace winsim
}  // namespace fltmgr
