/*++

Module Name:

    driver.c

Abstract:

    DriverEntry: the KMDF driver object and the registry parameters, then the minifilter
    (filter.c). The only file that needs wdf.h, kept small so that everything else can be
    compile-checked without the WDK.

    Why KMDF in a minifilter, and how the two are combined:
      - A minifilter needs no framework: FltMgr calls it. KMDF is here because this sample is
        meant to grow the usual companions of an anti-virus filter (a control device, WDF
        registry and string objects, WDF Verifier), and because the design asks for a
        KMDF-based driver. It uses WDF only for the parameters key today.
      - The driver is not Plug and Play, so WDF_DRIVER_CONFIG has no EvtDriverDeviceAdd and sets
        WdfDriverInitNonPnpDriver, and then must supply EvtDriverUnload (documented
        requirements for non-PnP KMDF drivers).
      - WdfDriverCreate comes first because no other framework call may precede it;
        FltRegisterFilter follows with the same WDM driver object.
      - Unload: `fltmc unload` / `sc stop` make FltMgr call FLT_REGISTRATION.FilterUnloadCallback
        (FsFilterUnload -> FsTeardown: ports closed, filter unregistered). When the image is then
        unloaded, the framework's DriverUnload runs our EvtDriverUnload, which only checks what
        is left. EvtDriverUnload also runs FsTeardown, which is idempotent, in case the image is
        unloaded without the filter callback.
        [unverified on Windows: that FltRegisterFilter leaves the framework's DriverUnload in
        place and chains to it after the filter unload callback. If it does not, EvtDriverUnload
        never runs and nothing is lost: FsFilterUnload already freed everything.]

Environment:

    Kernel mode, PASSIVE_LEVEL.

--*/

#include "fltsample.h"
#include <wdf.h>

DRIVER_INITIALIZE DriverEntry;
EVT_WDF_DRIVER_UNLOAD FsEvtDriverUnload;

#ifdef ALLOC_PRAGMA
#pragma alloc_text(INIT, DriverEntry)
#pragma alloc_text(PAGE, FsEvtDriverUnload)
#endif

/*
 * Reads the optional REG_SZ value PortGroupSid from the service's Parameters key (see the INF
 * and README: "S-1-5-32-545" lets the local Users group connect). Absent is normal.
 */
_IRQL_requires_(PASSIVE_LEVEL)
static NTSTATUS
FsQueryPortGroupSid(
    _In_ WDFDRIVER Driver,
    _Out_ WDFSTRING *Value
    )
{
    NTSTATUS status;
    WDFKEY key = NULL;
    WDFSTRING string = NULL;
    DECLARE_CONST_UNICODE_STRING(valueName, L"PortGroupSid");

    PAGED_CODE();

    *Value = NULL;

    status = WdfDriverOpenParametersRegistryKey(Driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    status = WdfStringCreate(NULL, WDF_NO_OBJECT_ATTRIBUTES, &string);
    if (NT_SUCCESS(status)) {
        status = WdfRegistryQueryString(key, &valueName, string);
        if (NT_SUCCESS(status)) {
            *Value = string;
            string = NULL;
        }
    }

    if (string != NULL) {
        WdfObjectDelete(string);
    }
    WdfRegistryClose(key);
    return status;
}

_Use_decl_annotations_
NTSTATUS
DriverEntry(
    PDRIVER_OBJECT DriverObject,
    PUNICODE_STRING RegistryPath
    )
{
    NTSTATUS status;
    WDF_DRIVER_CONFIG config;
    WDFDRIVER driver;
    WDFSTRING groupSid = NULL;
    UNICODE_STRING groupSidText;
    PCUNICODE_STRING groupSidArgument = NULL;

    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = FsEvtDriverUnload;
    config.DriverPoolTag = FS_TAG_CLIENT;

    status = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    status = FsQueryPortGroupSid(driver, &groupSid);
    if (NT_SUCCESS(status)) {
        WdfStringGetUnicodeString(groupSid, &groupSidText);
        groupSidArgument = &groupSidText;
    } else if (status != STATUS_OBJECT_NAME_NOT_FOUND) {
        DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_WARNING_LEVEL,
                   "fltsample: reading PortGroupSid failed 0x%08X; the port stays admin-only\n", status);
    }

    /* FsInitialize copies what it needs from the string. If it fails, returning the error makes
     * the framework tear its driver object down; EvtDriverUnload is not called then. */
    status = FsInitialize(DriverObject, groupSidArgument);

    if (groupSid != NULL) {
        WdfObjectDelete(groupSid);
    }
    return status;
}

_Use_decl_annotations_
VOID
FsEvtDriverUnload(
    WDFDRIVER Driver
    )
{
    UNREFERENCED_PARAMETER(Driver);
    PAGED_CODE();

    /* Normally a no-op: FsFilterUnload ran first. */
    FsTeardown();
}
