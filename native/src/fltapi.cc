#include "fltapi.h"

#include "../sim/fltsim_manage.h"
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

// Management: adapters for the same two reasons (WINAPI; the endpoint the table passes first is not fltlib's).
HRESULT FltlibLoad(const char*, LPCWSTR name) { return FilterLoad(name); }
HRESULT FltlibUnload(const char*, LPCWSTR name) { return FilterUnload(name); }
HRESULT FltlibFilterFindFirst(const char*, FILTER_INFORMATION_CLASS cls, LPVOID buffer, DWORD size, LPDWORD returned,
                              LPHANDLE find) {
  return FilterFindFirst(cls, buffer, size, returned, find);
}
HRESULT FltlibFilterFindNext(HANDLE find, FILTER_INFORMATION_CLASS cls, LPVOID buffer, DWORD size, LPDWORD returned) {
  return FilterFindNext(find, cls, buffer, size, returned);
}
HRESULT FltlibFilterFindClose(HANDLE find) { return FilterFindClose(find); }
HRESULT FltlibInstanceFindFirst(const char*, LPCWSTR filter, INSTANCE_INFORMATION_CLASS cls, LPVOID buffer, DWORD size,
                                LPDWORD returned, LPHANDLE find) {
  return FilterInstanceFindFirst(filter, cls, buffer, size, returned, find);
}
HRESULT FltlibInstanceFindNext(HANDLE find, INSTANCE_INFORMATION_CLASS cls, LPVOID buffer, DWORD size,
                               LPDWORD returned) {
  return FilterInstanceFindNext(find, cls, buffer, size, returned);
}
HRESULT FltlibInstanceFindClose(HANDLE find) { return FilterInstanceFindClose(find); }
HRESULT FltlibVolumeFindFirst(const char*, FILTER_VOLUME_INFORMATION_CLASS cls, LPVOID buffer, DWORD size,
                              LPDWORD returned, PHANDLE find) {
  return FilterVolumeFindFirst(cls, buffer, size, returned, find);
}
HRESULT FltlibVolumeFindNext(HANDLE find, FILTER_VOLUME_INFORMATION_CLASS cls, LPVOID buffer, DWORD size,
                             LPDWORD returned) {
  return FilterVolumeFindNext(find, cls, buffer, size, returned);
}
HRESULT FltlibVolumeFindClose(HANDLE find) { return FilterVolumeFindClose(find); }
HRESULT FltlibVolumeInstanceFindFirst(const char*, LPCWSTR volume, INSTANCE_INFORMATION_CLASS cls, LPVOID buffer,
                                      DWORD size, LPDWORD returned, LPHANDLE find) {
  return FilterVolumeInstanceFindFirst(volume, cls, buffer, size, returned, find);
}
HRESULT FltlibVolumeInstanceFindNext(HANDLE find, INSTANCE_INFORMATION_CLASS cls, LPVOID buffer, DWORD size,
                                     LPDWORD returned) {
  return FilterVolumeInstanceFindNext(find, cls, buffer, size, returned);
}
HRESULT FltlibVolumeInstanceFindClose(HANDLE find) { return FilterVolumeInstanceFindClose(find); }
HRESULT FltlibAttach(const char*, LPCWSTR filter, LPCWSTR volume, LPCWSTR instance, DWORD createdSize, LPWSTR created) {
  return FilterAttach(filter, volume, instance, createdSize, created);
}
HRESULT FltlibAttachAtAltitude(const char*, LPCWSTR filter, LPCWSTR volume, LPCWSTR altitude, LPCWSTR instance,
                               DWORD createdSize, LPWSTR created) {
  // fltlib declares lpAltitude as LPWSTR though it only reads it.
  return FilterAttachAtAltitude(filter, volume, const_cast<LPWSTR>(altitude), instance, createdSize, created);
}
HRESULT FltlibDetach(const char*, LPCWSTR filter, LPCWSTR volume, LPCWSTR instance) {
  return FilterDetach(filter, volume, instance);
}
HRESULT FltlibGetDosName(const char*, LPCWSTR volume, LPWSTR dosName, DWORD size) {
  return FilterGetDosName(volume, dosName, size);
}

const ManagementApi kFltlibManagementApi = {FltlibLoad,
                                            FltlibUnload,
                                            FltlibFilterFindFirst,
                                            FltlibFilterFindNext,
                                            FltlibFilterFindClose,
                                            FltlibInstanceFindFirst,
                                            FltlibInstanceFindNext,
                                            FltlibInstanceFindClose,
                                            FltlibVolumeFindFirst,
                                            FltlibVolumeFindNext,
                                            FltlibVolumeFindClose,
                                            FltlibVolumeInstanceFindFirst,
                                            FltlibVolumeInstanceFindNext,
                                            FltlibVolumeInstanceFindClose,
                                            FltlibAttach,
                                            FltlibAttachAtAltitude,
                                            FltlibDetach,
                                            FltlibGetDosName,
                                            nullptr,
                                            nullptr,
                                            nullptr};

const FilterApi kFltlibApi = {FltlibConnect,     FltlibGetMessage, FltlibReplyMessage,
                              FltlibSendMessage, FltlibClose,      FltlibAbort};
const FilterApi kSimulatorApi = {SimConnect,        FltSimGetMessage, FltSimReplyMessage,
                                 FltSimSendMessage, FltSimClose,      FltSimAbortPort};
#else
BOOL SimClose(HANDLE port) { return CloseHandle(port); }

const FilterApi kSimulatorApi = {SimConnect,        FilterGetMessage, FilterReplyMessage,
                                 FilterSendMessage, SimClose,         FltSimAbortPort};
#endif

// The simulator clients export the table's signatures as they are (native/sim/fltsim_manage.h).
const ManagementApi kSimulatorManagementApi = {
    FltSimFilterLoad,
    FltSimFilterUnload,
    FltSimFilterFindFirst,
    FltSimFilterFindNext,
    FltSimFilterFindClose,
    FltSimFilterInstanceFindFirst,
    FltSimFilterInstanceFindNext,
    FltSimFilterInstanceFindClose,
    FltSimFilterVolumeFindFirst,
    FltSimFilterVolumeFindNext,
    FltSimFilterVolumeFindClose,
    FltSimFilterVolumeInstanceFindFirst,
    FltSimFilterVolumeInstanceFindNext,
    FltSimFilterVolumeInstanceFindClose,
    FltSimFilterAttach,
    FltSimFilterAttachAtAltitude,
    FltSimFilterDetach,
    FltSimFilterGetDosName,
    FltSimPortFindFirst,
    FltSimPortFindNext,
    FltSimPortFindClose,
};

}  // namespace

const ManagementApi* FltlibManagementApi() {
#if defined(_WIN32)
  return &kFltlibManagementApi;
#else
  return nullptr;
#endif
}

const ManagementApi* SimulatorManagementApi() { return &kSimulatorManagementApi; }

const FilterApi* FltlibFilterApi() {
#if defined(_WIN32)
  return &kFltlibApi;
#else
  return nullptr;
#endif
}

const FilterApi* SimulatorFilterApi() { return &kSimulatorApi; }

}  // namespace fltmgr
