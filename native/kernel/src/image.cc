// image.cc - the image's entry point (image_abi.h): DriverEntry, the unload Filter Manager performs, and
// the calls the host makes for the simulator (connects, messages, opens), with the end-of-image checks.
#include "core.h"
#include "harness.h"
#include "objects.h"
#include "status.h"

extern "C" {
DRIVER_INITIALIZE DriverEntry;  // every image's driver defines it
__attribute__((weak)) NTSTATUS FltmgrHarnessQuery(ULONG Code, PVOID Buffer, ULONG Length, PULONG Returned);
}

namespace kh {
namespace {

Caller ToCaller(const fltmgr_kh_caller* c) {
  Caller caller;
  caller.processId = c->process_id;
  caller.admin = c->admin != 0 || c->system != 0;
  caller.system = c->system != 0;
  caller.uid = c->uid;
  caller.gid = c->gid;
  return caller;
}

// What must be gone once a driver is: reported as violations of `routine`.
void EndOfImageChecks(const char* routine) {
  PortsReportOpen(routine);
  FilterObjectsReport(routine);
  SubjectContextsReport(routine);
  PushLocksReport(routine);
  WdfReport(routine);
  PoolReportLeaks(routine);
}

int32_t DriverEntryOp(const uint16_t* path, uint32_t chars) {
  if (CurrentPhase() != Phase::kLoaded) {
    Violation("DriverEntry", "the image was already started");
    return STATUS_INVALID_DEVICE_REQUEST;
  }
  SetPhase(Phase::kDriverEntry);
  std::u16string text(reinterpret_cast<const char16_t*>(path), chars);
  UNICODE_STRING registryPath;
  registryPath.Buffer = reinterpret_cast<PWCH>(&text[0]);
  registryPath.Length = registryPath.MaximumLength = static_cast<USHORT>(chars * 2);
  const NTSTATUS status = DriverEntry(DriverObject(), &registryPath);
  if (NT_SUCCESS(status)) {
    SetPhase(Phase::kRunning);
    return status;
  }
  // A failed DriverEntry gets no unload routine: it must have undone everything itself.
  {
    std::lock_guard<std::mutex> lock(Filter().mutex);
    if (Filter().registered && !Filter().unregistered) {
      Violation("DriverEntry", "failed (0x%08X) with its filter still registered", static_cast<unsigned>(status));
    }
  }
  EndOfImageChecks("DriverEntry");
  SetPhase(Phase::kUnloaded);
  return status;
}

int32_t UnloadOp() {
  if (CurrentPhase() != Phase::kRunning) return STATUS_INVALID_DEVICE_REQUEST;
  SetPhase(Phase::kUnloading);
  PFLT_FILTER_UNLOAD_CALLBACK unload = nullptr;
  bool filterLive;
  {
    std::lock_guard<std::mutex> lock(Filter().mutex);
    filterLive = Filter().registered && !Filter().unregistered;
    unload = Filter().registration.unload;
  }
  if (filterLive) {
    if (unload == nullptr) {
      // Documented: without a FilterUnloadCallback the filter cannot be unloaded.
      SetPhase(Phase::kRunning);
      return STATUS_FLT_DO_NOT_DETACH_;
    }
    const NTSTATUS status = unload(0);  // fltmc unload: not mandatory, the filter may refuse
    if (!NT_SUCCESS(status)) {
      bool unregistered;
      {
        std::lock_guard<std::mutex> lock(Filter().mutex);
        unregistered = Filter().unregistered;
      }
      if (unregistered) {
        Violation("FilterUnloadCallback", "failed (0x%08X) after calling FltUnregisterFilter",
                  static_cast<unsigned>(status));
      } else {
        SetPhase(Phase::kRunning);
        return status;
      }
    }
    bool unregistered;
    {
      std::lock_guard<std::mutex> lock(Filter().mutex);
      unregistered = Filter().unregistered;
    }
    if (!unregistered) {
      Violation("FilterUnloadCallback", "returned success without calling FltUnregisterFilter");
      DetachInstance();  // the image goes anyway: report the missing call, not what the instance still held
    }
  }
  if (PFN_WDF_DRIVER_UNLOAD evt = WdfUnloadCallback()) evt(WdfDriverHandle());
  EndOfImageChecks("DriverUnload");
  SetPhase(Phase::kUnloaded);
  return STATUS_SUCCESS;
}

int32_t ConnectOp(uint64_t port, uint64_t client, const fltmgr_kh_caller* caller, const void* context,
                  uint32_t length) {
  return PortConnect(port, client, ToCaller(caller), context, length);
}

int32_t MessageOp(uint64_t client, const fltmgr_kh_caller* caller, const void* input, uint32_t inputLength,
                  void* output, uint32_t outputLength, uint32_t* returned) {
  return PortMessage(client, ToCaller(caller), input, inputLength, output, outputLength, returned);
}

int PortAccessOp(uint64_t port, const fltmgr_kh_caller* caller, uint32_t desired) {
  return PortAccess(port, ToCaller(caller), desired) ? 1 : 0;
}

int32_t QueryOp(uint32_t code, void* buffer, uint32_t length, uint32_t* returned) {
  *returned = 0;
  if (FltmgrHarnessQuery == nullptr) return STATUS_NOT_IMPLEMENTED_;
  ULONG written = 0;
  const NTSTATUS status = FltmgrHarnessQuery(code, buffer, length, &written);
  *returned = written > length ? length : written;
  return status;
}

uint32_t ViolationCountOp() { return static_cast<uint32_t>(Violations().size()); }

const fltmgr_kh_image kImage = {
    FLTMGR_KH_ABI_VERSION, DriverEntryOp, UnloadOp, ConnectOp,        PortDisconnect, MessageOp, OpenFile,
    ReleaseOpenResult,     PortAccessOp,  QueryOp,  ViolationCountOp,
};

}  // namespace
}  // namespace kh

extern "C" __attribute__((visibility("default"))) const fltmgr_kh_image* fltmgr_kernel_image_attach_v1(
    const fltmgr_kh_host* host) {
  if (host == nullptr || host->abi_version != FLTMGR_KH_ABI_VERSION) return nullptr;
  kh::SetHost(host);
  return &kh::kImage;
}
