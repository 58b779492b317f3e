/*++

Module Name:

    fltsample.h

Abstract:

    Private declarations of the fltmgr sample minifilter (FltSample).

    The driver is split so that reviewers and the Linux CI can check each part:
      driver.c    DriverEntry (KMDF, non-PnP): the PortGroupSid registry value, then
                  FsInitialize; EvtDriverUnload
      filter.c    FltRegisterFilter, unload and teardown, instance setup, create callbacks
      scan.c      one scan: name, extension, size, first bytes, FltSendMessage, verdict
      port.c      communication port, security descriptor, connections, commands, PROBE
      support.c   pool accounting, configuration, statistics
      sidparse.c  SID string parsing (no kernel calls: unit-tested on the host)
    Only driver.c uses KMDF (wdf.h); the rest uses Filter Manager and WDM/NTIFS calls only.

Environment:

    Kernel mode. SAMPLE CODE: see driver-sample/README.md for what has and has not been verified.

--*/

#pragma once

#include <fltKernel.h>
#include "fltmgr_sample_protocol.h"
#include "sidparse.h"

/*
 * Pool tags (shown reversed by !poolused / poolmon: 'cSlF' is "FlSc").
 */
#define FS_TAG_CLIENT 'cSlF'    /* FS_CLIENT */
#define FS_TAG_MESSAGE 'mSlF'   /* scan request / probe message buffers */
#define FS_TAG_READ 'rSlF'      /* sector-aligned read buffers (FltAllocatePoolAlignedWithTag) */
#define FS_TAG_COMMAND 'kSlF'   /* captured command input / output */
#define FS_TAG_SECURITY 'sSlF'  /* port DACL and group SID */
#define FS_TAG_CONTEXT 'iSlF'   /* instance contexts (owned by FltMgr once set) */
#define FS_TAG_FRAMEWORK 'wSlF' /* KMDF's own allocations for this driver (DriverPoolTag); not counted */

/* Sector size assumed when a volume's cannot be queried; a multiple of every common sector size. */
#define FS_FALLBACK_SECTOR_SIZE 4096u

/* Largest SID the registry value may describe (SECURITY_MAX_SID_SIZE: 15 sub-authorities). */
#define FS_MAX_SID_BYTES 68u

/* Access the opt-in group ACE grants on the port. FLT_PORT_CONNECT is the right a connect needs
 * [unverified on Windows: if non-admin connects fail with E_ACCESSDENIED, FilterConnect may be
 * requesting more, e.g. FLT_PORT_ALL_ACCESS]. */
#define FS_GROUP_PORT_ACCESS FLT_PORT_CONNECT

#define FS_IS_ALIGNED(pointer, alignment) ((((ULONG_PTR)(pointer)) & ((alignment) - 1)) == 0)

#define FS_ROUND_UP(value, multiple) ((((value) + (multiple) - 1) / (multiple)) * (multiple))

/*
 * One connection. Referenced by the client list (one reference, dropped in the disconnect callback)
 * and by every sender that is using Port; freed when the last reference goes.
 * Port is only ever passed to FltSendMessage by address, never copied: FltCloseClientPort sets it
 * to NULL and synchronises with sends in progress.
 */
typedef struct _FS_CLIENT {
    LIST_ENTRY Link; /* FS_GLOBALS.Clients, under FS_GLOBALS.Lock */
    PFLT_PORT Port;
    volatile LONG RefCount;
    ULONG ProcessId;          /* observed in the connect callback */
    ULONG Flags;              /* FLTSAMPLE_CONNECT_FLAG_* */
    volatile LONG PortClosed; /* FltCloseClientPort called (exactly once) */
    BOOLEAN Privileged;       /* administrator or SYSTEM token at connect time */
    BOOLEAN Linked;           /* still in the client list */
} FS_CLIENT, *PFS_CLIENT;

typedef struct _FS_COUNTERS {
    volatile LONG64 ScanRequests;
    volatile LONG64 ScansAllowed;
    volatile LONG64 ScansBlocked;
    volatile LONG64 ScanTimeouts;
    volatile LONG64 ScanErrors;
    volatile LONG64 NoAgentOpens;
    volatile LONG64 FailOpenAllowed;
    volatile LONG64 FailClosedDenied;
    volatile LONG64 ExcludedOpens;
    volatile LONG64 ProbeMessages;
    volatile LONG64 ConnectionsTotal;
} FS_COUNTERS;

typedef struct _FS_INSTANCE_CONTEXT {
    ULONG SectorSize;
} FS_INSTANCE_CONTEXT, *PFS_INSTANCE_CONTEXT;

typedef struct _FS_GLOBALS {
    PDRIVER_OBJECT DriverObject;
    PFLT_FILTER Filter;   /* NULL once unregistered */
    PFLT_PORT ServerPort; /* NULL once closed */

    /* Guards Clients, ClientCount, ScannerCount, RoundRobin and Config. Only taken at
     * IRQL <= APC_LEVEL and never held across FltSendMessage or any other wait. */
    EX_PUSH_LOCK Lock;
    LIST_ENTRY Clients;
    ULONG ClientCount;
    ULONG ScannerCount;
    ULONG RoundRobin;
    FLTSAMPLE_CONFIG Config;

    /* Scans and commands in progress; teardown waits for them after stopping new ones. */
    EX_RUNDOWN_REF Rundown;

    PSID PortGroupSid; /* opt-in non-admin group from the registry, or NULL */

    volatile LONG64 NextScanId;
    volatile LONG64 PoolAllocations;
    volatile LONG64 PoolBytes;
    FS_COUNTERS Counters;

    volatile LONG Unloading; /* set first thing in FsTeardown */
    BOOLEAN Initialized;     /* FsInitialize succeeded; FsTeardown not yet run */
} FS_GLOBALS;

extern FS_GLOBALS FsGlobals;

/*
 * filter.c
 */

/* PortGroupSidString: the registry value's characters without terminating NULs (driver.c), or
 * NULL when the value is absent or unreadable. Copied: the caller's buffer may go on return. */
_IRQL_requires_(PASSIVE_LEVEL)
_Must_inspect_result_ NTSTATUS
FsInitialize(
    _In_ PDRIVER_OBJECT DriverObject,
    _In_opt_ PCUNICODE_STRING PortGroupSidString
);

_IRQL_requires_(PASSIVE_LEVEL)
VOID FsTeardown(VOID);

/*
 * scan.c
 */
_IRQL_requires_(PASSIVE_LEVEL)
BOOLEAN
FsScanOpenedFile(
    _Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects
);

/*
 * port.c
 */
_IRQL_requires_(PASSIVE_LEVEL)
_Must_inspect_result_ NTSTATUS FsPortCreate(VOID);

_IRQL_requires_(PASSIVE_LEVEL)
VOID FsPortCloseServer(VOID);

_IRQL_requires_(PASSIVE_LEVEL)
VOID FsPortDisconnectAll(VOID);

_IRQL_requires_(PASSIVE_LEVEL)
VOID FsPortReleaseAllClients(VOID);

_IRQL_requires_max_(APC_LEVEL)
_Must_inspect_result_ PFS_CLIENT FsReferenceNextScanner(VOID);

_IRQL_requires_max_(DISPATCH_LEVEL)
VOID
FsDereferenceClient(_In_ PFS_CLIENT Client);

_IRQL_requires_max_(APC_LEVEL)
BOOLEAN
FsIsExcludedProcess(_In_ ULONG ProcessId);

/*
 * support.c
 */
_IRQL_requires_max_(DISPATCH_LEVEL)
_Must_inspect_result_ _Ret_maybenull_
_Post_writable_byte_size_(Size)
PVOID
FsAllocate(
    _In_ POOL_FLAGS Flags,
    _In_ SIZE_T Size,
    _In_ ULONG Tag
);

_IRQL_requires_max_(DISPATCH_LEVEL)
VOID
FsFree(
    _In_ _Post_invalid_ PVOID Buffer,
    _In_ ULONG Tag
);

_IRQL_requires_max_(DISPATCH_LEVEL)
VOID
FsTrackAllocation(
    _In_ SIZE_T Size,
    _In_ BOOLEAN Allocated
);

VOID
FsConfigSetDefaults(_Out_ FLTSAMPLE_CONFIG *Config);

_Must_inspect_result_ NTSTATUS
FsConfigValidate(_In_ const FLTSAMPLE_CONFIG *Config);

BOOLEAN
FsConfigMatchesExtension(
    _In_ const FLTSAMPLE_CONFIG *Config,
    _In_ PCUNICODE_STRING Extension
);

_IRQL_requires_max_(DISPATCH_LEVEL)
VOID
FsFillStats(_Out_ FLTSAMPLE_STATS *Stats);
