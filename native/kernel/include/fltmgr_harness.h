/*
 * fltmgr_harness.h - optional test hooks a driver may define for the kernel harness (NOT a Windows header;
 * a driver's real build never includes it). Compile such a file only into the harness image
 * (scripts/kernel-image.js --hooks), never into the .sys.
 */
#pragma once

#include <fltKernel.h>

/*
 * Called by the host (KernelDriver.query() in lib/simulator/kernel-driver.ts) on a harness thread, with
 * Code, a buffer of Length bytes and *Returned = 0. Returns an NTSTATUS. What the codes mean is the
 * driver's business (driver-sample/harness/hooks.c: statistics and configuration, read the way the
 * driver's own commands read them). Absent: the host sees STATUS_NOT_IMPLEMENTED.
 */
NTSTATUS FltmgrHarnessQuery(ULONG Code, PVOID Buffer, ULONG Length, PULONG Returned);
