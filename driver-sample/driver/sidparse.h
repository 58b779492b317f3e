/*++

Module Name:

    sidparse.h

Abstract:

    String SID ("S-1-5-32-545") to binary SID conversion for the opt-in port group.

    The kernel has no documented string-to-SID routine, so the driver parses the registry value
    itself. The parser uses no kernel calls and no Windows headers: the Linux CI compiles it with
    the host compiler and runs it against known SIDs (test/driver-header.test.ts).

--*/

#pragma once

#include "fltmgr_sample_protocol.h"

#define FS_SID_PARSE_OK 0
#define FS_SID_PARSE_INVALID (-1) /* not "S-1-<authority>[-<sub-authority>]..." */
#define FS_SID_PARSE_BUFFER_TOO_SMALL (-2)

#define FS_SID_MAX_SUB_AUTHORITIES 15u

/*
 * Accepts "S-1-<authority>-<sub>-...": 'S' or 's', revision 1, authority in decimal (< 2^48) or
 * as 0x followed by 1..12 hex digits, 0..15 decimal sub-authorities (< 2^32). No spaces, signs,
 * empty components or trailing characters. Writes the self-relative binary form (revision,
 * count, 6-byte big-endian authority, little-endian sub-authorities) and its size.
 */
int
FsSidParse(
    const FLTSAMPLE_WCHAR *Text,
    FLTSAMPLE_U32 CharCount,
    FLTSAMPLE_U8 *Sid,
    FLTSAMPLE_U32 SidBufferSize,
    FLTSAMPLE_U32 *SidSize
);
