/*++

Module Name:

    scan.c

Abstract:

    Scanning one opened file: decide whether it is in scope, build FLTSAMPLE_SCAN_REQUEST
    (name, id, size, first bytes), send it to one agent and turn the outcome into allow/deny.

Environment:

    Kernel mode, PASSIVE_LEVEL (called from the post-create callback).

--*/

#include "fltsample.h"

#ifdef ALLOC_PRAGMA
#pragma alloc_text(PAGE, FsScanOpenedFile)
#endif

/* Snapshot of the configuration fields a scan needs, taken under the lock once. */
typedef struct _FS_SCAN_POLICY {
    ULONG Flags;
    ULONG ReplyTimeoutMs;
    ULONG ContentBytes;
} FS_SCAN_POLICY;

/* What fail-open / fail-closed says when no verdict could be obtained. TRUE = deny. */
static BOOLEAN
FsFailurePolicyDenies(_In_ const FS_SCAN_POLICY *Policy)
{
    if (FlagOn(Policy->Flags, FLTSAMPLE_CONFIG_FLAG_FAIL_CLOSED)) {
        InterlockedIncrement64(&FsGlobals.Counters.FailClosedDenied);
        return TRUE;
    }
    InterlockedIncrement64(&FsGlobals.Counters.FailOpenAllowed);
    return FALSE;
}

/*
 * Reads up to Wanted bytes from offset 0 into Out. Non-cached, like Microsoft's scanner sample:
 * it does not set up caching on a file object the opener owns, and the file systems flush
 * cached data for the range before a non-cached read, so freshly written content is seen
 * [to confirm per file system on Windows]. Non-cached I/O needs a sector-aligned buffer and a
 * sector-multiple length, hence the aligned pool and the rounding.
 */
_IRQL_requires_(PASSIVE_LEVEL)
static NTSTATUS
FsReadHead(
    _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_ ULONG Wanted,
    _Out_writes_bytes_to_(
        Wanted,
        *Copied
    ) PUCHAR Out,
    _Out_ PULONG Copied
)
{
    NTSTATUS status;
    PFS_INSTANCE_CONTEXT context = NULL;
    ULONG sectorSize = FS_FALLBACK_SECTOR_SIZE;
    ULONG length;
    ULONG bytesRead = 0;
    PVOID buffer;
    LARGE_INTEGER offset;

    PAGED_CODE();

    *Copied = 0;

    status = FltGetInstanceContext(FltObjects->Instance, (PFLT_CONTEXT *)&context);
    if (NT_SUCCESS(status)) {
        sectorSize = context->SectorSize;
        FltReleaseContext(context);
    }

    length = FS_ROUND_UP(Wanted, sectorSize);
    buffer = FltAllocatePoolAlignedWithTag(FltObjects->Instance, NonPagedPoolNx, length, FS_TAG_READ);
    if (buffer == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    FsTrackAllocation(length, TRUE);

    offset.QuadPart = 0;
    status = FltReadFile(
        FltObjects->Instance, FltObjects->FileObject, &offset, length, buffer,
        FLTFL_IO_OPERATION_NON_CACHED | FLTFL_IO_OPERATION_DO_NOT_UPDATE_BYTE_OFFSET, &bytesRead, NULL, NULL
    );

    if (status == STATUS_END_OF_FILE) {
        /* An empty file: nothing to read is not a failure. */
        status = STATUS_SUCCESS;
        bytesRead = 0;
    }

    if (NT_SUCCESS(status)) {
        *Copied = min(bytesRead, Wanted);
        RtlCopyMemory(Out, buffer, *Copied);
    }

    FltFreePoolAlignedWithTag(FltObjects->Instance, buffer, FS_TAG_READ);
    FsTrackAllocation(length, FALSE);
    return status;
}

/* Turns the FltSendMessage outcome into allow (FALSE) or deny (TRUE), counting it. */
static BOOLEAN
FsEvaluateReply(
    _In_ NTSTATUS SendStatus,
    _In_ const FLTSAMPLE_SCAN_REPLY *Reply,
    _In_ ULONG ReplyLength,
    _In_ const FS_SCAN_POLICY *Policy
)
{
    /* STATUS_TIMEOUT is a success code (NT_SUCCESS is TRUE for it): test it first, explicitly. */
    if (SendStatus == STATUS_TIMEOUT) {
        InterlockedIncrement64(&FsGlobals.Counters.ScanTimeouts);
        return FsFailurePolicyDenies(Policy);
    }

    /* Anything but STATUS_SUCCESS is a failure here, including STATUS_BUFFER_OVERFLOW (the agent
     * replied with more than FLTSAMPLE_SCAN_REPLY) and STATUS_PORT_DISCONNECTED. */
    if (SendStatus != STATUS_SUCCESS || ReplyLength < sizeof(FLTSAMPLE_SCAN_REPLY)) {
        InterlockedIncrement64(&FsGlobals.Counters.ScanErrors);
        return FsFailurePolicyDenies(Policy);
    }

    switch (Reply->Verdict) {
    case FLTSAMPLE_VERDICT_ALLOW:
        InterlockedIncrement64(&FsGlobals.Counters.ScansAllowed);
        return FALSE;
    case FLTSAMPLE_VERDICT_BLOCK:
        InterlockedIncrement64(&FsGlobals.Counters.ScansBlocked);
        return TRUE;
    default:
        InterlockedIncrement64(&FsGlobals.Counters.ScanErrors);
        return FsFailurePolicyDenies(Policy);
    }
}

_Use_decl_annotations_
BOOLEAN
FsScanOpenedFile(
    PFLT_CALLBACK_DATA Data,
    PCFLT_RELATED_OBJECTS FltObjects
)
{
    NTSTATUS status;
    PFLT_FILE_NAME_INFORMATION nameInfo = NULL;
    FLTSAMPLE_SCAN_REQUEST *request = NULL;
    PFS_CLIENT client = NULL;
    FS_SCAN_POLICY policy;
    FILE_STANDARD_INFORMATION standard;
    FILE_INTERNAL_INFORMATION internal;
    FLTSAMPLE_SCAN_REPLY reply;
    ULONG replyLength;
    ULONG pathChars;
    ULONG copied;
    LARGE_INTEGER timeout;
    BOOLEAN inScope;
    BOOLEAN haveSize;
    BOOLEAN deny = FALSE;

    PAGED_CODE();

    /* Normalized names (long names, no short-name aliases) so that the extension check cannot
     * be dodged with an 8.3 name. */
    status = FltGetFileNameInformation(Data, FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT, &nameInfo);
    if (!NT_SUCCESS(status)) {
        /* Sample policy: an open whose name cannot be obtained is not scanned. */
        return FALSE;
    }

    status = FltParseFileNameInformation(nameInfo);
    if (!NT_SUCCESS(status)) {
        goto Done;
    }

    FltAcquirePushLockShared(&FsGlobals.Lock);
    inScope = FsConfigMatchesExtension(&FsGlobals.Config, &nameInfo->Extension);
    policy.Flags = FsGlobals.Config.Flags;
    policy.ReplyTimeoutMs = FsGlobals.Config.ReplyTimeoutMs;
    policy.ContentBytes = FsGlobals.Config.ContentBytes;
    FltReleasePushLock(&FsGlobals.Lock);

    if (!inScope) {
        goto Done;
    }

    /* A FILE_OPEN without FILE_DIRECTORY_FILE can still open a directory: skip those here. */
    status = FltQueryInformationFile(
        FltObjects->Instance, FltObjects->FileObject, &standard, sizeof(standard), FileStandardInformation, NULL
    );
    haveSize = NT_SUCCESS(status);
    if (haveSize && standard.Directory) {
        goto Done;
    }

    client = FsReferenceNextScanner();
    if (client == NULL) {
        InterlockedIncrement64(&FsGlobals.Counters.NoAgentOpens);
        deny = FsFailurePolicyDenies(&policy);
        goto Done;
    }

    /* Non-paged: FltSendMessage copies from it while this thread waits. Zeroed by FsAllocate,
     * which is what the protocol promises for unused Path and Content bytes. */
    request = FsAllocate(POOL_FLAG_NON_PAGED, sizeof(*request), FS_TAG_MESSAGE);
    if (request == NULL) {
        InterlockedIncrement64(&FsGlobals.Counters.ScanErrors);
        deny = FsFailurePolicyDenies(&policy);
        goto Done;
    }

    request->ProtocolVersion = FLTSAMPLE_PROTOCOL_VERSION;
    request->MessageType = FLTSAMPLE_MSG_SCAN_REQUEST;
    request->ScanId = (FLTSAMPLE_U64)InterlockedIncrement64(&FsGlobals.NextScanId);
    request->ProcessId = FltGetRequestorProcessId(Data);
    request->FileSize = haveSize ? standard.EndOfFile.QuadPart : -1;

    status = FltQueryInformationFile(
        FltObjects->Instance, FltObjects->FileObject, &internal, sizeof(internal), FileInternalInformation, NULL
    );
    request->FileId = NT_SUCCESS(status) ? (FLTSAMPLE_U64)internal.IndexNumber.QuadPart : 0;

    pathChars = (ULONG)(nameInfo->Name.Length / sizeof(WCHAR));
    if (pathChars > FLTSAMPLE_MAX_PATH_CHARS - 1) {
        pathChars = FLTSAMPLE_MAX_PATH_CHARS - 1;
        request->Flags |= FLTSAMPLE_SCAN_FLAG_PATH_TRUNCATED;
    }
    RtlCopyMemory(request->Path, nameInfo->Name.Buffer, pathChars * sizeof(WCHAR));
    request->PathLength = pathChars; /* Path[pathChars] is already 0 */

    if (policy.ContentBytes != 0 && (!haveSize || standard.EndOfFile.QuadPart > 0)) {
        status = FsReadHead(FltObjects, policy.ContentBytes, request->Content, &copied);
        if (NT_SUCCESS(status)) {
            request->ContentLength = copied;
        } else {
            request->Flags |= FLTSAMPLE_SCAN_FLAG_READ_FAILED;
        }
    }
    if (haveSize && standard.EndOfFile.QuadPart > (LONGLONG)request->ContentLength) {
        request->Flags |= FLTSAMPLE_SCAN_FLAG_CONTENT_TRUNCATED;
    }

    /* Relative timeout in 100 ns units. It covers waiting for a free agent and for its reply. */
    timeout.QuadPart = -(LONGLONG)policy.ReplyTimeoutMs * 10000;
    RtlZeroMemory(&reply, sizeof(reply));
    replyLength = sizeof(reply);

    InterlockedIncrement64(&FsGlobals.Counters.ScanRequests);
    status = FltSendMessage(FsGlobals.Filter, &client->Port, request, sizeof(*request), &reply, &replyLength, &timeout);

    deny = FsEvaluateReply(status, &reply, replyLength, &policy);

Done:
    if (request != NULL) {
        FsFree(request, FS_TAG_MESSAGE);
    }
    if (client != NULL) {
        FsDereferenceClient(client);
    }
    if (nameInfo != NULL) {
        FltReleaseFileNameInformation(nameInfo);
    }
    return deny;
}
