/*++

Module Name:

    support.c

Abstract:

    Pool accounting, the scanning configuration and statistics. (SID strings are parsed in
    sidparse.c; filter.c turns the registry value into the port's group SID.)

Environment:

    Kernel mode.

--*/

#include "fltsample.h"

/*
 * Every driver-owned allocation carries this header so that FsFree knows its size: GET_STATS
 * reports outstanding allocations and bytes, and teardown asserts both are back to zero.
 * 16 bytes keep the caller's data at the pool's own 16-byte alignment on 64-bit Windows.
 */
typedef struct _FS_POOL_HEADER {
    SIZE_T Size;
    ULONG Tag;
    ULONG Reserved;
#if !defined(_WIN64)
    ULONG Padding[1];
#endif
} FS_POOL_HEADER;

C_ASSERT(sizeof(FS_POOL_HEADER) == 16);

_Use_decl_annotations_
VOID
FsTrackAllocation(
    SIZE_T Size,
    BOOLEAN Allocated
)
{
    if (Allocated) {
        InterlockedIncrement64(&FsGlobals.PoolAllocations);
        InterlockedAdd64(&FsGlobals.PoolBytes, (LONG64)Size);
    } else {
        InterlockedDecrement64(&FsGlobals.PoolAllocations);
        InterlockedAdd64(&FsGlobals.PoolBytes, -(LONG64)Size);
    }
}

_Use_decl_annotations_
PVOID
FsAllocate(
    POOL_FLAGS Flags,
    SIZE_T Size,
    ULONG Tag
)
{
    FS_POOL_HEADER *header;

    if (Size == 0 || Size > (SIZE_T)MAXULONG) {
        return NULL;
    }

    /* ExAllocatePool2 zeroes the allocation unless POOL_FLAG_UNINITIALIZED is passed, and
     * POOL_FLAG_NON_PAGED is no-execute: no NX opt-in needed. Windows 10 2004 and later. */
    header = (FS_POOL_HEADER *)ExAllocatePool2(Flags, sizeof(FS_POOL_HEADER) + Size, Tag);
    if (header == NULL) {
        return NULL;
    }

    header->Size = Size;
    header->Tag = Tag;
    FsTrackAllocation(Size, TRUE);
    return header + 1;
}

_Use_decl_annotations_
VOID
FsFree(
    PVOID Buffer,
    ULONG Tag
)
{
    FS_POOL_HEADER *header = ((FS_POOL_HEADER *)Buffer) - 1;

    NT_ASSERT(header->Tag == Tag);
    FsTrackAllocation(header->Size, FALSE);
    ExFreePoolWithTag(header, Tag);
}

/*
 * Configuration.
 */

static const WCHAR *const FsDefaultExtensions[] = {L"exe", L"dll", L"bat", L"cmd", L"ps1", L"js", L"vbs", L"txt"};

_Use_decl_annotations_
VOID
FsConfigSetDefaults(FLTSAMPLE_CONFIG *Config)
{
    ULONG i;

    RtlZeroMemory(Config, sizeof(*Config));
    Config->Flags = 0; /* fail-open: with no agent running, nothing is blocked */
    Config->ReplyTimeoutMs = FLTSAMPLE_DEFAULT_REPLY_TIMEOUT_MS;
    Config->ContentBytes = FLTSAMPLE_DEFAULT_CONTENT_BYTES;
    Config->ExtensionCount = (ULONG)RTL_NUMBER_OF(FsDefaultExtensions);

    for (i = 0; i < RTL_NUMBER_OF(FsDefaultExtensions); i++) {
        /* The literals are shorter than FLTSAMPLE_MAX_EXTENSION_CHARS; the copy keeps the NUL. */
        SIZE_T bytes = (wcslen(FsDefaultExtensions[i]) + 1) * sizeof(WCHAR);
        RtlCopyMemory(Config->Extensions[i], FsDefaultExtensions[i], bytes);
    }
}

_Use_decl_annotations_
NTSTATUS
FsConfigValidate(const FLTSAMPLE_CONFIG *Config)
{
    ULONG i;
    ULONG j;

    if ((Config->Flags & ~FLTSAMPLE_CONFIG_VALID_FLAGS) != 0 ||
        Config->ReplyTimeoutMs < FLTSAMPLE_MIN_REPLY_TIMEOUT_MS ||
        Config->ReplyTimeoutMs > FLTSAMPLE_MAX_REPLY_TIMEOUT_MS || Config->ContentBytes > FLTSAMPLE_MAX_CONTENT_BYTES ||
        Config->ExtensionCount > FLTSAMPLE_MAX_EXTENSIONS) {
        return STATUS_INVALID_PARAMETER;
    }

    for (i = 0; i < FLTSAMPLE_MAX_EXTENSIONS; i++) {
        const FLTSAMPLE_WCHAR *ext = Config->Extensions[i];
        ULONG length = 0;

        while (length < FLTSAMPLE_MAX_EXTENSION_CHARS && ext[length] != 0) {
            if (ext[length] == L'.' || ext[length] == L'\\') {
                return STATUS_INVALID_PARAMETER;
            }
            length++;
        }

        if (i < Config->ExtensionCount) {
            /* Used entries: non-empty and NUL-terminated inside the array. */
            if (length == 0 || length == FLTSAMPLE_MAX_EXTENSION_CHARS) {
                return STATUS_INVALID_PARAMETER;
            }
        } else {
            /* Unused entries are all zero, so GET_CONFIG round-trips byte for byte. */
            for (j = 0; j < FLTSAMPLE_MAX_EXTENSION_CHARS; j++) {
                if (ext[j] != 0) {
                    return STATUS_INVALID_PARAMETER;
                }
            }
        }
    }

    return STATUS_SUCCESS;
}

_Use_decl_annotations_
BOOLEAN
FsConfigMatchesExtension(
    const FLTSAMPLE_CONFIG *Config,
    PCUNICODE_STRING Extension
)
{
    ULONG i;

    if (FlagOn(Config->Flags, FLTSAMPLE_CONFIG_FLAG_SCAN_ALL_FILES)) {
        return TRUE;
    }

    if (Extension->Length == 0) {
        return FALSE;
    }

    for (i = 0; i < Config->ExtensionCount; i++) {
        UNICODE_STRING candidate;
        USHORT length = 0;

        while (length < FLTSAMPLE_MAX_EXTENSION_CHARS && Config->Extensions[i][length] != 0) {
            length++;
        }

        candidate.Buffer = (PWCH)Config->Extensions[i];
        candidate.Length = (USHORT)(length * sizeof(WCHAR));
        candidate.MaximumLength = candidate.Length;

        /* Callers hold the push lock shared; that enters a critical region but stays at
         * PASSIVE_LEVEL, where the case-insensitive compare may run. */
        if (RtlEqualUnicodeString(Extension, &candidate, TRUE)) {
            return TRUE;
        }
    }

    return FALSE;
}

/*
 * Statistics.
 */

static ULONG64
FsReadCounter(_In_ volatile LONG64 *Counter)
{
    /* InterlockedCompareExchange64 with equal operands is an atomic 64-bit read on x86 too. */
    return (ULONG64)InterlockedCompareExchange64(Counter, 0, 0);
}

_Use_decl_annotations_
VOID
FsFillStats(FLTSAMPLE_STATS *Stats)
{
    RtlZeroMemory(Stats, sizeof(*Stats));
    Stats->ProtocolVersion = FLTSAMPLE_PROTOCOL_VERSION;
    Stats->StructSize = sizeof(*Stats);
    Stats->ScanRequests = FsReadCounter(&FsGlobals.Counters.ScanRequests);
    Stats->ScansAllowed = FsReadCounter(&FsGlobals.Counters.ScansAllowed);
    Stats->ScansBlocked = FsReadCounter(&FsGlobals.Counters.ScansBlocked);
    Stats->ScanTimeouts = FsReadCounter(&FsGlobals.Counters.ScanTimeouts);
    Stats->ScanErrors = FsReadCounter(&FsGlobals.Counters.ScanErrors);
    Stats->NoAgentOpens = FsReadCounter(&FsGlobals.Counters.NoAgentOpens);
    Stats->FailOpenAllowed = FsReadCounter(&FsGlobals.Counters.FailOpenAllowed);
    Stats->FailClosedDenied = FsReadCounter(&FsGlobals.Counters.FailClosedDenied);
    Stats->ExcludedOpens = FsReadCounter(&FsGlobals.Counters.ExcludedOpens);
    Stats->ProbeMessages = FsReadCounter(&FsGlobals.Counters.ProbeMessages);
    Stats->ConnectionsTotal = FsReadCounter(&FsGlobals.Counters.ConnectionsTotal);
    /* Unlocked snapshot of two ULONGs: each is read atomically, together they may be a moment
     * apart, which is fine for statistics. */
    Stats->ConnectionsCurrent = *(volatile ULONG *)&FsGlobals.ClientCount;
    Stats->ScannerConnections = *(volatile ULONG *)&FsGlobals.ScannerCount;
    Stats->PoolAllocations = (LONG64)FsReadCounter(&FsGlobals.PoolAllocations);
    Stats->PoolBytes = (LONG64)FsReadCounter(&FsGlobals.PoolBytes);
}
