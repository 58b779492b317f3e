/*++

Module Name:

    sidparse.c

Abstract:

    See sidparse.h. Plain C on purpose (no kernel calls) so that it is unit-tested off Windows.

Environment:

    Kernel mode (PASSIVE_LEVEL, during DriverEntry: FsLoadPortGroupSid) and host unit tests.

--*/

#include "sidparse.h"

/* Reads one unsigned number at Text[*Pos]; stops at '-' or the end. Returns 0 on success. */
static int
FsSidParseNumber(
    const FLTSAMPLE_WCHAR *Text,
    FLTSAMPLE_U32 CharCount,
    FLTSAMPLE_U32 *Pos,
    int AllowHex,
    FLTSAMPLE_U64 Max,
    FLTSAMPLE_U64 *Value
)
{
    FLTSAMPLE_U32 i = *Pos;
    FLTSAMPLE_U64 v = 0;
    FLTSAMPLE_U32 digits = 0;
    FLTSAMPLE_U32 base = 10;

    if (AllowHex && i + 1 < CharCount && Text[i] == '0' && (Text[i + 1] == 'x' || Text[i + 1] == 'X')) {
        base = 16;
        i += 2;
    }

    for (; i < CharCount && Text[i] != '-'; i++) {
        FLTSAMPLE_WCHAR c = Text[i];
        FLTSAMPLE_U32 d;

        if (c >= '0' && c <= '9') {
            d = (FLTSAMPLE_U32)(c - '0');
        } else if (base == 16 && c >= 'a' && c <= 'f') {
            d = (FLTSAMPLE_U32)(c - 'a' + 10);
        } else if (base == 16 && c >= 'A' && c <= 'F') {
            d = (FLTSAMPLE_U32)(c - 'A' + 10);
        } else {
            return FS_SID_PARSE_INVALID;
        }

        /* Checked before multiplying, so the running value never wraps. */
        if (v > (Max - d) / base) {
            return FS_SID_PARSE_INVALID;
        }
        v = v * base + d;
        digits++;
    }

    if (digits == 0 || (base == 16 && digits > 12)) {
        return FS_SID_PARSE_INVALID;
    }

    *Pos = i;
    *Value = v;
    return FS_SID_PARSE_OK;
}

int
FsSidParse(
    const FLTSAMPLE_WCHAR *Text,
    FLTSAMPLE_U32 CharCount,
    FLTSAMPLE_U8 *Sid,
    FLTSAMPLE_U32 SidBufferSize,
    FLTSAMPLE_U32 *SidSize
)
{
    FLTSAMPLE_U32 pos = 0;
    FLTSAMPLE_U64 revision;
    FLTSAMPLE_U64 authority;
    FLTSAMPLE_U64 sub[FS_SID_MAX_SUB_AUTHORITIES];
    FLTSAMPLE_U32 count = 0;
    FLTSAMPLE_U32 size;
    FLTSAMPLE_U32 i;

    *SidSize = 0;

    if (Text == 0 || CharCount < 2 || (Text[0] != 'S' && Text[0] != 's') || Text[1] != '-') {
        return FS_SID_PARSE_INVALID;
    }
    pos = 2;

    if (FsSidParseNumber(Text, CharCount, &pos, 0, 0xFFu, &revision) != FS_SID_PARSE_OK || revision != 1) {
        return FS_SID_PARSE_INVALID;
    }
    if (pos >= CharCount || Text[pos] != '-') {
        return FS_SID_PARSE_INVALID;
    }
    pos++;

    if (FsSidParseNumber(Text, CharCount, &pos, 1, 0xFFFFFFFFFFFFull, &authority) != FS_SID_PARSE_OK) {
        return FS_SID_PARSE_INVALID;
    }

    while (pos < CharCount) {
        /* Here Text[pos] is '-': FsSidParseNumber stops only there or at the end. */
        pos++;
        if (count == FS_SID_MAX_SUB_AUTHORITIES) {
            return FS_SID_PARSE_INVALID;
        }
        if (FsSidParseNumber(Text, CharCount, &pos, 0, 0xFFFFFFFFull, &sub[count]) != FS_SID_PARSE_OK) {
            return FS_SID_PARSE_INVALID;
        }
        count++;
    }

    size = 8u + 4u * count;
    if (Sid == 0 || SidBufferSize < size) {
        *SidSize = size;
        return FS_SID_PARSE_BUFFER_TOO_SMALL;
    }

    Sid[0] = 1;
    Sid[1] = (FLTSAMPLE_U8)count;
    for (i = 0; i < 6; i++) {
        Sid[2 + i] = (FLTSAMPLE_U8)(authority >> (8 * (5 - i)));
    }
    for (i = 0; i < count; i++) {
        Sid[8 + 4 * i] = (FLTSAMPLE_U8)(sub[i]);
        Sid[9 + 4 * i] = (FLTSAMPLE_U8)(sub[i] >> 8);
        Sid[10 + 4 * i] = (FLTSAMPLE_U8)(sub[i] >> 16);
        Sid[11 + 4 * i] = (FLTSAMPLE_U8)(sub[i] >> 24);
    }

    *SidSize = size;
    return FS_SID_PARSE_OK;
}
