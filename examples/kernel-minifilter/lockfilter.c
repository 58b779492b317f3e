/*
 * lockfilter.c - a small minifilter, written from the Filter Manager documentation only (not derived from
 * driver-sample/): it denies IRP_MJ_CREATE of files whose extension is "locked" unless the opening process
 * is on an allow list, which a user-mode client manages through the \LockFilterPort communication port.
 *
 * Commands (MessageNotify input: LOCKFILTER_COMMAND, little-endian):
 *   LOCKFILTER_ALLOW_PID   add ProcessId to the allow list (STATUS_INSUFFICIENT_RESOURCES when full)
 *   LOCKFILTER_REVOKE_PID  remove it (STATUS_NOT_FOUND when absent)
 *   LOCKFILTER_GET_COUNT   output: the number of opens denied so far (ULONG)
 * Only administrators (and SYSTEM) may connect: FltBuildDefaultSecurityDescriptor.
 *
 * Builds for the kernel harness (test/kernel/example-minifilter.test.ts) and, with the WDK, for Windows.
 */
#include <fltKernel.h>

#ifndef STATUS_NOT_FOUND /* ntstatus.h has it; the kernel harness's headers declare only what the sample uses */
#define STATUS_NOT_FOUND ((NTSTATUS)0xC0000225L)
#endif

#define LOCKFILTER_TAG 'kcoL' /* "Lock" in pool tools */
#define LOCKFILTER_MAX_ALLOWED 16

typedef enum _LOCKFILTER_COMMAND_CODE {
    LOCKFILTER_ALLOW_PID = 1,
    LOCKFILTER_REVOKE_PID = 2,
    LOCKFILTER_GET_COUNT = 3,
} LOCKFILTER_COMMAND_CODE;

typedef struct _LOCKFILTER_COMMAND {
    ULONG Command;
    ULONG ProcessId;
} LOCKFILTER_COMMAND;

/* Everything mutable, in one pool block: the allow list under a push lock, the denial count interlocked. */
typedef struct _LOCKFILTER_STATE {
    EX_PUSH_LOCK Lock;
    ULONG AllowedCount;
    ULONG Allowed[LOCKFILTER_MAX_ALLOWED];
    volatile LONG Denials;
} LOCKFILTER_STATE;

static PFLT_FILTER g_Filter;
static PFLT_PORT g_ServerPort;
static PFLT_PORT g_ClientPort;
static LOCKFILTER_STATE *g_State;

static BOOLEAN IsAllowed(ULONG ProcessId) {
    BOOLEAN allowed = FALSE;
    ULONG i;
    FltAcquirePushLockShared(&g_State->Lock);
    for (i = 0; i < g_State->AllowedCount && !allowed; i++) allowed = (BOOLEAN)(g_State->Allowed[i] == ProcessId);
    FltReleasePushLock(&g_State->Lock);
    return allowed;
}

static BOOLEAN IsLockedFile(PFLT_CALLBACK_DATA Data) {
    static const UNICODE_STRING locked = RTL_CONSTANT_STRING(L"locked");
    PFLT_FILE_NAME_INFORMATION name = NULL;
    BOOLEAN result = FALSE;
    if (!NT_SUCCESS(FltGetFileNameInformation(Data, FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT, &name)))
        return FALSE; /* no name, no decision: let the file system answer */
    if (NT_SUCCESS(FltParseFileNameInformation(name))) result = RtlEqualUnicodeString(&name->Extension, &locked, TRUE);
    FltReleaseFileNameInformation(name);
    return result;
}

static FLT_PREOP_CALLBACK_STATUS FLTAPI LockPreCreate(PFLT_CALLBACK_DATA Data, PCFLT_RELATED_OBJECTS FltObjects,
                                                      PVOID *CompletionContext) {
    ULONG pid;
    UNREFERENCED_PARAMETER(FltObjects);
    *CompletionContext = NULL;
    if (Data->RequestorMode == KernelMode || !IsLockedFile(Data)) return FLT_PREOP_SUCCESS_NO_CALLBACK;
    pid = FltGetRequestorProcessId(Data);
    if (IsAllowed(pid)) return FLT_PREOP_SUCCESS_NO_CALLBACK;
    InterlockedIncrement(&g_State->Denials);
    DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, "lockfilter: denied an open by process %lu\n", pid);
    Data->IoStatus.Status = STATUS_ACCESS_DENIED;
    Data->IoStatus.Information = 0;
    return FLT_PREOP_COMPLETE; /* the create never reaches the file system */
}

static NTSTATUS FLTAPI LockConnect(PFLT_PORT ClientPort, PVOID ServerPortCookie, PVOID ConnectionContext,
                                   ULONG SizeOfContext, PVOID *ConnectionPortCookie) {
    UNREFERENCED_PARAMETER(ServerPortCookie);
    UNREFERENCED_PARAMETER(ConnectionContext);
    UNREFERENCED_PARAMETER(SizeOfContext);
    *ConnectionPortCookie = NULL;
    g_ClientPort = ClientPort; /* MaxConnections is 1 */
    return STATUS_SUCCESS;
}

static VOID FLTAPI LockDisconnect(PVOID ConnectionCookie) {
    UNREFERENCED_PARAMETER(ConnectionCookie);
    FltCloseClientPort(g_Filter, &g_ClientPort);
}

static NTSTATUS ChangeAllowList(ULONG Command, ULONG ProcessId) {
    NTSTATUS status = (Command == LOCKFILTER_ALLOW_PID) ? STATUS_INSUFFICIENT_RESOURCES : STATUS_NOT_FOUND;
    ULONG i;
    FltAcquirePushLockExclusive(&g_State->Lock);
    for (i = 0; i < g_State->AllowedCount; i++) {
        if (g_State->Allowed[i] != ProcessId) continue;
        if (Command == LOCKFILTER_REVOKE_PID) g_State->Allowed[i] = g_State->Allowed[--g_State->AllowedCount];
        status = STATUS_SUCCESS; /* allowing an allowed pid again is a success */
        break;
    }
    if (i == g_State->AllowedCount && Command == LOCKFILTER_ALLOW_PID && i < LOCKFILTER_MAX_ALLOWED) {
        g_State->Allowed[g_State->AllowedCount++] = ProcessId;
        status = STATUS_SUCCESS;
    }
    FltReleasePushLock(&g_State->Lock);
    return status;
}

static NTSTATUS FLTAPI LockMessage(PVOID PortCookie, PVOID InputBuffer, ULONG InputBufferLength, PVOID OutputBuffer,
                                   ULONG OutputBufferLength, PULONG ReturnOutputBufferLength) {
    LOCKFILTER_COMMAND command;
    UNREFERENCED_PARAMETER(PortCookie);
    *ReturnOutputBufferLength = 0;
    if (InputBuffer == NULL || InputBufferLength < sizeof command) return STATUS_INVALID_PARAMETER;
    /* The buffers are the caller's user-mode memory: copy under SEH before use. */
    __try {
        RtlCopyMemory(&command, InputBuffer, sizeof command);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        return GetExceptionCode();
    }
    switch (command.Command) {
    case LOCKFILTER_ALLOW_PID:
    case LOCKFILTER_REVOKE_PID:
        return ChangeAllowList(command.Command, command.ProcessId);
    case LOCKFILTER_GET_COUNT: {
        ULONG count = (ULONG)ReadNoFence(&g_State->Denials);
        if (OutputBuffer == NULL || OutputBufferLength < sizeof count) return STATUS_BUFFER_TOO_SMALL;
        __try {
            RtlCopyMemory(OutputBuffer, &count, sizeof count);
        } __except (EXCEPTION_EXECUTE_HANDLER) {
            return GetExceptionCode();
        }
        *ReturnOutputBufferLength = sizeof count;
        return STATUS_SUCCESS;
    }
    default:
        return STATUS_INVALID_PARAMETER;
    }
}

static NTSTATUS FLTAPI LockUnload(FLT_FILTER_UNLOAD_FLAGS Flags) {
    UNREFERENCED_PARAMETER(Flags);
    FltCloseCommunicationPort(g_ServerPort); /* before FltUnregisterFilter, which ends the connection */
    FltUnregisterFilter(g_Filter);           /* no callback runs after this returns */
    FltDeletePushLock(&g_State->Lock);
    ExFreePoolWithTag(g_State, LOCKFILTER_TAG);
    g_State = NULL;
    return STATUS_SUCCESS;
}

static const FLT_OPERATION_REGISTRATION g_Callbacks[] = {
    {IRP_MJ_CREATE, 0, LockPreCreate, NULL, NULL},
    {IRP_MJ_OPERATION_END, 0, NULL, NULL, NULL},
};

static const FLT_REGISTRATION g_Registration = {
    sizeof(FLT_REGISTRATION), FLT_REGISTRATION_VERSION, 0, NULL, g_Callbacks, LockUnload,
};

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath) {
    UNICODE_STRING portName = RTL_CONSTANT_STRING(L"\\LockFilterPort");
    OBJECT_ATTRIBUTES attributes;
    PSECURITY_DESCRIPTOR sd = NULL;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);

    g_State = (LOCKFILTER_STATE *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof *g_State, LOCKFILTER_TAG);
    if (g_State == NULL) return STATUS_INSUFFICIENT_RESOURCES;
    FltInitializePushLock(&g_State->Lock);

    status = FltRegisterFilter(DriverObject, &g_Registration, &g_Filter);
    if (!NT_SUCCESS(status)) goto freeState;
    status = FltBuildDefaultSecurityDescriptor(&sd, FLT_PORT_ALL_ACCESS);
    if (!NT_SUCCESS(status)) goto unregister;
    InitializeObjectAttributes(&attributes, &portName, OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE, NULL, sd);
    status = FltCreateCommunicationPort(g_Filter, &g_ServerPort, &attributes, NULL, LockConnect, LockDisconnect,
                                        LockMessage, 1);
    FltFreeSecurityDescriptor(sd); /* the port keeps its own copy */
    if (!NT_SUCCESS(status)) goto unregister;
    status = FltStartFiltering(g_Filter);
    if (NT_SUCCESS(status)) return STATUS_SUCCESS;
    FltCloseCommunicationPort(g_ServerPort);
unregister:
    FltUnregisterFilter(g_Filter);
freeState:
    FltDeletePushLock(&g_State->Lock);
    ExFreePoolWithTag(g_State, LOCKFILTER_TAG);
    g_State = NULL;
    return status;
}
