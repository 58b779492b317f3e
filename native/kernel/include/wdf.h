/*
 * wdf.h - NOT the WDK header: the kernel harness's declarations of the few KMDF calls driver.c makes
 * (issue 7). Used by every Linux check: the harness build (after fltKernel.h), the mingw-w64 compile
 * check and the host build of DriverEntry against fakes (after a stand-in fltsample.h), all in
 * test/driver-header.test.ts and test/kernel-imports.test.ts. The real build uses the WDK's wdf.h.
 *
 * Transcribed from the KMDF reference pages (wdfdriver.h, wdfregistry.h, wdfobject.h) for KMDF
 * 1.15: signatures and the WDF_DRIVER_CONFIG members driver.c sets. Deliberate differences:
 *  - The real Wdf* "functions" are macros that call through the WdfFunctions table bound by the
 *    KMDF stub (WdfVersionBind) and pass a hidden WdfDriverGlobals first argument. Here they are
 *    plain functions, so a test can link fakes of them and the harness implements them directly.
 *  - WDF_DRIVER_CONFIG and WDF_OBJECT_ATTRIBUTES layouts are not meant to match the real ones.
 * Only kernel types are used (NTSTATUS, ULONG, PDRIVER_OBJECT, ...), so that every caller's type
 * definitions satisfy it.
 */
#pragma once

typedef struct WDFDRIVER__ *WDFDRIVER;
typedef struct WDFKEY__ *WDFKEY;
typedef struct _WDFDEVICE_INIT *PWDFDEVICE_INIT;
typedef struct _WDF_OBJECT_ATTRIBUTES WDF_OBJECT_ATTRIBUTES, *PWDF_OBJECT_ATTRIBUTES;

#define WDF_NO_OBJECT_ATTRIBUTES ((PWDF_OBJECT_ATTRIBUTES)0)
#define WDF_NO_EVENT_CALLBACK 0

typedef NTSTATUS EVT_WDF_DRIVER_DEVICE_ADD(WDFDRIVER Driver, PWDFDEVICE_INIT DeviceInit);
typedef EVT_WDF_DRIVER_DEVICE_ADD *PFN_WDF_DRIVER_DEVICE_ADD;
typedef VOID EVT_WDF_DRIVER_UNLOAD(WDFDRIVER Driver);
typedef EVT_WDF_DRIVER_UNLOAD *PFN_WDF_DRIVER_UNLOAD;

typedef enum _WDF_DRIVER_INIT_FLAGS {
    WdfDriverInitNonPnpDriver = 0x00000001,
    WdfDriverInitNoDispatchOverride = 0x00000002,
    WdfVerifyOn = 0x00000004,
    WdfVerifierOn = 0x00000008,
    WdfDriverInitCompanion = 0x00000010
} WDF_DRIVER_INIT_FLAGS;

typedef struct _WDF_DRIVER_CONFIG {
    ULONG Size;
    PFN_WDF_DRIVER_DEVICE_ADD EvtDriverDeviceAdd;
    PFN_WDF_DRIVER_UNLOAD EvtDriverUnload;
    ULONG DriverInitFlags;
    ULONG DriverPoolTag;
} WDF_DRIVER_CONFIG, *PWDF_DRIVER_CONFIG;

/* Documented: zeroes the structure, sets Size and EvtDriverDeviceAdd. */
static __inline VOID WDF_DRIVER_CONFIG_INIT(PWDF_DRIVER_CONFIG Config, PFN_WDF_DRIVER_DEVICE_ADD EvtDriverDeviceAdd) {
    RtlZeroMemory(Config, sizeof(WDF_DRIVER_CONFIG));
    Config->Size = (ULONG)sizeof(WDF_DRIVER_CONFIG);
    Config->EvtDriverDeviceAdd = EvtDriverDeviceAdd;
}

NTSTATUS WdfDriverCreate(PDRIVER_OBJECT DriverObject, PCUNICODE_STRING RegistryPath,
                         PWDF_OBJECT_ATTRIBUTES DriverAttributes, PWDF_DRIVER_CONFIG DriverConfig, WDFDRIVER *Driver);
NTSTATUS WdfDriverOpenParametersRegistryKey(WDFDRIVER Driver, ACCESS_MASK DesiredAccess,
                                            PWDF_OBJECT_ATTRIBUTES KeyAttributes, WDFKEY *Key);
NTSTATUS WdfRegistryQueryValue(WDFKEY Key, PCUNICODE_STRING ValueName, ULONG ValueLength, PVOID Value,
                               PULONG ValueLengthQueried, PULONG ValueType);
VOID WdfRegistryClose(WDFKEY Key);
