/*
 * fltmgr_sample_protocol.h - the message protocol of the fltmgr sample minifilter.
 *
 * Shared by the kernel driver (driver-sample/driver), user-mode C/C++ agents, and documented for the
 * TypeScript definitions (driver-sample/PROTOCOL.md is the user-facing description of this file).
 *
 * Layout rules, so that the bytes are identical for x86, x64 and arm64 builds (MSVC, clang-cl,
 * mingw-w64) and for the Linux/macOS simulator:
 *  - only explicit-width integer types (FLTSAMPLE_U8 ... FLTSAMPLE_I64) and 16-bit characters;
 *  - every field sits at an offset that is a multiple of its own size, every struct size is a
 *    multiple of 8, and padding is written out as Reserved fields that senders set to zero;
 *    so no compiler inserts padding of its own (checked below with static assertions);
 *  - #pragma pack(push, 8) guards against a consumer compiling with /Zp1 or inside a pack(1) region.
 *
 * Transport (see docs of the Filter Manager calls):
 *  - kernel -> user: FltSendMessage(FLTSAMPLE_SCAN_REQUEST) arrives in FilterGetMessage after a
 *    FILTER_MESSAGE_HEADER (16 bytes); the agent answers with FilterReplyMessage, sending a
 *    FILTER_REPLY_HEADER (16 bytes) followed by FLTSAMPLE_SCAN_REPLY (8 bytes): 24 bytes in total.
 *  - user -> kernel: FilterSendMessage with an input buffer that starts with FLTSAMPLE_COMMAND_HEADER,
 *    and an output buffer for the command's result.
 *  - connect: FilterConnectCommunicationPort(FLTSAMPLE_PORT_NAME, 0, &FLTSAMPLE_CONNECT_CONTEXT, ...).
 *
 * This header needs no Windows header: it compiles as C89-with-long-long, C99, C11 and C++.
 */
#ifndef FLTMGR_SAMPLE_PROTOCOL_H
#define FLTMGR_SAMPLE_PROTOCOL_H

#include <stddef.h> /* offsetof; a freestanding header, available in kernel mode too */

#ifdef __cplusplus
extern "C" {
#endif

/* Natural alignment is all these structs need; pinning the packing makes /Zp1 or an enclosing
 * #pragma pack(1) harmless. MSVC, clang and gcc all accept this form. */
#pragma pack(push, 8)

/* ------------------------------------------------------------------------------------------------
 * Types
 * ----------------------------------------------------------------------------------------------*/

/* Plain C types whose widths are the same on every Windows ABI and on LP64 POSIX; <stdint.h> is
 * avoided because kernel-mode include paths do not always provide it. Sizes are asserted below. */
typedef unsigned char FLTSAMPLE_U8;
typedef unsigned short FLTSAMPLE_U16;
typedef unsigned int FLTSAMPLE_U32;
typedef int FLTSAMPLE_I32;
typedef unsigned long long FLTSAMPLE_U64;
typedef long long FLTSAMPLE_I64;

/* A UTF-16 code unit. wchar_t is 16-bit on Windows (so WCHAR strings can be used directly) but
 * 32-bit on Linux/macOS, where the raw unit type is used instead. */
#if defined(_WIN32)
typedef wchar_t FLTSAMPLE_WCHAR;
#else
typedef unsigned short FLTSAMPLE_WCHAR;
#endif

/* ------------------------------------------------------------------------------------------------
 * Constants
 * ----------------------------------------------------------------------------------------------*/

/* Bumped on any incompatible change of a struct or a semantic below. */
#define FLTSAMPLE_PROTOCOL_VERSION 1u

/* NT object name of the communication server port (also usable as the fltmgr `portName`). */
#define FLTSAMPLE_PORT_NAME L"\\FltmgrSamplePort"
#define FLTSAMPLE_PORT_NAME_ASCII "\\FltmgrSamplePort"

/* Connections the server port accepts (the FltCreateCommunicationPort MaxConnections argument). */
#define FLTSAMPLE_MAX_CONNECTIONS 8u

/* Path characters carried in a scan request, terminating NUL included (MAX_PATH). */
#define FLTSAMPLE_MAX_PATH_CHARS 260u
/* Upper bound of file content bytes carried in a scan request. */
#define FLTSAMPLE_MAX_CONTENT_BYTES 1024u
/* Extensions in a configuration, and UTF-16 units per extension, terminating NUL included. */
#define FLTSAMPLE_MAX_EXTENSIONS 16u
#define FLTSAMPLE_MAX_EXTENSION_CHARS 16u
/* Largest ECHO payload (bytes after the command header). */
#define FLTSAMPLE_MAX_ECHO_BYTES 65536u
/* PROBE limits. */
#define FLTSAMPLE_MAX_PROBE_COUNT 1000000u
#define FLTSAMPLE_MAX_PROBE_TIMEOUT_MS 10000u
/* Reply timeout bounds for SET_CONFIG, in milliseconds. */
#define FLTSAMPLE_MIN_REPLY_TIMEOUT_MS 1u
#define FLTSAMPLE_MAX_REPLY_TIMEOUT_MS 600000u

/* Defaults the driver starts with (until the first SET_CONFIG). */
#define FLTSAMPLE_DEFAULT_REPLY_TIMEOUT_MS 5000u
#define FLTSAMPLE_DEFAULT_CONTENT_BYTES 1024u

/* ------------------------------------------------------------------------------------------------
 * Connection context (FilterConnectCommunicationPort lpContext)
 * ----------------------------------------------------------------------------------------------*/

/* The connection receives SCAN_REQUEST messages (round-robin among all scanner connections) and the
 * connecting process's own file opens are never scanned. Requires an administrator or SYSTEM token.
 * Without this flag the connection only issues commands (GET_STATS, ECHO, PROBE, ...). */
#define FLTSAMPLE_CONNECT_FLAG_SCANNER 0x00000001u
#define FLTSAMPLE_CONNECT_VALID_FLAGS 0x00000001u

/*
 * FLTSAMPLE_CONNECT_CONTEXT: optional. A connection without a context is a command-only connection.
 *   ProtocolVersion  FLTSAMPLE_PROTOCOL_VERSION; another value fails the connect
 *                    (STATUS_REVISION_MISMATCH).
 *   Reserved0        0.
 *   Flags            FLTSAMPLE_CONNECT_FLAG_*; unknown bits fail the connect (STATUS_INVALID_PARAMETER).
 *   ProcessId        0 or the connecting process's own id. The driver always uses the id it observes
 *                    in its connect callback; a different nonzero value fails the connect
 *                    (STATUS_INVALID_PARAMETER), so a client cannot exclude another process.
 *   Reserved1        0.
 */
typedef struct _FLTSAMPLE_CONNECT_CONTEXT {
    FLTSAMPLE_U16 ProtocolVersion; /* @0 */
    FLTSAMPLE_U16 Reserved0;       /* @2 */
    FLTSAMPLE_U32 Flags;           /* @4 */
    FLTSAMPLE_U32 ProcessId;       /* @8 */
    FLTSAMPLE_U32 Reserved1;       /* @12 */
} FLTSAMPLE_CONNECT_CONTEXT;       /* 16 bytes */

/* ------------------------------------------------------------------------------------------------
 * Kernel -> user: scan requests and probe messages
 * ----------------------------------------------------------------------------------------------*/

/* FLTSAMPLE_SCAN_REQUEST.MessageType */
#define FLTSAMPLE_MSG_SCAN_REQUEST 1u /* a real file open */
#define FLTSAMPLE_MSG_PROBE 2u        /* synthetic message from the PROBE command */

/* FLTSAMPLE_SCAN_REQUEST.Flags */
#define FLTSAMPLE_SCAN_FLAG_PATH_TRUNCATED 0x00000001u    /* the name did not fit Path */
#define FLTSAMPLE_SCAN_FLAG_CONTENT_TRUNCATED 0x00000002u /* the file is longer than Content */
#define FLTSAMPLE_SCAN_FLAG_READ_FAILED 0x00000004u       /* content could not be read: ContentLength 0 */
#define FLTSAMPLE_SCAN_FLAG_NO_REPLY 0x00000008u          /* probe without reply: do not answer */

/*
 * FLTSAMPLE_SCAN_REQUEST: the payload of every kernel -> user message (after FILTER_MESSAGE_HEADER).
 * The driver always sends the whole struct (sizeof = 1592 bytes); unused Path/Content bytes are 0.
 *   ProtocolVersion  FLTSAMPLE_PROTOCOL_VERSION.
 *   MessageType      FLTSAMPLE_MSG_SCAN_REQUEST or FLTSAMPLE_MSG_PROBE.
 *   Flags            FLTSAMPLE_SCAN_FLAG_*.
 *   ScanId           driver-wide sequence number (1, 2, ...): for logs; replies are matched by the
 *                    Filter Manager MessageId, not by this.
 *   FileId           the file system's file id (FileInternalInformation), 0 when unknown.
 *   FileSize         end of file in bytes, -1 when unknown.
 *   ProcessId        id of the process that opened the file.
 *   PathLength       UTF-16 units in Path before its terminating NUL (<= 259).
 *   ContentLength    valid bytes in Content (<= the configured ContentBytes <= 1024).
 *   Reserved0        0.
 *   Path             normalized NT name, e.g. \Device\HarddiskVolume3\Users\x\a.exe, NUL-terminated.
 *                    Convert the volume part with FilterGetDosName if a drive letter is wanted.
 *   Content          the first ContentLength bytes of the file.
 * Unless FLTSAMPLE_SCAN_FLAG_NO_REPLY is set, the driver waits for a FLTSAMPLE_SCAN_REPLY
 * (FILTER_MESSAGE_HEADER.ReplyLength = 24 = FILTER_REPLY_HEADER + FLTSAMPLE_SCAN_REPLY).
 */
typedef struct _FLTSAMPLE_SCAN_REQUEST {
    FLTSAMPLE_U16 ProtocolVersion;                     /* @0 */
    FLTSAMPLE_U16 MessageType;                         /* @2 */
    FLTSAMPLE_U32 Flags;                               /* @4 */
    FLTSAMPLE_U64 ScanId;                              /* @8 */
    FLTSAMPLE_U64 FileId;                              /* @16 */
    FLTSAMPLE_I64 FileSize;                            /* @24 */
    FLTSAMPLE_U32 ProcessId;                           /* @32 */
    FLTSAMPLE_U32 PathLength;                          /* @36 */
    FLTSAMPLE_U32 ContentLength;                       /* @40 */
    FLTSAMPLE_U32 Reserved0;                           /* @44 */
    FLTSAMPLE_WCHAR Path[FLTSAMPLE_MAX_PATH_CHARS];    /* @48, 520 bytes */
    FLTSAMPLE_U8 Content[FLTSAMPLE_MAX_CONTENT_BYTES]; /* @568, 1024 bytes */
} FLTSAMPLE_SCAN_REQUEST;                              /* 1592 bytes */

/* FLTSAMPLE_SCAN_REPLY.Verdict. 0 is deliberately invalid: a zeroed reply is a bug, not an ALLOW. */
#define FLTSAMPLE_VERDICT_ALLOW 1u
#define FLTSAMPLE_VERDICT_BLOCK 2u

/*
 * FLTSAMPLE_SCAN_REPLY: the data after FILTER_REPLY_HEADER in FilterReplyMessage.
 *   Verdict     FLTSAMPLE_VERDICT_ALLOW or FLTSAMPLE_VERDICT_BLOCK. Any other value is a bad reply:
 *               the driver applies its failure mode (fail-open or fail-closed) and counts it.
 *   ReasonCode  agent-defined (e.g. a signature number), 0 = none; counted, not interpreted.
 * Send exactly 16 + 8 = 24 bytes.
 */
typedef struct _FLTSAMPLE_SCAN_REPLY {
    FLTSAMPLE_U32 Verdict;    /* @0 */
    FLTSAMPLE_U32 ReasonCode; /* @4 */
} FLTSAMPLE_SCAN_REPLY;       /* 8 bytes */

/* Bytes an agent passes to FilterReplyMessage: FILTER_REPLY_HEADER (16) + FLTSAMPLE_SCAN_REPLY. */
#define FLTSAMPLE_SCAN_REPLY_MESSAGE_BYTES (16u + 8u)

/* ------------------------------------------------------------------------------------------------
 * User -> kernel: commands (FilterSendMessage)
 * ----------------------------------------------------------------------------------------------*/

#define FLTSAMPLE_CMD_GET_STATS 1u  /* in: header.            out: FLTSAMPLE_STATS */
#define FLTSAMPLE_CMD_SET_CONFIG 2u /* in: header + CONFIG.   out: FLTSAMPLE_CONFIG (effective) */
#define FLTSAMPLE_CMD_GET_CONFIG 3u /* in: header.            out: FLTSAMPLE_CONFIG */
#define FLTSAMPLE_CMD_ECHO 4u       /* in: header + N bytes.  out: the same N bytes */
#define FLTSAMPLE_CMD_PROBE 5u      /* in: header + PROBE_REQUEST. out: FLTSAMPLE_PROBE_RESULT */

/*
 * FLTSAMPLE_COMMAND_HEADER: the first 8 bytes of every FilterSendMessage input buffer.
 *   ProtocolVersion  FLTSAMPLE_PROTOCOL_VERSION, else STATUS_REVISION_MISMATCH.
 *   Command          FLTSAMPLE_CMD_*, else STATUS_INVALID_DEVICE_REQUEST.
 *   Reserved         0, else STATUS_INVALID_PARAMETER.
 * The command's body follows at offset 8. Results: the output buffer receives the command's output
 * and lpBytesReturned its length; an output buffer smaller than the output fails with
 * STATUS_BUFFER_TOO_SMALL and writes nothing. Input and output buffers must be 8-byte aligned
 * (STATUS_DATATYPE_MISALIGNMENT otherwise).
 */
typedef struct _FLTSAMPLE_COMMAND_HEADER {
    FLTSAMPLE_U16 ProtocolVersion; /* @0 */
    FLTSAMPLE_U16 Command;         /* @2 */
    FLTSAMPLE_U32 Reserved;        /* @4 */
} FLTSAMPLE_COMMAND_HEADER;        /* 8 bytes */

/* FLTSAMPLE_CONFIG.Flags */
#define FLTSAMPLE_CONFIG_FLAG_FAIL_CLOSED 0x00000001u    /* no agent / timeout / bad reply -> deny */
#define FLTSAMPLE_CONFIG_FLAG_SCAN_ALL_FILES 0x00000002u /* ignore Extensions: scan every file */
#define FLTSAMPLE_CONFIG_VALID_FLAGS 0x00000003u

/*
 * FLTSAMPLE_CONFIG: scanning policy (SET_CONFIG input after the header; SET_CONFIG/GET_CONFIG output).
 * SET_CONFIG requires a connection made with an administrator or SYSTEM token (else
 * STATUS_ACCESS_DENIED) and replaces the whole configuration atomically; an invalid value fails
 * with STATUS_INVALID_PARAMETER and changes nothing.
 *   Flags           FLTSAMPLE_CONFIG_FLAG_*.
 *   ReplyTimeoutMs  how long a file open waits for a verdict (waiting for a free agent included),
 *                   FLTSAMPLE_MIN_REPLY_TIMEOUT_MS..FLTSAMPLE_MAX_REPLY_TIMEOUT_MS.
 *   ContentBytes    how many leading file bytes a scan request carries, 0..1024.
 *   ExtensionCount  valid entries in Extensions, 0..16. With 0 (and no SCAN_ALL_FILES) nothing is
 *                   scanned.
 *   Extensions      file name extensions without the dot, NUL-terminated UTF-16 (at most 15 units),
 *                   compared case-insensitively; "." and "\" are not allowed, empty is not allowed.
 *                   Unused entries are zero.
 * Driver defaults: fail-open, 5000 ms, 1024 bytes, exe dll bat cmd ps1 js vbs txt.
 */
typedef struct _FLTSAMPLE_CONFIG {
    FLTSAMPLE_U32 Flags;                                                                 /* @0 */
    FLTSAMPLE_U32 ReplyTimeoutMs;                                                        /* @4 */
    FLTSAMPLE_U32 ContentBytes;                                                          /* @8 */
    FLTSAMPLE_U32 ExtensionCount;                                                        /* @12 */
    FLTSAMPLE_WCHAR Extensions[FLTSAMPLE_MAX_EXTENSIONS][FLTSAMPLE_MAX_EXTENSION_CHARS]; /* @16, 512 */
} FLTSAMPLE_CONFIG;                                                                      /* 528 bytes */

/*
 * FLTSAMPLE_STATS: GET_STATS output. Counters count since the driver loaded.
 *   ProtocolVersion      FLTSAMPLE_PROTOCOL_VERSION.   StructSize  sizeof(FLTSAMPLE_STATS).
 *   ScanRequests         scan requests sent to an agent (FltSendMessage calls for file opens).
 *   ScansAllowed         ALLOW verdicts.               ScansBlocked   BLOCK verdicts.
 *   ScanTimeouts         no verdict within ReplyTimeoutMs (STATUS_TIMEOUT).
 *   ScanErrors           other send failures and bad replies (agent gone, bad verdict, ...).
 *   NoAgentOpens         opens that needed a scan while no scanner connection existed.
 *   FailOpenAllowed      opens allowed because of fail-open after a timeout/error/no agent.
 *   FailClosedDenied     opens denied because of fail-closed after a timeout/error/no agent.
 *   ExcludedOpens        opens not scanned because a scanner connection's process made them.
 *   ProbeMessages        PROBE messages sent.
 *   ConnectionsTotal     connections accepted since load.
 *   ConnectionsCurrent   connections open now.         ScannerConnections  of which scanners.
 *   PoolAllocations      driver pool allocations outstanding now (0 after a clean teardown).
 *   PoolBytes            bytes in those allocations.
 */
typedef struct _FLTSAMPLE_STATS {
    FLTSAMPLE_U16 ProtocolVersion;    /* @0 */
    FLTSAMPLE_U16 Reserved0;          /* @2 */
    FLTSAMPLE_U32 StructSize;         /* @4 */
    FLTSAMPLE_U64 ScanRequests;       /* @8 */
    FLTSAMPLE_U64 ScansAllowed;       /* @16 */
    FLTSAMPLE_U64 ScansBlocked;       /* @24 */
    FLTSAMPLE_U64 ScanTimeouts;       /* @32 */
    FLTSAMPLE_U64 ScanErrors;         /* @40 */
    FLTSAMPLE_U64 NoAgentOpens;       /* @48 */
    FLTSAMPLE_U64 FailOpenAllowed;    /* @56 */
    FLTSAMPLE_U64 FailClosedDenied;   /* @64 */
    FLTSAMPLE_U64 ExcludedOpens;      /* @72 */
    FLTSAMPLE_U64 ProbeMessages;      /* @80 */
    FLTSAMPLE_U64 ConnectionsTotal;   /* @88 */
    FLTSAMPLE_U32 ConnectionsCurrent; /* @96 */
    FLTSAMPLE_U32 ScannerConnections; /* @100 */
    FLTSAMPLE_I64 PoolAllocations;    /* @104 */
    FLTSAMPLE_I64 PoolBytes;          /* @112 */
} FLTSAMPLE_STATS;                    /* 120 bytes */

/* FLTSAMPLE_PROBE_REQUEST.Flags */
#define FLTSAMPLE_PROBE_FLAG_NO_REPLY 0x00000001u /* send without waiting for replies */
#define FLTSAMPLE_PROBE_VALID_FLAGS 0x00000001u

/*
 * FLTSAMPLE_PROBE_REQUEST: PROBE input after the header. The driver sends Count messages of type
 * FLTSAMPLE_MSG_PROBE to the *calling* connection, one after another, each waiting up to TimeoutMs
 * for a reader and (unless NO_REPLY) for the reply, and returns timings. FilterSendMessage does not
 * return until the probe is over: the caller must have FilterGetMessage calls outstanding on the
 * same connection from other threads (or an I/O completion port). Stops at the first message that
 * does not go through (a timeout, the connection closing, ...).
 *   Count         1..FLTSAMPLE_MAX_PROBE_COUNT.
 *   ContentBytes  0..1024 bytes of pattern (byte i = i & 0xFF) in Content.
 *   TimeoutMs     1..FLTSAMPLE_MAX_PROBE_TIMEOUT_MS per message.
 *   Flags         FLTSAMPLE_PROBE_FLAG_*.
 */
typedef struct _FLTSAMPLE_PROBE_REQUEST {
    FLTSAMPLE_U32 Count;        /* @0 */
    FLTSAMPLE_U32 ContentBytes; /* @4 */
    FLTSAMPLE_U32 TimeoutMs;    /* @8 */
    FLTSAMPLE_U32 Flags;        /* @12 */
} FLTSAMPLE_PROBE_REQUEST;      /* 16 bytes */

/*
 * FLTSAMPLE_PROBE_RESULT: PROBE output. Times in 100 ns units (KeQueryPerformanceCounter based).
 *   Sent        messages taken by a reader.        Replied   replies received (ALLOW or BLOCK).
 *   TimedOut    STATUS_TIMEOUT results (0 or 1).   Failed    other failures and bad replies.
 *   LastStatus  NTSTATUS of the last FltSendMessage (0 if none failed).
 *   ElapsedTime whole probe.  MinRoundTrip / MaxRoundTrip  over successful messages (0 if none).
 */
typedef struct _FLTSAMPLE_PROBE_RESULT {
    FLTSAMPLE_U32 Sent;         /* @0 */
    FLTSAMPLE_U32 Replied;      /* @4 */
    FLTSAMPLE_U32 TimedOut;     /* @8 */
    FLTSAMPLE_U32 Failed;       /* @12 */
    FLTSAMPLE_I32 LastStatus;   /* @16 */
    FLTSAMPLE_U32 Reserved0;    /* @20 */
    FLTSAMPLE_U64 ElapsedTime;  /* @24 */
    FLTSAMPLE_U64 MinRoundTrip; /* @32 */
    FLTSAMPLE_U64 MaxRoundTrip; /* @40 */
} FLTSAMPLE_PROBE_RESULT;       /* 48 bytes */

/* ------------------------------------------------------------------------------------------------
 * Layout checks: a compile error here means this compiler would lay the structs out differently.
 * ----------------------------------------------------------------------------------------------*/

#if defined(__cplusplus) && __cplusplus >= 201103L
#define FLTSAMPLE_STATIC_ASSERT(name, expr) static_assert((expr), #name)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define FLTSAMPLE_STATIC_ASSERT(name, expr) _Static_assert((expr), #name)
#else
/* Pre-C11: an array of negative size is a compile error (what C_ASSERT in ntdef.h does too). */
#define FLTSAMPLE_STATIC_ASSERT(name, expr) typedef char fltsample_assert_##name[(expr) ? 1 : -1]
#endif

#define FLTSAMPLE_CHECK_FIELD(type, field, offset) \
    FLTSAMPLE_STATIC_ASSERT(type##_##field, offsetof(type, field) == (offset))

FLTSAMPLE_STATIC_ASSERT(
    u8_size,
    sizeof(FLTSAMPLE_U8) == 1
);
FLTSAMPLE_STATIC_ASSERT(
    u16_size,
    sizeof(FLTSAMPLE_U16) == 2
);
FLTSAMPLE_STATIC_ASSERT(
    u32_size,
    sizeof(FLTSAMPLE_U32) == 4
);
FLTSAMPLE_STATIC_ASSERT(
    i32_size,
    sizeof(FLTSAMPLE_I32) == 4
);
FLTSAMPLE_STATIC_ASSERT(
    u64_size,
    sizeof(FLTSAMPLE_U64) == 8
);
FLTSAMPLE_STATIC_ASSERT(
    i64_size,
    sizeof(FLTSAMPLE_I64) == 8
);
FLTSAMPLE_STATIC_ASSERT(
    wchar_size,
    sizeof(FLTSAMPLE_WCHAR) == 2
);

FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_CONNECT_CONTEXT,
    ProtocolVersion,
    0
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_CONNECT_CONTEXT,
    Reserved0,
    2
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_CONNECT_CONTEXT,
    Flags,
    4
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_CONNECT_CONTEXT,
    ProcessId,
    8
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_CONNECT_CONTEXT,
    Reserved1,
    12
);
FLTSAMPLE_STATIC_ASSERT(
    connect_context_size,
    sizeof(FLTSAMPLE_CONNECT_CONTEXT) == 16
);

FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    ProtocolVersion,
    0
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    MessageType,
    2
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    Flags,
    4
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    ScanId,
    8
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    FileId,
    16
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    FileSize,
    24
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    ProcessId,
    32
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    PathLength,
    36
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    ContentLength,
    40
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    Reserved0,
    44
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    Path,
    48
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REQUEST,
    Content,
    568
);
FLTSAMPLE_STATIC_ASSERT(
    scan_request_size,
    sizeof(FLTSAMPLE_SCAN_REQUEST) == 1592
);

FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REPLY,
    Verdict,
    0
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_SCAN_REPLY,
    ReasonCode,
    4
);
FLTSAMPLE_STATIC_ASSERT(
    scan_reply_size,
    sizeof(FLTSAMPLE_SCAN_REPLY) == 8
);
FLTSAMPLE_STATIC_ASSERT(
    scan_reply_message,
    FLTSAMPLE_SCAN_REPLY_MESSAGE_BYTES == 16 + sizeof(FLTSAMPLE_SCAN_REPLY)
);

FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_COMMAND_HEADER,
    ProtocolVersion,
    0
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_COMMAND_HEADER,
    Command,
    2
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_COMMAND_HEADER,
    Reserved,
    4
);
FLTSAMPLE_STATIC_ASSERT(
    command_header_size,
    sizeof(FLTSAMPLE_COMMAND_HEADER) == 8
);

FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_CONFIG,
    Flags,
    0
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_CONFIG,
    ReplyTimeoutMs,
    4
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_CONFIG,
    ContentBytes,
    8
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_CONFIG,
    ExtensionCount,
    12
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_CONFIG,
    Extensions,
    16
);
FLTSAMPLE_STATIC_ASSERT(
    config_size,
    sizeof(FLTSAMPLE_CONFIG) == 528
);

FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ProtocolVersion,
    0
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    Reserved0,
    2
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    StructSize,
    4
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ScanRequests,
    8
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ScansAllowed,
    16
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ScansBlocked,
    24
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ScanTimeouts,
    32
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ScanErrors,
    40
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    NoAgentOpens,
    48
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    FailOpenAllowed,
    56
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    FailClosedDenied,
    64
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ExcludedOpens,
    72
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ProbeMessages,
    80
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ConnectionsTotal,
    88
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ConnectionsCurrent,
    96
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    ScannerConnections,
    100
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    PoolAllocations,
    104
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_STATS,
    PoolBytes,
    112
);
FLTSAMPLE_STATIC_ASSERT(
    stats_size,
    sizeof(FLTSAMPLE_STATS) == 120
);

FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_REQUEST,
    Count,
    0
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_REQUEST,
    ContentBytes,
    4
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_REQUEST,
    TimeoutMs,
    8
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_REQUEST,
    Flags,
    12
);
FLTSAMPLE_STATIC_ASSERT(
    probe_request_size,
    sizeof(FLTSAMPLE_PROBE_REQUEST) == 16
);

FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_RESULT,
    Sent,
    0
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_RESULT,
    Replied,
    4
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_RESULT,
    TimedOut,
    8
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_RESULT,
    Failed,
    12
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_RESULT,
    LastStatus,
    16
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_RESULT,
    Reserved0,
    20
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_RESULT,
    ElapsedTime,
    24
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_RESULT,
    MinRoundTrip,
    32
);
FLTSAMPLE_CHECK_FIELD(
    FLTSAMPLE_PROBE_RESULT,
    MaxRoundTrip,
    40
);
FLTSAMPLE_STATIC_ASSERT(
    probe_result_size,
    sizeof(FLTSAMPLE_PROBE_RESULT) == 48
);

#pragma pack(pop)

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FLTMGR_SAMPLE_PROTOCOL_H */
