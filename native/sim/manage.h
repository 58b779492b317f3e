// Management requests to the Filter Manager simulator (docs/wire-protocol.md, "Management requests"), the
// client half shared by both simulator clients: MANAGE encoding, strict MANAGE_RESULT decoding, the typed
// records, building fltlib's Windows records into a caller's buffer, and the find state (snapshot + cursor).
// It also implements the FltSim* management calls (native/sim/fltsim_manage.h) once, over what each client
// supplies (Host: the endpoint default, the stream, find handles). Portable C++17, no OS calls.
//
//   native/compat/compat_manage.cc  Host over a unix/tcp socket, find handles = compat handles;
//   native/win/sim_manage.cc        Host over a named pipe or TCP (the relay's upstream), handle registry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../compat/win32.h"
#include "fltsim_manage.h"
#include "session.h"
#include "wire.h"

namespace fltmgr {
namespace manage {

enum class Op : uint32_t {
  kFilters = 1,
  kInstances = 2,
  kVolumes = 3,
  kLoad = 4,
  kUnload = 5,
  kAttach = 6,
  kDetach = 7,
  kDosName = 8,
  kPorts = 9,
};

constexpr HRESULT kHrNoMoreItems = HresultFromWin32(259);  // ERROR_NO_MORE_ITEMS: the end of a find
constexpr size_t kMaxStringBytes = 65534;                  // u16 byteLength, even
constexpr size_t kManagePrefixSize = 4 + 4 + 2;            // u32 op, u32 clientPid, u16 argCount
constexpr size_t kResultPrefixSize = 4 + 4;                // i32 hresult, u32 count

// What a string argument or field is on the wire: UTF-16 code units (no terminator).
using Str = std::u16string;

struct FilterRecord {
  uint32_t flags = 0;  // FLTFL_AGGREGATE_INFO_IS_MINIFILTER (1) / _LEGACYFILTER (2)
  uint32_t frameId = 0;
  uint32_t instances = 0;
  Str name;
  Str altitude;
};
struct InstanceRecord {
  uint32_t flags = 0;
  uint32_t frameId = 0;
  uint32_t fileSystemType = 0;  // FLT_FILESYSTEM_TYPE of the volume
  Str instance;
  Str altitude;
  Str volume;
  Str filter;
};
struct VolumeRecord {
  uint32_t flags = 0;  // FLTFL_VSI_DETACHED_VOLUME
  uint32_t frameId = 0;
  uint32_t fileSystemType = 0;
  Str volume;
  Str dosName;  // "" when none
};
struct PortRecord {
  uint32_t maxConnections = 0;
  uint32_t connections = 0;
  Str port;
  Str filter;
};

// A decoded MANAGE_RESULT. Only the list of the request's op is filled; `name` for ATTACH (the created
// instance) and DOS_NAME.
struct Result {
  HRESULT hr = S_OK;
  std::vector<FilterRecord> filters;
  std::vector<InstanceRecord> instances;
  std::vector<VolumeRecord> volumes;
  std::vector<PortRecord> ports;
  Str name;
};

// The number of string arguments each op carries; -1 for an op this client does not know.
int ArgCount(Op op);

// A whole MANAGE frame (header + payload). args: argCount strings (null = "" = not given). E_INVALIDARG if a
// string is longer than kMaxStringBytes or the op's argCount differs; E_OUTOFMEMORY.
HRESULT EncodeManage(Op op, uint32_t clientPid, const Str* args, size_t argCount, const std::string& secret,
                     std::vector<uint8_t>* frame);

// Decodes a MANAGE_RESULT payload for op, strictly: every size within the payload, even string lengths, no
// trailing bytes, no records with a failure, exactly the records the op answers with (one for ATTACH and
// DOS_NAME on success, none for LOAD/UNLOAD/DETACH). False: a protocol error. May throw std::bad_alloc.
bool DecodeManageResult(Op op, const uint8_t* payload, uint32_t size, Result* out);

// --- Windows records ------------------------------------------------------------------------------------
// Each writes ONE record (NextEntryOffset 0) for infoClass into buffer, or fails: E_INVALIDARG for a class
// the kind has not (or a null *returned), HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER) with *returned = the
// size needed, HRESULT_FROM_WIN32(ERROR_INVALID_DATA) if a name cannot be described by the record's USHORT
// fields. *returned = bytes written on success.
HRESULT BuildFilterRecord(const FilterRecord& r, int infoClass, void* buffer, DWORD size, DWORD* returned);
HRESULT BuildInstanceRecord(const InstanceRecord& r, int infoClass, void* buffer, DWORD size, DWORD* returned);
HRESULT BuildVolumeRecord(const VolumeRecord& r, int infoClass, void* buffer, DWORD size, DWORD* returned);
HRESULT BuildPortRecord(const PortRecord& r, void* buffer, DWORD size, DWORD* returned);

// --- find state -----------------------------------------------------------------------------------------
enum class FindKind { kFilters, kInstances, kVolumes, kPorts };

// One enumeration: the simulator's answer, taken once by FindFirst, and a cursor. Thread-safe.
class FindState {
 public:
  FindState(FindKind kind, Result snapshot) : kind_(kind), snapshot_(std::move(snapshot)) {}
  FindKind kind() const { return kind_; }
  // The record at the cursor, then advances; a buffer too small does not advance. kHrNoMoreItems at the end.
  // FilterFullInformation skips legacy filters (fltlib documents it as minifilters only).
  HRESULT Next(int infoClass, void* buffer, DWORD size, DWORD* returned);

 private:
  size_t CountLocked() const;
  const FindKind kind_;
  std::mutex mutex_;
  const Result snapshot_;
  size_t cursor_ = 0;
};

// --- the client's part ----------------------------------------------------------------------------------
// A blocking byte stream to the simulator, carrying one request.
class Stream {
 public:
  virtual ~Stream() = default;
  virtual bool WriteAll(const uint8_t* data, size_t size) = 0;
  // Bytes read (> 0), kEnded (EOF or error) or kTimedOut. timeoutMs >= 0.
  static constexpr long kEnded = -1;
  static constexpr long kTimedOut = -2;
  virtual long Read(uint8_t* at, size_t room, int timeoutMs) = 0;
};

class Host {
 public:
  virtual ~Host() = default;
  // The endpoint used when a call passes none (FLTMGR_SIMULATOR); false when unset.
  virtual bool DefaultEndpoint(std::string* out) = 0;
  // FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS, nullptr/false when unset.
  virtual bool ConnectTimeoutSetting(std::string* out) = 0;
  // The endpoint kind this client cannot reach (POSIX: pipe; Windows: unix).
  virtual wire::Endpoint::Kind Unreachable() const = 0;
  virtual uint32_t ProcessId() const = 0;
  // Connects within the deadline: S_OK and *out, or the failure (ERROR_FILE_NOT_FOUND: nobody there).
  virtual HRESULT Open(const wire::Endpoint& ep, sim::Clock::time_point deadline, std::unique_ptr<Stream>* out) = 0;
  // Find handles: a new handle owning the state (nullptr when out of resources); the state of a handle of that
  // kind (null otherwise); closing one (false: not a find handle).
  virtual HANDLE InsertFind(std::shared_ptr<FindState> state) = 0;
  virtual std::shared_ptr<FindState> LookupFind(HANDLE h) = 0;
  virtual bool CloseFind(HANDLE h) = 0;
};

// Each client's Host (one per process).
Host& ThisHost();

// One request: connect, MANAGE, read the MANAGE_RESULT (connect timeout bound), close. The HRESULT of the
// exchange (no endpoint: ERROR_FILE_NOT_FOUND; a malformed answer: ERROR_INVALID_DATA), else the simulator's
// (out->hr, also returned).
HRESULT Request(Host& host, const char* endpoint, Op op, const Str* args, size_t argCount, Result* out);

}  // namespace manage
}  // namespace fltmgr
