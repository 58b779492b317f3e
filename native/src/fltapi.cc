#include "fltapi.h"

#if defined(_WIN32)
#include "../compat/win/sim_fltlib.h"
#endif

namespace fltmgr {
namespace {

#if defined(_WIN32)
HRESULT SystemConnect(const char* /*simulatorEndpoint*/, LPCWSTR name, DWORD options, LPCVOID context,
                      WORD contextSize, HANDLE* port) {
  return FilterConnectCommunicationPort(name, options, context, contextSize, nullptr, port);
}
// fltlib's calls are WINAPI (__stdcall on x86); the table's pointers use the default convention, so even the
// calls with the same parameters go through an adapter (on x64 there is one convention and this is free).
HRESULT SystemGetMessage(HANDLE port, PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped) {
  return FilterGetMessage(port, buffer, size, overlapped);
}
HRESULT SystemReplyMessage(HANDLE port, PFILTER_REPLY_HEADER buffer, DWORD size) {
  return FilterReplyMessage(port, buffer, size);
}
HRESULT SystemSendMessage(HANDLE port, LPVOID in, DWORD inSize, LPVOID out, DWORD outSize, LPDWORD returned) {
  return FilterSendMessage(port, in, inSize, out, outSize, returned);
}
BOOL SystemClose(HANDLE port) { return CloseHandle(port); }
HRESULT SystemAbort(HANDLE port) {
  // ERROR_NOT_FOUND: nothing was pending, which is success here.
  return CancelIoEx(port, nullptr) || GetLastError() == ERROR_NOT_FOUND ? S_OK : HRESULT_FROM_WIN32(GetLastError());
}

const FilterApi kSystemApi = {SystemConnect, SystemGetMessage, SystemReplyMessage,
                              SystemSendMessage, SystemClose, SystemAbort};
const FilterApi kSimulatorApi = {FltSimConnect, FltSimGetMessage, FltSimReplyMessage,
                                 FltSimSendMessage, FltSimClose, FltSimAbortPort};
#else
HRESULT SimConnect(const char* simulatorEndpoint, LPCWSTR name, DWORD options, LPCVOID context,
                   WORD contextSize, HANDLE* port) {
  return FltSimConnectCommunicationPort(simulatorEndpoint, name, options, context, contextSize, nullptr, port);
}
BOOL SimClose(HANDLE port) { return CloseHandle(port); }

const FilterApi kSimulatorApi = {SimConnect, FilterGetMessage, FilterReplyMessage,
                                 FilterSendMessage, SimClose, FltSimAbortPort};
#endif

}  // namespace

const FilterApi* SystemFilterApi() {
#if defined(_WIN32)
  return &kSystemApi;
#else
  return nullptr;
#endif
}

const FilterApi* SimulatorFilterApi() { return &kSimulatorApi; }

}  // namespace fltmgr
