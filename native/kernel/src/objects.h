// objects.h - the Filter Manager objects the harness hands to a driver as opaque pointers (PFLT_FILTER,
// PFLT_INSTANCE, PFLT_VOLUME, PFLT_PORT, PFILE_OBJECT's harness side) and what filter.cc, ports.cc and
// image.cc share about them. One filter per image, one volume, one instance per volume.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "harness.h"
#include "image_abi.h"

// The driver object DriverEntry receives: nothing in it is the driver's to read (fltmgr_kernel_nt.h).
struct _DRIVER_OBJECT {
  uint32_t magic;
};

namespace kh {

// The registration copied from FltRegisterFilter's FLT_REGISTRATION.
struct Registration {
  PFLT_PRE_OPERATION_CALLBACK preCreate = nullptr;
  PFLT_POST_OPERATION_CALLBACK postCreate = nullptr;
  PFLT_FILTER_UNLOAD_CALLBACK unload = nullptr;
  PFLT_INSTANCE_SETUP_CALLBACK instanceSetup = nullptr;
  PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK queryTeardown = nullptr;
  struct ContextType {
    FLT_CONTEXT_TYPE type;
    size_t size;  // FLT_VARIABLE_SIZED_CONTEXTS: any size
    uint32_t tag;
    void* cleanup;  // PFLT_CONTEXT_CLEANUP_CALLBACK
  };
  std::vector<ContextType> contexts;
};

// The harness's one volume (\Device\HarddiskVolume1, NTFS, 4096-byte sectors).
struct Volume {
  std::u16string deviceName;
  uint32_t sectorSize;
};
const Volume& TheVolume();

// The image's driver object and its filter, and where the filter is in its life.
struct FilterState {
  std::mutex mutex;
  std::condition_variable idle;  // callbacksInFlight reached 0
  bool registered = false;
  bool started = false;
  bool unregistering = false;
  bool unregistered = false;
  bool instanceAttached = false;
  Registration registration;
  uint32_t callbacksInFlight = 0;  // opens inside pre/post-create
};
FilterState& Filter();
PFLT_FILTER FilterHandle();  // the PFLT_FILTER handed out (valid only while registered)
PFLT_INSTANCE InstanceHandle();
PFLT_VOLUME VolumeHandle();
PDRIVER_OBJECT DriverObject();

// Whether `filter` is the image's registered filter; reports a violation of `routine` otherwise (an
// unknown pointer, or one used after FltUnregisterFilter returned).
bool CheckFilter(PFLT_FILTER filter, const char* routine);
bool CheckInstance(PFLT_INSTANCE instance, const char* routine);

// The instance goes (its context reference with it), as when the filter is unregistered: for an unload whose
// FilterUnloadCallback never called FltUnregisterFilter (that is the violation; what the instance held is not).
void DetachInstance();
// Unload-time checks of filter.cc's objects (contexts, file name information). Returns the count reported.
size_t FilterObjectsReport(const char* routine);
// FltUnregisterFilter's checks (ports.cc): server ports still open (before the connections end), then
// connections whose client port the driver never closed (after every DisconnectNotify ran).
size_t PortsReportOpen(const char* routine);
size_t PortsReportClients(const char* routine);

// ---- Opens (filter.cc) --------------------------------------------------------------------------------
// The record of a simulated open in progress on this thread (what FltReadFile etc. answer from, and the
// trace the result reports).
struct OpenRecord;
OpenRecord* CurrentOpen();
// Appends "routine=0xSTATUS" to the current open's trace (if this thread runs one).
void TraceCall(const char* routine, NTSTATUS status);
// FltSendMessage from an open's thread: keeps the last message and reply for the result.
void TraceSend(NTSTATUS status, const void* data, uint32_t length, const void* reply, uint32_t replyLength);

int32_t OpenFile(const fltmgr_kh_open_request* request, fltmgr_kh_open_result* result);
void ReleaseOpenResult(fltmgr_kh_open_result* result);

// ---- Ports (ports.cc) -------------------------------------------------------------------------------
int32_t PortConnect(uint64_t port, uint64_t client, const Caller& caller, const void* context, uint32_t length);
void PortDisconnect(uint64_t client);
int32_t PortMessage(uint64_t client, const Caller& caller, const void* input, uint32_t inputLength, void* output,
                    uint32_t outputLength, uint32_t* returned);
bool PortAccess(uint64_t port, const Caller& caller, uint32_t desired);

// ---- KMDF (wdf.cc) --------------------------------------------------------------------------------
// EvtDriverUnload registered by WdfDriverCreate, or null.
PFN_WDF_DRIVER_UNLOAD WdfUnloadCallback();
WDFDRIVER WdfDriverHandle();
size_t WdfReport(const char* routine);

}  // namespace kh
