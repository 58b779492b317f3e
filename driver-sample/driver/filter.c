/*++

Module Name:

    filter.c

Abstract:

    Minifilter registration, start-up and teardown, instance setup, and the IRP_MJ_CREATE
    callbacks that decide which opens are scanned.

Environment:

    Kernel mode.

--*/

#include "fltsample.h"

FS_GLOBALS FsGlobals;

static FLT_PREOP_CALLBACK_STATUS FLTAPI
FsPreCreate(
    _Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _Flt_CompletionContext_Outptr_ PVOID *CompletionContext
);

static FLT_POSTOP_CALLBACK_STATUS FLTAPI
FsPostCreate(
    _Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_opt_ PVOID CompletionContext,
    _In_ FLT_POST_OPERATION_FLAGS Flags
);

static VOID FsShutdown(VOID);

static NTSTATUS FLTAPI
FsFilterUnload(_In_ FLT_FILTER_UNLOAD_FLAGS Flags);

static NTSTATUS FLTAPI
FsInstanceSetup(
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_ FLT_INSTANCE_SETUP_FLAGS Flags,
    _In_ DEVICE_TYPE VolumeDeviceType,
    _In_ FLT_FILESYSTEM_TYPE VolumeFilesystemType
);

static NTSTATUS FLTAPI
FsInstanceQueryTeardown(
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_ FLT_INSTANCE_QUERY_TEARDOWN_FLAGS Flags
);

#ifdef ALLOC_PRAGMA
#pragma alloc_text(PAGE, FsInitialize)
#pragma alloc_text(PAGE, FsTeardown)
#pragma alloc_text(PAGE, FsShutdown)
#pragma alloc_text(PAGE, FsFilterUnload)
#pragma alloc_text(PAGE, FsInstanceSetup)
#pragma alloc_text(PAGE, FsInstanceQueryTeardown)
#pragma alloc_text(PAGE, FsPreCreate)
#pragma alloc_text(PAGE, FsPostCreate)
#endif

static const FLT_OPERATION_REGISTRATION FsOperations[] = {{IRP_MJ_CREATE, 0, FsPreCreate, FsPostCreate},
                                                          {IRP_MJ_OPERATION_END}};

static const FLT_CONTEXT_REGISTRATION FsContexts[] = {
    {FLT_INSTANCE_CONTEXT, 0, NULL, sizeof(FS_INSTANCE_CONTEXT), FS_TAG_CONTEXT},
    {FLT_CONTEXT_END}};

static const FLT_REGISTRATION FsRegistration = {
    sizeof(FLT_REGISTRATION),
    FLT_REGISTRATION_VERSION,
    0, /* Flags */
    FsContexts,
    FsOperations,
    FsFilterUnload, /* without it the filter could never be unloaded */
    FsInstanceSetup,
    FsInstanceQueryTeardown,
    NULL, /* InstanceTeardownStart */
    NULL, /* InstanceTeardownComplete */
    /* name provider, transaction and section callbacks: not used, zero-initialised */
};

/*
 * Parses the opt-in group SID string (driver.c read it from the registry) into pool. A bad value
 * is logged and ignored: the port then stays administrators/SYSTEM only, the safe direction.
 */
static VOID
FsLoadPortGroupSid(_In_opt_ PCUNICODE_STRING SidString)
{
    FLTSAMPLE_U32 sidSize = 0;
    FLTSAMPLE_U8 sid[FS_MAX_SID_BYTES];
    int result;

    PAGED_CODE();

    if (SidString == NULL || SidString->Buffer == NULL || SidString->Length == 0) {
        return;
    }

    result = FsSidParse(
        (const FLTSAMPLE_WCHAR *)SidString->Buffer, (FLTSAMPLE_U32)(SidString->Length / sizeof(WCHAR)), sid,
        sizeof(sid), &sidSize
    );
    if (result != FS_SID_PARSE_OK || !RtlValidSid((PSID)sid)) {
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID, DPFLTR_WARNING_LEVEL,
            "fltsample: PortGroupSid %wZ is not a SID string; the port stays admin-only\n", SidString
        );
        return;
    }

    FsGlobals.PortGroupSid = FsAllocate(POOL_FLAG_PAGED, sidSize, FS_TAG_SECURITY);
    if (FsGlobals.PortGroupSid == NULL) {
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID, DPFLTR_WARNING_LEVEL,
            "fltsample: no memory for PortGroupSid; the port stays admin-only\n"
        );
        return;
    }
    RtlCopyMemory(FsGlobals.PortGroupSid, sid, sidSize);
}

_Use_decl_annotations_
NTSTATUS
FsInitialize(
    PDRIVER_OBJECT DriverObject,
    PCUNICODE_STRING PortGroupSidString
)
{
    NTSTATUS status;

    PAGED_CODE();

    FsGlobals.DriverObject = DriverObject;
    FltInitializePushLock(&FsGlobals.Lock);
    InitializeListHead(&FsGlobals.Clients);
    ExInitializeRundownProtection(&FsGlobals.Rundown);
    FsConfigSetDefaults(&FsGlobals.Config);

    FsLoadPortGroupSid(PortGroupSidString);

    status = FltRegisterFilter(DriverObject, &FsRegistration, &FsGlobals.Filter);
    if (!NT_SUCCESS(status)) {
        FsGlobals.Filter = NULL;
        goto Failed;
    }

    status = FsPortCreate();
    if (!NT_SUCCESS(status)) {
        goto Failed;
    }

    status = FltStartFiltering(FsGlobals.Filter);
    if (!NT_SUCCESS(status)) {
        goto Failed;
    }

    FsGlobals.Initialized = TRUE;
    return STATUS_SUCCESS;

Failed:
    /* The full teardown, not a shortcut: once the port exists a client may connect and send
     * commands [unverified: whether Filter Manager admits connections before FltStartFiltering],
     * and a failed FltStartFiltering may have set up some instances. */
    FsShutdown();
    return status;
}

/*
 * Runs from FilterUnload (fltmc unload, sc stop) and again from EvtDriverUnload (driver.c), which
 * Filter Manager's unload chain calls afterwards: the second call finds nothing to do.
 */
_Use_decl_annotations_
VOID
FsTeardown(VOID)
{
    PAGED_CODE();

    if (!FsGlobals.Initialized) {
        return;
    }
    FsGlobals.Initialized = FALSE;
    FsShutdown();
}

/*
 * Undoes FsInitialize, whatever part of it ran. Order matters:
 *  1. Unloading = 1: new scans are skipped (allowed), new connections and commands refused.
 *  2. Close the server port: no new connections.
 *  3. Close every client port ourselves, so FltSendMessage calls that wait for an agent return
 *     now (STATUS_PORT_DISCONNECTED) instead of after the reply timeout.
 *  4. Wait for scans and commands still inside the driver (rundown).
 *  5. FltUnregisterFilter: instances torn down, remaining callbacks drained.
 *  6. Free what is left and check the pool counters.
 */
static VOID
FsShutdown(VOID)
{
    PAGED_CODE();

    InterlockedExchange(&FsGlobals.Unloading, 1);
    FsPortCloseServer();
    FsPortDisconnectAll();
    ExWaitForRundownProtectionRelease(&FsGlobals.Rundown);

    if (FsGlobals.Filter != NULL) {
        FltUnregisterFilter(FsGlobals.Filter);
        FsGlobals.Filter = NULL;
    }

    FsPortReleaseAllClients();

    if (FsGlobals.PortGroupSid != NULL) {
        FsFree(FsGlobals.PortGroupSid, FS_TAG_SECURITY);
        FsGlobals.PortGroupSid = NULL;
    }
    FltDeletePushLock(&FsGlobals.Lock);

    if (FsGlobals.PoolAllocations != 0 || FsGlobals.PoolBytes != 0) {
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID, DPFLTR_ERROR_LEVEL, "fltsample: leaked %I64d pool allocations (%I64d bytes)\n",
            FsGlobals.PoolAllocations, FsGlobals.PoolBytes
        );
        NT_ASSERT(FsGlobals.PoolAllocations == 0);
    }
}

static NTSTATUS FLTAPI
FsFilterUnload(_In_ FLT_FILTER_UNLOAD_FLAGS Flags)
{
    UNREFERENCED_PARAMETER(Flags);
    PAGED_CODE();

    /* Optional unloads are honoured too: the agent reconnects after the driver comes back. */
    FsTeardown();
    return STATUS_SUCCESS;
}

static NTSTATUS FLTAPI
FsInstanceSetup(
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_ FLT_INSTANCE_SETUP_FLAGS Flags,
    _In_ DEVICE_TYPE VolumeDeviceType,
    _In_ FLT_FILESYSTEM_TYPE VolumeFilesystemType
)
{
    NTSTATUS status;
    FLT_VOLUME_PROPERTIES properties;
    ULONG returned = 0;
    PFS_INSTANCE_CONTEXT context = NULL;
    ULONG sectorSize = FS_FALLBACK_SECTOR_SIZE;

    UNREFERENCED_PARAMETER(Flags);
    UNREFERENCED_PARAMETER(VolumeFilesystemType);
    PAGED_CODE();

    /* Local disk volumes only: network redirectors and CD file systems are out of scope. */
    if (VolumeDeviceType != FILE_DEVICE_DISK_FILE_SYSTEM) {
        return STATUS_FLT_DO_NOT_ATTACH;
    }

    /* Non-cached reads need sector-aligned lengths; remember the sector size per volume.
     * STATUS_BUFFER_OVERFLOW only means the volume names did not fit: the sizes are valid. */
    status = FltGetVolumeProperties(FltObjects->Volume, &properties, sizeof(properties), &returned);
    if (!NT_ERROR(status) && properties.SectorSize != 0) {
        sectorSize = properties.SectorSize;
    }

    status = FltAllocateContext(
        FltObjects->Filter, FLT_INSTANCE_CONTEXT, sizeof(FS_INSTANCE_CONTEXT), NonPagedPoolNx, (PFLT_CONTEXT *)&context
    );
    if (NT_SUCCESS(status)) {
        context->SectorSize = sectorSize;
        status = FltSetInstanceContext(FltObjects->Instance, FLT_SET_CONTEXT_KEEP_IF_EXISTS, context, NULL);
        if (!NT_SUCCESS(status)) {
            /* Scans fall back to FS_FALLBACK_SECTOR_SIZE; attaching is still useful. */
            DbgPrintEx(
                DPFLTR_IHVDRIVER_ID, DPFLTR_WARNING_LEVEL, "fltsample: FltSetInstanceContext failed 0x%08X\n", status
            );
        }
        /* Set or not, drop our reference: FltMgr frees the context with the instance. */
        FltReleaseContext(context);
    }

    return STATUS_SUCCESS;
}

static NTSTATUS FLTAPI
FsInstanceQueryTeardown(
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_ FLT_INSTANCE_QUERY_TEARDOWN_FLAGS Flags
)
{
    UNREFERENCED_PARAMETER(FltObjects);
    UNREFERENCED_PARAMETER(Flags);
    PAGED_CODE();

    /* Manual detach (fltmc detach) is allowed: it is how tests take a volume out of scanning. */
    return STATUS_SUCCESS;
}

/*
 * Pre-create: cheap checks that need no name lookup, and the agent's own opens.
 * Runs at PASSIVE_LEVEL (IRP_MJ_CREATE pre-operation callbacks always do).
 */
static FLT_PREOP_CALLBACK_STATUS FLTAPI
FsPreCreate(
    _Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _Flt_CompletionContext_Outptr_ PVOID *CompletionContext
)
{
    const FLT_IO_PARAMETER_BLOCK *iopb = Data->Iopb;
    ACCESS_MASK desired;

    UNREFERENCED_PARAMETER(FltObjects);
    PAGED_CODE();

    *CompletionContext = NULL;

    /* Sample policy: only opens from user mode are scanned. Kernel components' opens include
     * our own I/O and the file systems' internal opens, where waiting for user mode could
     * deadlock. */
    if (Data->RequestorMode == KernelMode) {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }

    if (FlagOn(iopb->OperationFlags, SL_OPEN_PAGING_FILE) ||
        FlagOn(iopb->Parameters.Create.Options, FILE_DIRECTORY_FILE) ||
        FlagOn(iopb->TargetFileObject->Flags, FO_VOLUME_OPEN)) {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }

    /* Opens for attributes, security or delete only never expose content: not worth a scan. */
    desired = iopb->Parameters.Create.SecurityContext->DesiredAccess;
    if (!FlagOn(desired, FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_EXECUTE)) {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }

    /* Never scan a connected agent's own opens: it would wait for itself. */
    if (FsIsExcludedProcess(FltGetRequestorProcessId(Data))) {
        InterlockedIncrement64(&FsGlobals.Counters.ExcludedOpens);
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }

    return FLT_PREOP_SUCCESS_WITH_CALLBACK;
}

/*
 * Post-create: scan the opened file and undo the open on a BLOCK (or on a failure with
 * fail-closed). Post-create callbacks run at PASSIVE_LEVEL in the opener's thread, so this one
 * may block in FltSendMessage for up to the configured reply timeout.
 */
static FLT_POSTOP_CALLBACK_STATUS FLTAPI
FsPostCreate(
    _Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_opt_ PVOID CompletionContext,
    _In_ FLT_POST_OPERATION_FLAGS Flags
)
{
    BOOLEAN deny;

    UNREFERENCED_PARAMETER(CompletionContext);
    PAGED_CODE();

    if (FlagOn(Flags, FLTFL_POST_OPERATION_DRAINING)) {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }

    /* STATUS_REPARSE is a success code but no file was opened. */
    if (!NT_SUCCESS(Data->IoStatus.Status) || Data->IoStatus.Status == STATUS_REPARSE ||
        FltObjects->FileObject == NULL) {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }

    if (!ExAcquireRundownProtection(&FsGlobals.Rundown)) {
        /* Unloading: the filter is about to go, let the open through. */
        return FLT_POSTOP_FINISHED_PROCESSING;
    }

    deny = FsScanOpenedFile(Data, FltObjects);

    ExReleaseRundownProtection(&FsGlobals.Rundown);

    if (deny) {
        /* A file this open created stays on disk (empty): FltCancelFileOpen only undoes the
         * open. A product would also delete it or block in pre-create. */
        FltCancelFileOpen(FltObjects->Instance, FltObjects->FileObject);
        Data->IoStatus.Status = STATUS_ACCESS_DENIED;
        Data->IoStatus.Information = 0;
    }

    return FLT_POSTOP_FINISHED_PROCESSING;
}
