// wdf.cc - the KMDF calls a non-PnP minifilter makes (include/wdf.h): the framework driver object with its
// EvtDriverUnload, and the Parameters key read from the host's registry values.
#include <cstring>
#include <set>

#include "core.h"
#include "objects.h"
#include "status.h"

struct WDFDRIVER__ {
  uint32_t magic;
};
struct WDFKEY__ {
  uint32_t magic;
};

namespace kh {
namespace {
WDFDRIVER__ g_driver{0x52564457};
bool g_created = false;
PFN_WDF_DRIVER_UNLOAD g_unload = nullptr;
std::mutex g_mutex;
std::set<WDFKEY__*> g_keys;
}  // namespace

PFN_WDF_DRIVER_UNLOAD WdfUnloadCallback() { return g_created ? g_unload : nullptr; }
WDFDRIVER WdfDriverHandle() { return &g_driver; }

size_t WdfReport(const char* routine) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_keys.empty()) {
    // Not a leak in KMDF (keys are children of the driver object and go with it), but worth a line.
    Log(DPFLTR_WARNING_LEVEL,
        Format("%s: %zu registry key(s) never closed with WdfRegistryClose", routine, g_keys.size()));
  }
  for (WDFKEY__* key : g_keys) delete key;
  g_keys.clear();
  return 0;
}

}  // namespace kh

using namespace kh;

extern "C" NTSTATUS WdfDriverCreate(PDRIVER_OBJECT DriverObject, PCUNICODE_STRING RegistryPath,
                                    PWDF_OBJECT_ATTRIBUTES DriverAttributes, PWDF_DRIVER_CONFIG DriverConfig,
                                    WDFDRIVER* Driver) {
  (void)RegistryPath;
  (void)DriverAttributes;
  if (Driver != nullptr) *Driver = nullptr;
  if (CurrentPhase() != Phase::kDriverEntry) Violation("WdfDriverCreate", "called outside DriverEntry");
  if (DriverObject != kh::DriverObject() || DriverConfig == nullptr ||
      DriverConfig->Size != sizeof(WDF_DRIVER_CONFIG)) {
    Violation("WdfDriverCreate", "bad arguments (driver object %p, config %p)", static_cast<void*>(DriverObject),
              static_cast<void*>(DriverConfig));
    return STATUS_INVALID_PARAMETER;
  }
  if (g_created) {
    Violation("WdfDriverCreate", "called twice");
    return STATUS_INVALID_PARAMETER;
  }
  if ((DriverConfig->DriverInitFlags & WdfDriverInitNonPnpDriver) != 0 && DriverConfig->EvtDriverDeviceAdd != nullptr) {
    Violation("WdfDriverCreate", "a non-PnP driver with EvtDriverDeviceAdd");
    return STATUS_INVALID_PARAMETER;
  }
  g_created = true;
  g_unload = DriverConfig->EvtDriverUnload;
  if (Driver != nullptr) *Driver = &g_driver;
  return STATUS_SUCCESS;
}

extern "C" NTSTATUS WdfDriverOpenParametersRegistryKey(WDFDRIVER Driver, ACCESS_MASK DesiredAccess,
                                                       PWDF_OBJECT_ATTRIBUTES KeyAttributes, WDFKEY* Key) {
  (void)DesiredAccess;
  (void)KeyAttributes;
  *Key = nullptr;
  if (Driver != &g_driver || !g_created) {
    Violation("WdfDriverOpenParametersRegistryKey", "%p is not the framework driver object",
              static_cast<void*>(Driver));
    return STATUS_INVALID_PARAMETER;
  }
  auto* key = new WDFKEY__{0x5945594b};
  std::lock_guard<std::mutex> lock(g_mutex);
  g_keys.insert(key);
  *Key = key;
  return STATUS_SUCCESS;
}

extern "C" NTSTATUS WdfRegistryQueryValue(WDFKEY Key, PCUNICODE_STRING ValueName, ULONG ValueLength, PVOID Value,
                                          PULONG ValueLengthQueried, PULONG ValueType) {
  if (ValueLengthQueried != nullptr) *ValueLengthQueried = 0;
  if (ValueType != nullptr) *ValueType = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_keys.count(Key) == 0) {
      Violation("WdfRegistryQueryValue", "%p is not an open key", static_cast<void*>(Key));
      return STATUS_INVALID_PARAMETER;
    }
  }
  if (ValueName == nullptr || ValueName->Buffer == nullptr) return STATUS_INVALID_PARAMETER;
  const std::string name = Utf16ToUtf8(ValueName->Buffer, ValueName->Length / sizeof(WCHAR));
  const fltmgr_kh_host* host = Host();
  uint32_t type = 0;
  const uint8_t* data = nullptr;
  uint32_t size = 0;
  if (host == nullptr || host->registry_value(host->context, name.c_str(), &type, &data, &size) == 0) {
    return STATUS_OBJECT_NAME_NOT_FOUND;
  }
  if (ValueType != nullptr) *ValueType = type;
  if (ValueLengthQueried != nullptr) *ValueLengthQueried = size;
  if (Value == nullptr || ValueLength < size) return STATUS_BUFFER_OVERFLOW;
  std::memcpy(Value, data, size);
  return STATUS_SUCCESS;
}

extern "C" VOID WdfRegistryClose(WDFKEY Key) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_keys.erase(Key) == 0) {
    Violation("WdfRegistryClose", "%p is not an open key (closed twice?)", static_cast<void*>(Key));
    return;
  }
  delete Key;
}
