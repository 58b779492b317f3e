#include "fltapi.h"

#if defined(_WIN32)
#include "../win/sim_fltlib.h"
#endif

namespace fltmgr {
namespace {

// The simulator's connect takes the endpoint first; no security attributes here.
HRESULT SimConnect(const char* simulatorEndpoint, LPCWSTR name, DWORD options, LPCVOID context,
                   WORD contextSize, HANDLE* port) {
  return FltSimConnectCommunicationPort(simulatorEndpoint, name, options, context, contextSize, nullptr, port);
}

#if defined(_WIN32)
HRESULT SystemConnect(const char* /*simulatorEndpoint*/, LPCWSTR name, DWORD options, LPCVOID context,
                      WORD contextSize, HANDLE* port) {
  return FilterConnectCommunicationPort(name, options, context, contextSize, nullptr, port);
}
BOOL SystemClose(HANDLE port) { return CloseHandle(port); }
HRESULT SystemAbort(HANDLE port) {
  // ERROR_NOT_FOUND: nothing was pending, which is success here.
  return CancelIoEx(port, nullptr) || GetLastError() == ERROR_NOT_FOUND ? S_OK : HRESULT_FROM_WIN32(GetLastError());
}

const FilterApi kSystemApi = {SystemConnect, FilterGetMessage, FilterReplyMessage,
                              FilterSendMessage, SystemClose, SystemAbort};
const FilterApi kSimulatorApi = {SimConnect, FltSimGetMessage, FltSimReplyMessage,
                                 FltSimSendMessage, FltSimClose, FltSimAbortPort};
#else
BOOL SimClose(HANDLE port) { return CloseHandle(port); }

const FilterApi kSimulatorApi = {SimConnect, FilterGetMessage, FilterReplyMessage,
                                 FilterSendMessage, SimClose, FltSimAbortPort};
#endif

}  // namespace

const FilterApi* FltlibFilterApi() {
#if defined(_WIN32)
  return &kSystemApi;
#else
  return nullptr;
#endif
}

const FilterApi* SimulatorFilterApi() { return &kSimulatorApi; }

}  // namespace fltmgr
