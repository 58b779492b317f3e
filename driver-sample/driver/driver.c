/*++

Module Name:

    driver.c

Abstract:

    DriverEntry: reads the optional registry parameter, then starts the minifilter (filter.c).

    Plain WDM, like Microsoft's minifilter samples: Filter Manager calls a minifilter, so no
    framework is needed. Unload is FLT_REGISTRATION.FilterUnloadCallback alone (FsFilterUnload
    in filter.c); DriverObject->DriverUnload is not set. Why not KMDF: driver-sample/README.md.

Environment:

    Kernel mode, PASSIVE_LEVEL, system thread.

--*/

#include "fltsample.h"

/*
 * Longest PortGroupSid value accepted, in characters without terminating NULs. The longest SID
 * string FsSidParse accepts without leading zeros is 184 characters (a 15-digit authority, 15
 * sub-authorities of 10 digits); the rest is slack. Longer values are refused whole.
 */
#define FS_PORT_GROUP_SID_MAX_CHARS 255u

/* ZwQueryValueKey's KeyValuePartialInformation record with room for that many characters and
 * one NUL. In DriverEntry's frame: bounded, nothing to allocate or free. */
#define FS_PORT_GROUP_SID_MAX_DATA ((FS_PORT_GROUP_SID_MAX_CHARS + 1) * sizeof(WCHAR))

typedef union _FS_PORT_GROUP_SID_VALUE {
    KEY_VALUE_PARTIAL_INFORMATION Info;
    UCHAR Bytes[FIELD_OFFSET(KEY_VALUE_PARTIAL_INFORMATION, Data) + FS_PORT_GROUP_SID_MAX_DATA];
} FS_PORT_GROUP_SID_VALUE;

DRIVER_INITIALIZE DriverEntry;

_IRQL_requires_(PASSIVE_LEVEL)
static NTSTATUS
FsReadPortGroupSid(
    _In_ PDRIVER_OBJECT DriverObject,
    _Out_ FS_PORT_GROUP_SID_VALUE *Value,
    _Out_ PUNICODE_STRING Text
    );

#ifdef ALLOC_PRAGMA
#pragma alloc_text(INIT, DriverEntry)
#pragma alloc_text(INIT, FsReadPortGroupSid)
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
    PDRIVER_OBJECT DriverObject,
    FS_PORT_GROUP_SID_VALUE *Value,
    PUNICODE_STRING Text
    )
{
    NTSTATUS status;
    HANDLE key = NULL;
    UNICODE_STRING valueName = RTL_CONSTANT_STRING(L"PortGroupSid");
    ULONG returned = 0;
    const WCHAR *chars;
    ULONG count;
    ULONG i;

    PAGED_CODE();

    RtlZeroMemory(Value, sizeof(*Value));
    RtlZeroMemory(Text, sizeof(*Text));

    /* The documented way for a WDM driver to open <service key>\Parameters (driver package
     * isolation); Windows 10 1803 and later, inside the 2004 floor that ExAllocatePool2 sets. */
    status = IoOpenDriverRegistryKey(DriverObject, DriverRegKeyParameters, KEY_READ, 0, &key);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    /* Longer data fails with STATUS_BUFFER_OVERFLOW, which is not NT_SUCCESS. */
    status = ZwQueryValueKey(key, &valueName, KeyValuePartialInformation, Value, (ULONG)sizeof(*Value),
                             &returned);
    ZwClose(key);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    if (Value->Info.Type != REG_SZ) {
        return STATUS_OBJECT_TYPE_MISMATCH;
    }
    if (Value->Info.DataLength > FS_PORT_GROUP_SID_MAX_DATA || Value->Info.DataLength % sizeof(WCHAR) != 0) {
        return STATUS_INVALID_PARAMETER;
    }

    /* REG_SZ data may or may not include its terminating NUL(s); a NUL before the end would
     * make the string mean two different things to two readers. */
    chars = (const WCHAR *)Value->Info.Data;
    count = (ULONG)(Value->Info.DataLength / sizeof(WCHAR));
    while (count > 0 && chars[count - 1] == L'\0') {
        count--;
    }
    if (count > FS_PORT_GROUP_SID_MAX_CHARS) {
        return STATUS_INVALID_PARAMETER;
    }
    for (i = 0; i < count; i++) {
        if (chars[i] == L'\0') {
            return STATUS_INVALID_PARAMETER;
        }
    }

    Text->Buffer = (PWCH)chars;
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
    FS_PORT_GROUP_SID_VALUE value;
    UNICODE_STRING groupSid;

    /* The Parameters key is opened through DriverObject, not by building a path from this. */
    UNREFERENCED_PARAMETER(RegistryPath);

    status = FsReadPortGroupSid(DriverObject, &value, &groupSid);
    if (!NT_SUCCESS(status) && status != STATUS_OBJECT_NAME_NOT_FOUND) {
        DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_WARNING_LEVEL,
                   "fltsample: reading PortGroupSid failed 0x%08X (it must be a REG_SZ of at most %u "
                   "characters); the port stays admin-only\n",
                   status, FS_PORT_GROUP_SID_MAX_CHARS);
    }

    /* FsInitialize copies what it needs from the string, so value may go when this returns. If
     * it fails it has undone everything, and the I/O manager unloads the image. */
    return FsInitialize(DriverObject, NT_SUCCESS(status) ? &groupSid : NULL);
}
