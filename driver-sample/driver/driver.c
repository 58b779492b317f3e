/*++

Module Name:

    driver.c

Abstract:

    DriverEntry: the KMDF driver object (non-PnP), the optional registry parameter, then the
    minifilter (filter.c). The only file that needs wdf.h. Why a KMDF sample, and what it costs:
    driver-sample/README.md, "KMDF + minifilter".

    How KMDF and Filter Manager share the driver object (sources and details in the README):
      - WdfDriverCreate comes first: no other framework call may precede it, and with
        WdfDriverInitNonPnpDriver plus an EvtDriverUnload it sets DriverObject->DriverUnload to
        the framework's unload routine (KMDF source: FxDriver::Initialize, fxdriver.cpp).
      - FltRegisterFilter (FsInitialize, afterwards) keeps that routine as the filter's
        OldDriverUnload and installs Filter Manager's own (FltpMiniFilterDriverUnload); after
        DriverEntry returns, the KMDF stub linked into this image wraps whatever is there
        (WdfDriverStubDisplacedDriverUnload). Nobody in this driver writes DriverUnload.
      - Unload (sc stop, fltmc unload): FilterUnloadCallback (FsFilterUnload -> FsTeardown:
        ports closed, FltUnregisterFilter) runs first; then the framework's unload routine calls
        FsEvtDriverUnload, which finds nothing left (FsTeardown is idempotent), and deletes the
        framework driver object. [unverified on Windows: that Filter Manager calls
        OldDriverUnload after the filter unload callback; debugger output and reimplementations
        say so, no Microsoft page does. If it did not, FsEvtDriverUnload would not run and
        nothing would leak: FsFilterUnload already freed everything.]
      - A failing DriverEntry gets no EvtDriverUnload (documented), so FsInitialize undoes its
        own partial work; the framework deletes its driver object itself.

Environment:

    Kernel mode, PASSIVE_LEVEL, system thread.

--*/

#include "fltsample.h"
#include <wdf.h>

/*
 * Longest PortGroupSid value accepted, in characters without terminating NULs. The longest SID
 * string FsSidParse accepts without leading zeros is 184 characters (a 15-digit authority, 15
 * sub-authorities of 10 digits); the rest is slack. Longer values are refused whole.
 */
#define FS_PORT_GROUP_SID_MAX_CHARS 255u

/* The value's data with room for that many characters and one NUL. In DriverEntry's frame:
 * bounded, nothing to allocate or free (WdfRegistryQueryString would allocate the value's
 * whole size from pool, whatever it is). */
typedef struct _FS_PORT_GROUP_SID_VALUE {
    WCHAR Chars[FS_PORT_GROUP_SID_MAX_CHARS + 1];
} FS_PORT_GROUP_SID_VALUE;

DRIVER_INITIALIZE DriverEntry;
EVT_WDF_DRIVER_UNLOAD FsEvtDriverUnload;

_IRQL_requires_(PASSIVE_LEVEL)
static NTSTATUS
FsReadPortGroupSid(
    _In_ WDFDRIVER Driver,
    _Out_ FS_PORT_GROUP_SID_VALUE *Value,
    _Out_ PUNICODE_STRING Text
);

#ifdef ALLOC_PRAGMA
#pragma alloc_text(INIT, DriverEntry)
#pragma alloc_text(INIT, FsReadPortGroupSid)
#pragma alloc_text(PAGE, FsEvtDriverUnload)
#endif

/*
 * Reads the optional REG_SZ value PortGroupSid from the service's Parameters key (see the INF
 * and README: "S-1-5-32-545" lets the local Users group connect). On success Text points into
 * Value and holds the characters without terminating NULs; it may be empty. An absent value is
 * STATUS_OBJECT_NAME_NOT_FOUND (an absent Parameters key too [unverified; another status only
 * adds a warning line]). Only the shape is checked here (type, size, NULs); whether the
 * characters are a SID is FsSidParse's call, and it accepts ASCII only.
 */
_Use_decl_annotations_
static NTSTATUS
FsReadPortGroupSid(
    WDFDRIVER Driver,
    FS_PORT_GROUP_SID_VALUE *Value,
    PUNICODE_STRING Text
)
{
    NTSTATUS status;
    WDFKEY key = NULL;
    UNICODE_STRING valueName = RTL_CONSTANT_STRING(L"PortGroupSid");
    ULONG length = 0;
    ULONG type = 0;
    ULONG count;
    ULONG i;

    PAGED_CODE();

    RtlZeroMemory(Value, sizeof(*Value));
    RtlZeroMemory(Text, sizeof(*Text));

    status = WdfDriverOpenParametersRegistryKey(Driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    /* Longer data fails with STATUS_BUFFER_OVERFLOW, which is not NT_SUCCESS. */
    status = WdfRegistryQueryValue(key, &valueName, (ULONG)sizeof(Value->Chars), Value->Chars, &length, &type);
    WdfRegistryClose(key);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    if (type != REG_SZ) {
        return STATUS_OBJECT_TYPE_MISMATCH;
    }
    if (length > sizeof(Value->Chars) || length % sizeof(WCHAR) != 0) {
        return STATUS_INVALID_PARAMETER;
    }

    /* REG_SZ data may or may not include its terminating NUL(s); a NUL before the end would
     * make the string mean two different things to two readers. */
    count = (ULONG)(length / sizeof(WCHAR));
    while (count > 0 && Value->Chars[count - 1] == L'\0') {
        count--;
    }
    if (count > FS_PORT_GROUP_SID_MAX_CHARS) {
        return STATUS_INVALID_PARAMETER;
    }
    for (i = 0; i < count; i++) {
        if (Value->Chars[i] == L'\0') {
            return STATUS_INVALID_PARAMETER;
        }
    }

    Text->Buffer = Value->Chars;
    Text->Length = (USHORT)(count * sizeof(WCHAR));
    Text->MaximumLength = Text->Length;
    return STATUS_SUCCESS;
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
    FS_PORT_GROUP_SID_VALUE value;
    UNICODE_STRING groupSid;

    /* Not Plug and Play: no EvtDriverDeviceAdd. EvtDriverUnload is what makes the framework set
     * DriverObject->DriverUnload at all; without it the driver could not be unloaded. */
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = FsEvtDriverUnload;
    config.DriverPoolTag = FS_TAG_FRAMEWORK;

    /* First, before FltRegisterFilter: see the top of this file. */
    status = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    status = FsReadPortGroupSid(driver, &value, &groupSid);
    if (!NT_SUCCESS(status) && status != STATUS_OBJECT_NAME_NOT_FOUND) {
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID, DPFLTR_WARNING_LEVEL,
            "fltsample: reading PortGroupSid failed 0x%08X (it must be a REG_SZ of at most %u "
            "characters); the port stays admin-only\n",
            status, FS_PORT_GROUP_SID_MAX_CHARS
        );
    }

    /* FsInitialize copies what it needs from the string, so value may go when this returns. If
     * it fails it has undone everything; the framework then deletes its driver object and the
     * I/O manager unloads the image without calling any unload routine. */
    return FsInitialize(DriverObject, NT_SUCCESS(status) ? &groupSid : NULL);
}

/*
 * The framework's unload routine calls this after Filter Manager ran FsFilterUnload (top of this
 * file), so FsTeardown normally finds nothing to do; it is called anyway so that the image can
 * never go with the filter still registered.
 */
_Use_decl_annotations_
VOID
FsEvtDriverUnload(WDFDRIVER Driver)
{
    UNREFERENCED_PARAMETER(Driver);
    PAGED_CODE();

    /* Seeing this line after `fltmc unload` confirms Filter Manager chains to the framework. */
    DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, "fltsample: EvtDriverUnload\n");
    FsTeardown();
}
