/*++

Module Name:

    port.c

Abstract:

    The communication port: its security descriptor, connections (several agents, served
    round-robin), the user -> kernel commands, and PROBE.

Environment:

    Kernel mode, PASSIVE_LEVEL unless stated otherwise.

--*/

#include "fltsample.h"

static NTSTATUS FLTAPI
FsPortConnect(
    _In_ PFLT_PORT ClientPort,
    _In_opt_ PVOID ServerPortCookie,
    _In_reads_bytes_opt_(SizeOfContext) PVOID ConnectionContext,
    _In_ ULONG SizeOfContext,
    _Outptr_result_maybenull_ PVOID *ConnectionCookie
);

static VOID FLTAPI
FsPortDisconnect(_In_opt_ PVOID ConnectionCookie);

static NTSTATUS FLTAPI
FsPortMessage(
    _In_opt_ PVOID PortCookie,
    _In_reads_bytes_opt_(InputBufferLength) PVOID InputBuffer,
    _In_ ULONG InputBufferLength,
    _Out_writes_bytes_to_opt_(
        OutputBufferLength,
        *ReturnOutputBufferLength
    ) PVOID OutputBuffer,
    _In_ ULONG OutputBufferLength,
    _Out_ PULONG ReturnOutputBufferLength
);

#ifdef ALLOC_PRAGMA
#pragma alloc_text(PAGE, FsPortCreate)
#pragma alloc_text(PAGE, FsPortCloseServer)
#pragma alloc_text(PAGE, FsPortDisconnectAll)
#pragma alloc_text(PAGE, FsPortReleaseAllClients)
#pragma alloc_text(PAGE, FsPortConnect)
#pragma alloc_text(PAGE, FsPortDisconnect)
#pragma alloc_text(PAGE, FsPortMessage)
#endif

/*
 * Clients
 */

static VOID
FsReferenceClient(_In_ PFS_CLIENT Client)
{
    NT_VERIFY(InterlockedIncrement(&Client->RefCount) > 1);
}

_Use_decl_annotations_
VOID
FsDereferenceClient(PFS_CLIENT Client)
{
    if (InterlockedDecrement(&Client->RefCount) == 0) {
        NT_ASSERT(Client->Port == NULL && !Client->Linked);
        FsFree(Client, FS_TAG_CLIENT);
    }
}

/* FltCloseClientPort exactly once per connection, whoever gets there first: the disconnect
 * callback (the agent closed its handle) or teardown (the driver is unloading). */
_IRQL_requires_(PASSIVE_LEVEL)
static VOID
FsCloseClientPort(_In_ PFS_CLIENT Client)
{
    PAGED_CODE();

    if (InterlockedExchange(&Client->PortClosed, 1) == 0) {
        /* Sets Client->Port to NULL and synchronises with FltSendMessage calls using it. */
        FltCloseClientPort(FsGlobals.Filter, &Client->Port);
    }
}

_Use_decl_annotations_
PFS_CLIENT
FsReferenceNextScanner(VOID)
{
    PFS_CLIENT chosen = NULL;
    PLIST_ENTRY entry;
    ULONG target;
    ULONG index = 0;

    if (ReadNoFence(&FsGlobals.Unloading) != 0) {
        return NULL;
    }

    FltAcquirePushLockShared(&FsGlobals.Lock);

    if (FsGlobals.ScannerCount != 0) {
        /* Round-robin: the counter moves under a shared lock, so it is advanced atomically. */
        target = (ULONG)InterlockedIncrement((volatile LONG *)&FsGlobals.RoundRobin) % FsGlobals.ScannerCount;

        for (entry = FsGlobals.Clients.Flink; entry != &FsGlobals.Clients; entry = entry->Flink) {
            PFS_CLIENT client = CONTAINING_RECORD(entry, FS_CLIENT, Link);

            if (!FlagOn(client->Flags, FLTSAMPLE_CONNECT_FLAG_SCANNER)) {
                continue;
            }
            if (chosen == NULL || index == target) {
                chosen = client;
            }
            if (index == target) {
                break;
            }
            index++;
        }

        if (chosen != NULL) {
            FsReferenceClient(chosen);
        }
    }

    FltReleasePushLock(&FsGlobals.Lock);
    return chosen;
}

_Use_decl_annotations_
BOOLEAN
FsIsExcludedProcess(ULONG ProcessId)
{
    PLIST_ENTRY entry;
    BOOLEAN excluded = FALSE;

    FltAcquirePushLockShared(&FsGlobals.Lock);
    for (entry = FsGlobals.Clients.Flink; entry != &FsGlobals.Clients; entry = entry->Flink) {
        PFS_CLIENT client = CONTAINING_RECORD(entry, FS_CLIENT, Link);

        if (FlagOn(client->Flags, FLTSAMPLE_CONNECT_FLAG_SCANNER) && client->ProcessId == ProcessId) {
            excluded = TRUE;
            break;
        }
    }
    FltReleasePushLock(&FsGlobals.Lock);

    return excluded;
}

/*
 * Security: FltBuildDefaultSecurityDescriptor admits SYSTEM and Administrators only. With the
 * PortGroupSid registry value set, the DACL is copied into a new absolute descriptor with one
 * more ACE that lets that group connect (a non-admin UI). FltCreateCommunicationPort captures
 * the descriptor, so everything built here is freed right after.
 */
_IRQL_requires_(PASSIVE_LEVEL)
static NTSTATUS
FsBuildGroupDacl(
    _In_ PSECURITY_DESCRIPTOR DefaultSd,
    _In_ PSID GroupSid,
    _Outptr_ PACL *NewDacl
)
{
    NTSTATUS status;
    BOOLEAN present = FALSE;
    BOOLEAN defaulted = FALSE;
    PACL oldDacl = NULL;
    PACL dacl;
    ULONG size;
    ULONG i;

    PAGED_CODE();

    *NewDacl = NULL;

    status = RtlGetDaclSecurityDescriptor(DefaultSd, &present, &oldDacl, &defaulted);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    if (!present || oldDacl == NULL) {
        /* Not what FltBuildDefaultSecurityDescriptor returns; refuse rather than guess. */
        return STATUS_INVALID_SECURITY_DESCR;
    }

    size = (ULONG)oldDacl->AclSize + (ULONG)FIELD_OFFSET(ACCESS_ALLOWED_ACE, SidStart) + RtlLengthSid(GroupSid);
    dacl = FsAllocate(POOL_FLAG_PAGED, size, FS_TAG_SECURITY);
    if (dacl == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }

    status = RtlCreateAcl(dacl, size, ACL_REVISION);
    for (i = 0; NT_SUCCESS(status) && i < oldDacl->AceCount; i++) {
        PVOID ace = NULL;

        status = RtlGetAce(oldDacl, i, &ace);
        if (NT_SUCCESS(status)) {
            status = RtlAddAce(dacl, ACL_REVISION, MAXULONG, ace, ((PACE_HEADER)ace)->AceSize);
        }
    }
    if (NT_SUCCESS(status)) {
        status = RtlAddAccessAllowedAce(dacl, ACL_REVISION, FS_GROUP_PORT_ACCESS, GroupSid);
    }

    if (!NT_SUCCESS(status)) {
        FsFree(dacl, FS_TAG_SECURITY);
        return status;
    }

    *NewDacl = dacl;
    return STATUS_SUCCESS;
}

_Use_decl_annotations_
NTSTATUS
FsPortCreate(VOID)
{
    NTSTATUS status;
    PSECURITY_DESCRIPTOR defaultSd = NULL;
    SECURITY_DESCRIPTOR groupSd;
    PSECURITY_DESCRIPTOR portSd;
    PACL groupDacl = NULL;
    OBJECT_ATTRIBUTES attributes;
    UNICODE_STRING name = RTL_CONSTANT_STRING(FLTSAMPLE_PORT_NAME);

    PAGED_CODE();

    status = FltBuildDefaultSecurityDescriptor(&defaultSd, FLT_PORT_ALL_ACCESS);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    portSd = defaultSd;

    if (FsGlobals.PortGroupSid != NULL) {
        status = FsBuildGroupDacl(defaultSd, FsGlobals.PortGroupSid, &groupDacl);
        if (NT_SUCCESS(status)) {
            status = RtlCreateSecurityDescriptor(&groupSd, SECURITY_DESCRIPTOR_REVISION);
        }
        if (NT_SUCCESS(status)) {
            status = RtlSetDaclSecurityDescriptor(&groupSd, TRUE, groupDacl, FALSE);
        }
        if (NT_SUCCESS(status)) {
            portSd = &groupSd;
        } else {
            /* The opt-in failed: keep the admin-only port rather than failing the load. */
            DbgPrintEx(
                DPFLTR_IHVDRIVER_ID, DPFLTR_WARNING_LEVEL,
                "fltsample: could not add the PortGroupSid ACE (0x%08X); port stays admin-only\n", status
            );
        }
    }

    InitializeObjectAttributes(&attributes, &name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, portSd);

    status = FltCreateCommunicationPort(
        FsGlobals.Filter, &FsGlobals.ServerPort, &attributes, NULL, FsPortConnect, FsPortDisconnect, FsPortMessage,
        (LONG)FLTSAMPLE_MAX_CONNECTIONS
    );
    if (!NT_SUCCESS(status)) {
        FsGlobals.ServerPort = NULL;
    }

    FltFreeSecurityDescriptor(defaultSd);
    if (groupDacl != NULL) {
        FsFree(groupDacl, FS_TAG_SECURITY);
    }
    return status;
}

_Use_decl_annotations_
VOID
FsPortCloseServer(VOID)
{
    PAGED_CODE();

    /* Stops new connections only; existing ones are closed by FsPortDisconnectAll. */
    if (FsGlobals.ServerPort != NULL) {
        FltCloseCommunicationPort(FsGlobals.ServerPort);
        FsGlobals.ServerPort = NULL;
    }
}

_Use_decl_annotations_
VOID
FsPortDisconnectAll(VOID)
{
    PAGED_CODE();

    /* One client per pass, closed outside the lock: FltCloseClientPort waits for senders. */
    for (;;) {
        PFS_CLIENT next = NULL;
        PLIST_ENTRY entry;

        FltAcquirePushLockShared(&FsGlobals.Lock);
        for (entry = FsGlobals.Clients.Flink; entry != &FsGlobals.Clients; entry = entry->Flink) {
            PFS_CLIENT client = CONTAINING_RECORD(entry, FS_CLIENT, Link);

            if (ReadNoFence(&client->PortClosed) == 0) {
                FsReferenceClient(client);
                next = client;
                break;
            }
        }
        FltReleasePushLock(&FsGlobals.Lock);

        if (next == NULL) {
            break;
        }
        FsCloseClientPort(next);
        FsDereferenceClient(next);
    }
}

_Use_decl_annotations_
VOID
FsPortReleaseAllClients(VOID)
{
    PAGED_CODE();

    /* After FltUnregisterFilter: connections whose disconnect callback never ran. Their ports
     * were closed by FsPortDisconnectAll, so only the list's references remain. */
    FltAcquirePushLockExclusive(&FsGlobals.Lock);
    while (!IsListEmpty(&FsGlobals.Clients)) {
        PFS_CLIENT client = CONTAINING_RECORD(RemoveHeadList(&FsGlobals.Clients), FS_CLIENT, Link);

        NT_ASSERT(client->PortClosed != 0);
        client->Linked = FALSE;
        FsGlobals.ClientCount--;
        if (FlagOn(client->Flags, FLTSAMPLE_CONNECT_FLAG_SCANNER)) {
            FsGlobals.ScannerCount--;
        }
        FsDereferenceClient(client);
    }
    FltReleasePushLock(&FsGlobals.Lock);
}

/*
 * TRUE when the connecting thread's effective token (the impersonation token if it has one)
 * contains the Administrators group, which SYSTEM's does too. [unverified on Windows: that
 * SeTokenIsAdmin ignores a deny-only Administrators group in a UAC-filtered token.]
 */
_IRQL_requires_(PASSIVE_LEVEL)
static BOOLEAN
FsCallerIsAdmin(VOID)
{
    SECURITY_SUBJECT_CONTEXT subject;
    BOOLEAN admin;

    PAGED_CODE();

    SeCaptureSubjectContext(&subject);
    admin = SeTokenIsAdmin(SeQuerySubjectContextToken(&subject));
    SeReleaseSubjectContext(&subject);
    return admin;
}

/*
 * Connect: runs in the connecting process (FilterConnectCommunicationPort is a create on the
 * port), after Filter Manager checked the port's security descriptor.
 */
static NTSTATUS FLTAPI
FsPortConnect(
    _In_ PFLT_PORT ClientPort,
    _In_opt_ PVOID ServerPortCookie,
    _In_reads_bytes_opt_(SizeOfContext) PVOID ConnectionContext,
    _In_ ULONG SizeOfContext,
    _Outptr_result_maybenull_ PVOID *ConnectionCookie
)
{
    NTSTATUS status = STATUS_SUCCESS;
    FLTSAMPLE_CONNECT_CONTEXT context;
    PFS_CLIENT client;
    ULONG processId;
    BOOLEAN privileged;

    UNREFERENCED_PARAMETER(ServerPortCookie);
    PAGED_CODE();

    *ConnectionCookie = NULL;
    RtlZeroMemory(&context, sizeof(context));

    if (ConnectionContext != NULL && SizeOfContext != 0) {
        if (SizeOfContext != sizeof(context)) {
            return STATUS_INVALID_PARAMETER;
        }
        /* Filter Manager hands over its own copy of lpContext [unverified]; the guarded copy
         * costs nothing if so and protects us if it is ever the caller's memory. */
        __try {
            RtlCopyMemory(&context, ConnectionContext, sizeof(context));
        } __except (EXCEPTION_EXECUTE_HANDLER) {
            status = GetExceptionCode();
        }
        if (!NT_SUCCESS(status)) {
            return status;
        }
        if (context.ProtocolVersion != FLTSAMPLE_PROTOCOL_VERSION) {
            return STATUS_REVISION_MISMATCH;
        }
        if ((context.Flags & ~FLTSAMPLE_CONNECT_VALID_FLAGS) != 0 || context.Reserved0 != 0 || context.Reserved1 != 0) {
            return STATUS_INVALID_PARAMETER;
        }
    }

    /* The process id comes from what we observe, never from the caller: a client must not be
     * able to exclude some other process from scanning. */
    processId = HandleToULong(PsGetCurrentProcessId());
    if (context.ProcessId != 0 && context.ProcessId != processId) {
        return STATUS_INVALID_PARAMETER;
    }

    /* The scanner role decides verdicts and exempts its process from scanning: admins only,
     * even when the opt-in group ACE lets non-admins connect. */
    privileged = FsCallerIsAdmin();
    if (FlagOn(context.Flags, FLTSAMPLE_CONNECT_FLAG_SCANNER) && !privileged) {
        return STATUS_ACCESS_DENIED;
    }

    /* Non-paged: the last dereference may come from any IRQL <= DISPATCH_LEVEL. */
    client = FsAllocate(POOL_FLAG_NON_PAGED, sizeof(*client), FS_TAG_CLIENT);
    if (client == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    client->Port = ClientPort;
    client->RefCount = 1; /* the list's reference, dropped in FsPortDisconnect */
    client->ProcessId = processId;
    client->Flags = context.Flags;
    client->Privileged = privileged;

    FltAcquirePushLockExclusive(&FsGlobals.Lock);
    if (ReadNoFence(&FsGlobals.Unloading) != 0) {
        status = STATUS_DELETE_PENDING;
    } else {
        InsertTailList(&FsGlobals.Clients, &client->Link);
        client->Linked = TRUE;
        FsGlobals.ClientCount++;
        if (FlagOn(client->Flags, FLTSAMPLE_CONNECT_FLAG_SCANNER)) {
            FsGlobals.ScannerCount++;
        }
    }
    FltReleasePushLock(&FsGlobals.Lock);

    if (!NT_SUCCESS(status)) {
        /* A failed connect: Filter Manager disposes of ClientPort itself [unverified]. */
        client->Port = NULL;
        FsFree(client, FS_TAG_CLIENT);
        return status;
    }

    InterlockedIncrement64(&FsGlobals.Counters.ConnectionsTotal);
    *ConnectionCookie = client;
    return STATUS_SUCCESS;
}

static VOID FLTAPI
FsPortDisconnect(_In_opt_ PVOID ConnectionCookie)
{
    PFS_CLIENT client = (PFS_CLIENT)ConnectionCookie;
    BOOLEAN unlinked = FALSE;

    PAGED_CODE();

    if (client == NULL) {
        return;
    }

    FltAcquirePushLockExclusive(&FsGlobals.Lock);
    if (client->Linked) {
        RemoveEntryList(&client->Link);
        client->Linked = FALSE;
        FsGlobals.ClientCount--;
        if (FlagOn(client->Flags, FLTSAMPLE_CONNECT_FLAG_SCANNER)) {
            FsGlobals.ScannerCount--;
        }
        unlinked = TRUE;
    }
    FltReleasePushLock(&FsGlobals.Lock);

    /* Required of every disconnect callback; also ends sends that are waiting on this client. */
    FsCloseClientPort(client);

    if (unlinked) {
        FsDereferenceClient(client);
    }
}

/*
 * Commands
 */

static ULONG64
FsTicksTo100ns(
    _In_ LONGLONG Ticks,
    _In_ LONGLONG Frequency
)
{
    /* Split so that long probes cannot overflow Ticks * 10^7. */
    return (ULONG64)((Ticks / Frequency) * 10000000 + ((Ticks % Frequency) * 10000000) / Frequency);
}

/* PROBE: synthetic messages to the caller's own connection, timed in the kernel. */
_IRQL_requires_(PASSIVE_LEVEL)
static NTSTATUS
FsRunProbe(
    _In_ PFS_CLIENT Client,
    _In_ const FLTSAMPLE_PROBE_REQUEST *Request,
    _Out_ FLTSAMPLE_PROBE_RESULT *Result
)
{
    static const WCHAR probePath[] = L"\\FltmgrSample\\probe";
    FLTSAMPLE_SCAN_REQUEST *message;
    FLTSAMPLE_SCAN_REPLY reply;
    LARGE_INTEGER frequency;
    LARGE_INTEGER start;
    LARGE_INTEGER timeout;
    BOOLEAN noReply = FlagOn(Request->Flags, FLTSAMPLE_PROBE_FLAG_NO_REPLY);
    ULONG i;

    PAGED_CODE();

    RtlZeroMemory(Result, sizeof(*Result));

    message = FsAllocate(POOL_FLAG_NON_PAGED, sizeof(*message), FS_TAG_MESSAGE);
    if (message == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }

    message->ProtocolVersion = FLTSAMPLE_PROTOCOL_VERSION;
    message->MessageType = FLTSAMPLE_MSG_PROBE;
    message->Flags = noReply ? FLTSAMPLE_SCAN_FLAG_NO_REPLY : 0;
    message->FileSize = Request->ContentBytes;
    message->PathLength = (FLTSAMPLE_U32)(RTL_NUMBER_OF(probePath) - 1);
    RtlCopyMemory(message->Path, probePath, sizeof(probePath));
    message->ContentLength = Request->ContentBytes;
    for (i = 0; i < Request->ContentBytes; i++) {
        message->Content[i] = (FLTSAMPLE_U8)(i & 0xFF);
    }

    timeout.QuadPart = -(LONGLONG)Request->TimeoutMs * 10000;
    start = KeQueryPerformanceCounter(&frequency);

    for (i = 0; i < Request->Count; i++) {
        NTSTATUS status;
        LARGE_INTEGER before;
        LARGE_INTEGER after;
        ULONG replyLength = sizeof(reply);
        ULONG64 roundTrip;

        if (ReadNoFence(&FsGlobals.Unloading) != 0) {
            Result->Failed++;
            Result->LastStatus = STATUS_DELETE_PENDING;
            break;
        }

        message->ScanId = (FLTSAMPLE_U64)InterlockedIncrement64(&FsGlobals.NextScanId);
        RtlZeroMemory(&reply, sizeof(reply));

        before = KeQueryPerformanceCounter(NULL);
        status = FltSendMessage(
            FsGlobals.Filter, &Client->Port, message, sizeof(*message), noReply ? NULL : &reply,
            noReply ? NULL : &replyLength, &timeout
        );
        after = KeQueryPerformanceCounter(NULL);
        InterlockedIncrement64(&FsGlobals.Counters.ProbeMessages);

        /* Stop at the first message that did not go through, timeouts included: after the
         * caller closes its handle every further message would wait the full timeout. */
        if (status == STATUS_TIMEOUT) {
            Result->TimedOut++;
            Result->LastStatus = status;
            break;
        }
        if (status != STATUS_SUCCESS) {
            Result->Failed++;
            Result->LastStatus = status;
            break;
        }

        Result->Sent++;
        if (!noReply) {
            if (replyLength >= sizeof(reply) &&
                (reply.Verdict == FLTSAMPLE_VERDICT_ALLOW || reply.Verdict == FLTSAMPLE_VERDICT_BLOCK)) {
                Result->Replied++;
            } else {
                Result->Failed++;
            }
        }

        roundTrip = FsTicksTo100ns(after.QuadPart - before.QuadPart, frequency.QuadPart);
        if (Result->MinRoundTrip == 0 || roundTrip < Result->MinRoundTrip) {
            Result->MinRoundTrip = roundTrip;
        }
        if (roundTrip > Result->MaxRoundTrip) {
            Result->MaxRoundTrip = roundTrip;
        }
    }

    Result->ElapsedTime = FsTicksTo100ns(KeQueryPerformanceCounter(NULL).QuadPart - start.QuadPart, frequency.QuadPart);
    FsFree(message, FS_TAG_MESSAGE);
    return STATUS_SUCCESS;
}

/* Copies a command's output to the caller's raw user-mode buffer. */
static NTSTATUS
FsCopyOutput(
    _Out_writes_bytes_to_opt_(
        OutputBufferLength,
        *Returned
    ) PVOID OutputBuffer,
    _In_ ULONG OutputBufferLength,
    _In_reads_bytes_(Length) const VOID *Source,
    _In_ ULONG Length,
    _Out_ PULONG Returned
)
{
    NTSTATUS status = STATUS_SUCCESS;

    *Returned = 0;
    if (Length == 0) {
        return STATUS_SUCCESS;
    }
    if (OutputBuffer == NULL || OutputBufferLength < Length) {
        return STATUS_BUFFER_TOO_SMALL;
    }

    __try {
        RtlCopyMemory(OutputBuffer, Source, Length);
        *Returned = Length;
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
    }
    return status;
}

static NTSTATUS
FsDispatchCommand(
    _In_ PFS_CLIENT Client,
    _In_reads_bytes_(InputLength) const UCHAR *Input,
    _In_ ULONG InputLength,
    _Out_writes_bytes_to_opt_(
        OutputBufferLength,
        *Returned
    ) PVOID OutputBuffer,
    _In_ ULONG OutputBufferLength,
    _Out_ PULONG Returned
)
{
    const FLTSAMPLE_COMMAND_HEADER *header = (const FLTSAMPLE_COMMAND_HEADER *)Input;
    const UCHAR *body = Input + sizeof(*header);
    ULONG bodyLength = InputLength - (ULONG)sizeof(*header);
    NTSTATUS status;

    *Returned = 0;

    if (header->ProtocolVersion != FLTSAMPLE_PROTOCOL_VERSION) {
        return STATUS_REVISION_MISMATCH;
    }
    if (header->Reserved != 0) {
        return STATUS_INVALID_PARAMETER;
    }

    switch (header->Command) {
    case FLTSAMPLE_CMD_GET_STATS: {
        FLTSAMPLE_STATS stats;

        if (bodyLength != 0) {
            return STATUS_INVALID_PARAMETER;
        }
        FsFillStats(&stats);
        return FsCopyOutput(OutputBuffer, OutputBufferLength, &stats, sizeof(stats), Returned);
    }

    case FLTSAMPLE_CMD_GET_CONFIG: {
        FLTSAMPLE_CONFIG config;

        if (bodyLength != 0) {
            return STATUS_INVALID_PARAMETER;
        }
        FltAcquirePushLockShared(&FsGlobals.Lock);
        config = FsGlobals.Config;
        FltReleasePushLock(&FsGlobals.Lock);
        return FsCopyOutput(OutputBuffer, OutputBufferLength, &config, sizeof(config), Returned);
    }

    case FLTSAMPLE_CMD_SET_CONFIG: {
        FLTSAMPLE_CONFIG config;

        if (!Client->Privileged) {
            return STATUS_ACCESS_DENIED;
        }
        if (bodyLength != sizeof(config)) {
            return STATUS_INVALID_PARAMETER;
        }
        /* The output is optional; if asked for, its size is checked before anything changes. */
        if (OutputBufferLength != 0 && OutputBufferLength < sizeof(config)) {
            return STATUS_BUFFER_TOO_SMALL;
        }
        RtlCopyMemory(&config, body, sizeof(config));
        status = FsConfigValidate(&config);
        if (!NT_SUCCESS(status)) {
            return status;
        }
        FltAcquirePushLockExclusive(&FsGlobals.Lock);
        FsGlobals.Config = config;
        FltReleasePushLock(&FsGlobals.Lock);
        if (OutputBufferLength == 0) {
            return STATUS_SUCCESS;
        }
        return FsCopyOutput(OutputBuffer, OutputBufferLength, &config, sizeof(config), Returned);
    }

    case FLTSAMPLE_CMD_ECHO:
        if (bodyLength > FLTSAMPLE_MAX_ECHO_BYTES) {
            return STATUS_INVALID_PARAMETER;
        }
        return FsCopyOutput(OutputBuffer, OutputBufferLength, body, bodyLength, Returned);

    case FLTSAMPLE_CMD_PROBE: {
        FLTSAMPLE_PROBE_REQUEST request;
        FLTSAMPLE_PROBE_RESULT result;

        if (bodyLength != sizeof(request)) {
            return STATUS_INVALID_PARAMETER;
        }
        RtlCopyMemory(&request, body, sizeof(request));
        if (request.Count == 0 || request.Count > FLTSAMPLE_MAX_PROBE_COUNT ||
            request.ContentBytes > FLTSAMPLE_MAX_CONTENT_BYTES || request.TimeoutMs == 0 ||
            request.TimeoutMs > FLTSAMPLE_MAX_PROBE_TIMEOUT_MS || (request.Flags & ~FLTSAMPLE_PROBE_VALID_FLAGS) != 0) {
            return STATUS_INVALID_PARAMETER;
        }
        /* Checked first so that a long probe's result is not lost to a small buffer. */
        if (OutputBufferLength < sizeof(result)) {
            return STATUS_BUFFER_TOO_SMALL;
        }
        status = FsRunProbe(Client, &request, &result);
        if (!NT_SUCCESS(status)) {
            return status;
        }
        return FsCopyOutput(OutputBuffer, OutputBufferLength, &result, sizeof(result), Returned);
    }

    default:
        return STATUS_INVALID_DEVICE_REQUEST;
    }
}

/*
 * FilterSendMessage lands here, in the sender's thread. Both buffers are raw user-mode
 * addresses: Filter Manager probed them but did not check alignment and the user can change or
 * unmap them at any time, so the input is captured once under __try and the output is written
 * under __try.
 */
static NTSTATUS FLTAPI
FsPortMessage(
    _In_opt_ PVOID PortCookie,
    _In_reads_bytes_opt_(InputBufferLength) PVOID InputBuffer,
    _In_ ULONG InputBufferLength,
    _Out_writes_bytes_to_opt_(
        OutputBufferLength,
        *ReturnOutputBufferLength
    ) PVOID OutputBuffer,
    _In_ ULONG OutputBufferLength,
    _Out_ PULONG ReturnOutputBufferLength
)
{
    PFS_CLIENT client = (PFS_CLIENT)PortCookie;
    NTSTATUS status = STATUS_SUCCESS;
    PUCHAR input = NULL;

    PAGED_CODE();

    *ReturnOutputBufferLength = 0;

    if (client == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    if (InputBuffer == NULL || InputBufferLength < sizeof(FLTSAMPLE_COMMAND_HEADER) ||
        InputBufferLength > sizeof(FLTSAMPLE_COMMAND_HEADER) + FLTSAMPLE_MAX_ECHO_BYTES) {
        return STATUS_INVALID_PARAMETER;
    }
    if (!FS_IS_ALIGNED(InputBuffer, 8) || (OutputBuffer != NULL && !FS_IS_ALIGNED(OutputBuffer, 8))) {
        return STATUS_DATATYPE_MISALIGNMENT;
    }

    if (!ExAcquireRundownProtection(&FsGlobals.Rundown)) {
        return STATUS_DELETE_PENDING;
    }

    input = FsAllocate(POOL_FLAG_PAGED, InputBufferLength, FS_TAG_COMMAND);
    if (input == NULL) {
        status = STATUS_INSUFFICIENT_RESOURCES;
        goto Done;
    }

    __try {
        RtlCopyMemory(input, InputBuffer, InputBufferLength);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
    }
    if (!NT_SUCCESS(status)) {
        goto Done;
    }

    status =
        FsDispatchCommand(client, input, InputBufferLength, OutputBuffer, OutputBufferLength, ReturnOutputBufferLength);

Done:
    if (input != NULL) {
        FsFree(input, FS_TAG_COMMAND);
    }
    ExReleaseRundownProtection(&FsGlobals.Rundown);
    return status;
}
