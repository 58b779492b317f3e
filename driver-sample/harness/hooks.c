/*
 * hooks.c - the sample driver's test hook for the kernel harness (native/kernel/include/fltmgr_harness.h).
 * Compiled into the harness image only (driver-sample/harness/index.ts), never into fltsample.sys: it
 * lets tests read the statistics and the configuration, and set the configuration, the way the driver's
 * own GET_STATS / GET_CONFIG / SET_CONFIG commands do (port.c), without a connection.
 */
#include "../driver/fltsample.h"
#include <fltmgr_harness.h>

#define FS_HOOK_GET_STATS 1u
#define FS_HOOK_GET_CONFIG 2u
#define FS_HOOK_SET_CONFIG 3u

NTSTATUS
FltmgrHarnessQuery(ULONG Code, PVOID Buffer, ULONG Length, PULONG Returned)
{
    NTSTATUS status;

    *Returned = 0;
    switch (Code) {
    case FS_HOOK_GET_STATS:
        if (Length < sizeof(FLTSAMPLE_STATS)) {
            return STATUS_BUFFER_TOO_SMALL;
        }
        FsFillStats((FLTSAMPLE_STATS *)Buffer);
        *Returned = sizeof(FLTSAMPLE_STATS);
        return STATUS_SUCCESS;

    case FS_HOOK_GET_CONFIG:
        if (Length < sizeof(FLTSAMPLE_CONFIG)) {
            return STATUS_BUFFER_TOO_SMALL;
        }
        if (!FsGlobals.Initialized) {
            return STATUS_DELETE_PENDING; /* the lock is gone with the driver */
        }
        FltAcquirePushLockShared(&FsGlobals.Lock);
        RtlCopyMemory(Buffer, &FsGlobals.Config, sizeof(FLTSAMPLE_CONFIG));
        FltReleasePushLock(&FsGlobals.Lock);
        *Returned = sizeof(FLTSAMPLE_CONFIG);
        return STATUS_SUCCESS;

    case FS_HOOK_SET_CONFIG:
        if (Length != sizeof(FLTSAMPLE_CONFIG)) {
            return STATUS_INVALID_PARAMETER;
        }
        if (!FsGlobals.Initialized) {
            return STATUS_DELETE_PENDING;
        }
        status = FsConfigValidate((const FLTSAMPLE_CONFIG *)Buffer);
        if (!NT_SUCCESS(status)) {
            return status;
        }
        FltAcquirePushLockExclusive(&FsGlobals.Lock);
        RtlCopyMemory(&FsGlobals.Config, Buffer, sizeof(FLTSAMPLE_CONFIG));
        FltReleasePushLock(&FsGlobals.Lock);
        return STATUS_SUCCESS;

    default:
        return STATUS_INVALID_PARAMETER;
    }
}
