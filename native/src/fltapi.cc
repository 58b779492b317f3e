#include "fltapi.h"

#if defined(_WIN32)
#include "../win/sim_fltlib.h"
#endif

namespace fltmgr {
namespace {

// The simulator's connect takes the endpoint first; no security attributes here.
HRESULT SimConnect(const char* simulatorEndpoint, LPCWSTR name, DWORD options, LPCVOID context, WORD contextSize,
                   HANDLE* port) {
  return FltSimConnectCommunicationPort(simulatorEndpoint, name, options, context, contextSize, nullptr, port);
}

#if defined(_WIN32)
HRESULT FltlibConnect(const char* /*simulatorEndpoint*/, LPCWSTR name, DWORD options, LPCVOID context, WORD contextSize,
                      HANDLE* port) {
  return FilterConnectCommunicationPort(name, options, context, contextSize, nullptr, port);
}
// fltlib's calls are WINAPI (__stdcall on x86); the table's pointers use the default convention, so even the
// calls with the same parameters go through an adapter (on x64 there is one convention and this is free).
HRESULT FltlibGetMessage(HANDLE port, PFILTER_MESSAGE_HEADER buffer, DWORD size, LPOVERLAPPED overlapped) {
  return FilterGetMessage(port, buffer, size, overlapped);
}
HRESULT FltlibReplyMessage(HANDLE port, PFILTER_REPLY_HEADER buffer, DWORD size) {
  return FilterReplyMessage(port, buffer, size);
}
HRESULT FltlibSendMessage(HANDLE port, LPVOID in, DWORD inSize, LPVOID out, DWORD outSize, LPDWORD returned) {
  return FilterSendMessage(port, in, inSize, out, outSize, returned);
}
BOOL FltlibClose(HANDLE port) { return CloseHandle(port); }
HRESULT FltlibAbort(HANDLE port) {
  // ERROR_NOT_FOUND: nothing was pending, which is success here.
  return CancelIoEx(port, nullptr) || GetLastError() == ERROR_NOT_FOUND ? S_OK : HRESULT_FROM_WIN32(GetLastError());
}

const FilterApi kFltlibApi = {FltlibConnect,     FltlibGetMessage, FltlibReplyMessage,
                              FltlibSendMessage, FltlibClose,      FltlibAbort};
const FilterApi kSimulatorApi = {SimConnect,        FltSimGetMessage, FltSimReplyMessage,
                                 FltSimSendMessage, FltSimClose,      FltSimAbortPort};
#else
BOOL SimClose(HANDLE port) { return CloseHandle(port); }

const FilterApi kSimulatorApi = {SimConnect,        FilterGetMessage, FilterReplyMessage,
                                 FilterSendMessage, SimClose,         FltSimAbortPort};
#endif

}  // namespace

const FilterApi* FltlibFilterApi() {
#if defined(_WIN32)
  return &kFltlibApi;
#else
  return nullptr;
#endif
}

const FilterApi* SimulatorFilterApi() { return &kSimulatorApi; }

}  // namespace fltmgr
