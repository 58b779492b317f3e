// The subset of Win32 + fltlib that the fltmgr core uses, for hosts that are not Windows.
//
// Semantics follow Windows' documentation (and docs/fltmgr-facts.md); the communication calls talk
// to the Filter Manager simulator over docs/wire-protocol.md. Only what the core calls is here. Handles
// are pointers to reference-counted objects; nothing in this layer is a per-process global except the
// thread-local last-error value, which is per-thread on Windows too.
#pragma once
#if defined(_WIN32)
#error "win32_compat.h is for non-Windows hosts; Windows uses <windows.h> and <fltuser.h>"
#endif

#include <cstddef>
#include <cstdint>

typedef int32_t BOOL;
typedef uint8_t BYTE;
typedef uint16_t WORD;
typedef uint16_t USHORT;
typedef uint32_t DWORD;
typedef uint32_t ULONG;
typedef int32_t LONG;
typedef uint64_t ULONGLONG;
typedef uintptr_t ULONG_PTR;
typedef int32_t HRESULT;
typedef int32_t NTSTATUS;
typedef void* HANDLE;
typedef void* LPVOID;
typedef const void* LPCVOID;
typedef DWORD* LPDWORD;
typedef char16_t WCHAR;  // UTF-16 code unit, as on Windows
typedef const WCHAR* LPCWSTR;
typedef WCHAR* LPWSTR;
typedef HANDLE* LPHANDLE;
typedef HANDLE* PHANDLE;

#ifndef TRUE
#define TRUE 1
#define FALSE 0
#endif
#define WINAPI
#define INVALID_HANDLE_VALUE (reinterpret_cast<HANDLE>(static_cast<intptr_t>(-1)))
#define INFINITE 0xFFFFFFFFu

#define S_OK static_cast<HRESULT>(0)
#define E_INVALIDARG static_cast<HRESULT>(0x80070057)
#define E_OUTOFMEMORY static_cast<HRESULT>(0x8007000E)
#define E_HANDLE static_cast<HRESULT>(0x80070006)
#define E_NOTIMPL static_cast<HRESULT>(0x80004001)
#define SUCCEEDED(hr) (static_cast<HRESULT>(hr) >= 0)
#define FAILED(hr) (static_cast<HRESULT>(hr) < 0)
#define HRESULT_FROM_WIN32(x)                             \
  (static_cast<HRESULT>(x) <= 0 ? static_cast<HRESULT>(x) \
                                : static_cast<HRESULT>(((x) & 0x0000FFFFu) | (7u << 16) | 0x80000000u))

// Win32 error codes used by the core and this layer.
#define ERROR_SUCCESS 0u
#define ERROR_FILE_NOT_FOUND 2u
#define ERROR_ACCESS_DENIED 5u
#define ERROR_INVALID_HANDLE 6u
#define ERROR_NOT_ENOUGH_MEMORY 8u
#define ERROR_NOT_SUPPORTED 50u
#define ERROR_INVALID_PARAMETER 87u
#define ERROR_BROKEN_PIPE 109u
#define ERROR_INSUFFICIENT_BUFFER 122u
#define ERROR_MORE_DATA 234u
#define ERROR_NO_MORE_ITEMS 259u
#define WAIT_TIMEOUT 258u
#define ERROR_ABANDONED_WAIT_0 735u
#define ERROR_OPERATION_ABORTED 995u
#define ERROR_IO_INCOMPLETE 996u
#define ERROR_IO_PENDING 997u
#define ERROR_NOT_FOUND 1168u
#define ERROR_CONNECTION_COUNT_LIMIT 1238u
#define ERROR_FLT_NO_WAITER_FOR_REPLY_HR static_cast<HRESULT>(0x801F0020)

// NTSTATUS values that appear in OVERLAPPED.Internal.
#define STATUS_SUCCESS static_cast<NTSTATUS>(0)
#define STATUS_PENDING static_cast<NTSTATUS>(0x00000103)
#define STATUS_BUFFER_TOO_SMALL static_cast<NTSTATUS>(0xC0000023)
#define STATUS_CANCELLED static_cast<NTSTATUS>(0xC0000120)
#define STATUS_PORT_DISCONNECTED static_cast<NTSTATUS>(0xC0000037)
#define STATUS_INVALID_HANDLE static_cast<NTSTATUS>(0xC0000008)
#define STATUS_PIPE_BROKEN static_cast<NTSTATUS>(0xC000014B)

typedef struct _OVERLAPPED {
  ULONG_PTR Internal;      // NTSTATUS of the completed operation (STATUS_PENDING while in flight)
  ULONG_PTR InternalHigh;  // bytes transferred
  union {
    struct {
      DWORD Offset;
      DWORD OffsetHigh;
    } s;
    void* Pointer;
  } u;
  HANDLE hEvent;
} OVERLAPPED, *LPOVERLAPPED;

typedef struct _OVERLAPPED_ENTRY {
  ULONG_PTR lpCompletionKey;
  LPOVERLAPPED lpOverlapped;
  ULONG_PTR Internal;
  DWORD dwNumberOfBytesTransferred;
} OVERLAPPED_ENTRY, *LPOVERLAPPED_ENTRY;

typedef struct _SECURITY_ATTRIBUTES {
  DWORD nLength;
  LPVOID lpSecurityDescriptor;
  BOOL bInheritHandle;
} SECURITY_ATTRIBUTES, *LPSECURITY_ATTRIBUTES;

// fltuser.h layouts (MSVC: 16 bytes each, 4 bytes of padding after the first field).
typedef struct _FILTER_MESSAGE_HEADER {
  ULONG ReplyLength;
  ULONGLONG MessageId;
} FILTER_MESSAGE_HEADER, *PFILTER_MESSAGE_HEADER;

typedef struct _FILTER_REPLY_HEADER {
  NTSTATUS Status;
  ULONGLONG MessageId;
} FILTER_REPLY_HEADER, *PFILTER_REPLY_HEADER;

static_assert(sizeof(FILTER_MESSAGE_HEADER) == 16, "FILTER_MESSAGE_HEADER must match MSVC");
static_assert(sizeof(FILTER_REPLY_HEADER) == 16, "FILTER_REPLY_HEADER must match MSVC");

#define FLT_PORT_FLAG_SYNC_HANDLE 0x00000001u

// --- fltuserstructures.h: the management calls' types ----------------------------------------------
// Written from Microsoft's documentation; the layouts are Windows' (x64 and x86 alike: no pointers), checked
// against mingw-w64's fltuserstructures.h by test/struct-abi.test.ts. Names are offset+length pairs in
// bytes from the start of the record, or inline (FILTER_FULL_INFORMATION, FILTER_VOLUME_*_INFORMATION).
typedef HANDLE HFILTER;
typedef HANDLE HFILTER_INSTANCE;
typedef HANDLE HFILTER_VOLUME;

#define FLTFL_AGGREGATE_INFO_IS_MINIFILTER 1u
#define FLTFL_AGGREGATE_INFO_IS_LEGACYFILTER 2u
#define FLTFL_ASI_IS_MINIFILTER 1u
#define FLTFL_ASI_IS_LEGACYFILTER 2u
#define FLTFL_IASI_IS_MINIFILTER 1u
#define FLTFL_IASI_IS_LEGACYFILTER 2u
#define FLTFL_VSI_DETACHED_VOLUME 1u

// A fixed underlying type (Windows' enums are int too): a simulator's number past the last name stays a defined
// value here (read it as a ULONG on Windows, where the header's enum has no fixed type).
typedef enum _FLT_FILESYSTEM_TYPE : int32_t {
  FLT_FSTYPE_UNKNOWN = 0,
  FLT_FSTYPE_RAW = 1,
  FLT_FSTYPE_NTFS = 2,
  FLT_FSTYPE_FAT = 3,
  FLT_FSTYPE_CDFS = 4,
  FLT_FSTYPE_UDFS = 5,
  FLT_FSTYPE_LANMAN = 6,
  FLT_FSTYPE_WEBDAV = 7,
  FLT_FSTYPE_RDPDR = 8,
  FLT_FSTYPE_NFS = 9,
  FLT_FSTYPE_MS_NETWARE = 10,
  FLT_FSTYPE_NETWARE = 11,
  FLT_FSTYPE_BSUDF = 12,
  FLT_FSTYPE_MUP = 13,
  FLT_FSTYPE_RSFX = 14,
  FLT_FSTYPE_ROXIO_UDF1 = 15,
  FLT_FSTYPE_ROXIO_UDF2 = 16,
  FLT_FSTYPE_ROXIO_UDF3 = 17,
  FLT_FSTYPE_TACIT = 18,
  FLT_FSTYPE_FS_REC = 19,
  FLT_FSTYPE_INCD = 20,
  FLT_FSTYPE_INCD_FAT = 21,
  FLT_FSTYPE_EXFAT = 22,
  FLT_FSTYPE_PSFS = 23,
  FLT_FSTYPE_GPFS = 24,
  FLT_FSTYPE_NPFS = 25,
  FLT_FSTYPE_MSFS = 26,
  FLT_FSTYPE_CSVFS = 27,
  FLT_FSTYPE_REFS = 28,
  FLT_FSTYPE_OPENAFS = 29
} FLT_FILESYSTEM_TYPE,
    *PFLT_FILESYSTEM_TYPE;

typedef enum _FILTER_INFORMATION_CLASS {
  FilterFullInformation = 0,
  FilterAggregateBasicInformation = 1,
  FilterAggregateStandardInformation = 2
} FILTER_INFORMATION_CLASS,
    *PFILTER_INFORMATION_CLASS;

typedef enum _INSTANCE_INFORMATION_CLASS {
  InstanceBasicInformation = 0,
  InstancePartialInformation = 1,
  InstanceFullInformation = 2,
  InstanceAggregateStandardInformation = 3
} INSTANCE_INFORMATION_CLASS,
    *PINSTANCE_INFORMATION_CLASS;

typedef enum _FILTER_VOLUME_INFORMATION_CLASS {
  FilterVolumeBasicInformation = 0,
  FilterVolumeStandardInformation = 1
} FILTER_VOLUME_INFORMATION_CLASS,
    *PFILTER_VOLUME_INFORMATION_CLASS;

typedef struct _FILTER_FULL_INFORMATION {
  ULONG NextEntryOffset;
  ULONG FrameID;
  ULONG NumberOfInstances;
  USHORT FilterNameLength;  // bytes
  WCHAR FilterNameBuffer[1];
} FILTER_FULL_INFORMATION, *PFILTER_FULL_INFORMATION;

typedef struct _FILTER_AGGREGATE_BASIC_INFORMATION {
  ULONG NextEntryOffset;
  ULONG Flags;  // FLTFL_AGGREGATE_INFO_IS_*: which union member is valid
  union {
    struct {
      ULONG FrameID;
      ULONG NumberOfInstances;
      USHORT FilterNameLength;
      USHORT FilterNameBufferOffset;
      USHORT FilterAltitudeLength;
      USHORT FilterAltitudeBufferOffset;
    } MiniFilter;
    struct {
      USHORT FilterNameLength;
      USHORT FilterNameBufferOffset;
    } LegacyFilter;
  } Type;
} FILTER_AGGREGATE_BASIC_INFORMATION, *PFILTER_AGGREGATE_BASIC_INFORMATION;

typedef struct _FILTER_AGGREGATE_STANDARD_INFORMATION {
  ULONG NextEntryOffset;
  ULONG Flags;  // FLTFL_ASI_IS_*
  union {
    struct {
      ULONG Flags;
      ULONG FrameID;
      ULONG NumberOfInstances;
      USHORT FilterNameLength;
      USHORT FilterNameBufferOffset;
      USHORT FilterAltitudeLength;
      USHORT FilterAltitudeBufferOffset;
    } MiniFilter;
    struct {
      ULONG Flags;
      USHORT FilterNameLength;
      USHORT FilterNameBufferOffset;
      USHORT FilterAltitudeLength;
      USHORT FilterAltitudeBufferOffset;
    } LegacyFilter;
  } Type;
} FILTER_AGGREGATE_STANDARD_INFORMATION, *PFILTER_AGGREGATE_STANDARD_INFORMATION;

typedef struct _FILTER_VOLUME_BASIC_INFORMATION {
  USHORT FilterVolumeNameLength;  // bytes
  WCHAR FilterVolumeName[1];
} FILTER_VOLUME_BASIC_INFORMATION, *PFILTER_VOLUME_BASIC_INFORMATION;

typedef struct _FILTER_VOLUME_STANDARD_INFORMATION {
  ULONG NextEntryOffset;
  ULONG Flags;  // FLTFL_VSI_DETACHED_VOLUME
  ULONG FrameID;
  FLT_FILESYSTEM_TYPE FileSystemType;
  USHORT FilterVolumeNameLength;  // bytes
  WCHAR FilterVolumeName[1];
} FILTER_VOLUME_STANDARD_INFORMATION, *PFILTER_VOLUME_STANDARD_INFORMATION;

typedef struct _INSTANCE_BASIC_INFORMATION {
  ULONG NextEntryOffset;
  USHORT InstanceNameLength;
  USHORT InstanceNameBufferOffset;
} INSTANCE_BASIC_INFORMATION, *PINSTANCE_BASIC_INFORMATION;

typedef struct _INSTANCE_PARTIAL_INFORMATION {
  ULONG NextEntryOffset;
  USHORT InstanceNameLength;
  USHORT InstanceNameBufferOffset;
  USHORT AltitudeLength;
  USHORT AltitudeBufferOffset;
} INSTANCE_PARTIAL_INFORMATION, *PINSTANCE_PARTIAL_INFORMATION;

typedef struct _INSTANCE_FULL_INFORMATION {
  ULONG NextEntryOffset;
  USHORT InstanceNameLength;
  USHORT InstanceNameBufferOffset;
  USHORT AltitudeLength;
  USHORT AltitudeBufferOffset;
  USHORT VolumeNameLength;
  USHORT VolumeNameBufferOffset;
  USHORT FilterNameLength;
  USHORT FilterNameBufferOffset;
} INSTANCE_FULL_INFORMATION, *PINSTANCE_FULL_INFORMATION;

// The Windows 8+ layout (SupportedFeatures present), which is what current SDKs and mingw-w64 declare.
typedef struct _INSTANCE_AGGREGATE_STANDARD_INFORMATION {
  ULONG NextEntryOffset;
  ULONG Flags;  // FLTFL_IASI_IS_*
  union {
    struct {
      ULONG Flags;
      ULONG FrameID;
      FLT_FILESYSTEM_TYPE VolumeFileSystemType;
      USHORT InstanceNameLength;
      USHORT InstanceNameBufferOffset;
      USHORT AltitudeLength;
      USHORT AltitudeBufferOffset;
      USHORT VolumeNameLength;
      USHORT VolumeNameBufferOffset;
      USHORT FilterNameLength;
      USHORT FilterNameBufferOffset;
      ULONG SupportedFeatures;
    } MiniFilter;
    struct {
      ULONG Flags;
      USHORT AltitudeLength;
      USHORT AltitudeBufferOffset;
      USHORT VolumeNameLength;
      USHORT VolumeNameBufferOffset;
      USHORT FilterNameLength;
      USHORT FilterNameBufferOffset;
      ULONG SupportedFeatures;
    } LegacyFilter;
  } Type;
} INSTANCE_AGGREGATE_STANDARD_INFORMATION, *PINSTANCE_AGGREGATE_STANDARD_INFORMATION;

static_assert(sizeof(FLT_FILESYSTEM_TYPE) == 4, "an enum is 4 bytes on Windows");

// --- kernel32 subset ------------------------------------------------------------------------------
DWORD GetLastError();
void SetLastError(DWORD error);

// Create a completion queue (FileHandle == INVALID_HANDLE_VALUE) or associate a port handle with one.
// Associating returns ExistingCompletionPort. A handle may be associated once (as on Windows).
HANDLE CreateIoCompletionPort(HANDLE FileHandle, HANDLE ExistingCompletionPort, ULONG_PTR CompletionKey,
                              DWORD NumberOfConcurrentThreads);
// Dequeues up to ulCount entries; waits up to dwMilliseconds for the first. FALSE + WAIT_TIMEOUT on
// time-out; FALSE + ERROR_ABANDONED_WAIT_0 if the port is closed while (or before) waiting.
// Entry.Internal is the NTSTATUS of the operation. fAlertable is ignored (no APCs here).
BOOL GetQueuedCompletionStatusEx(HANDLE CompletionPort, LPOVERLAPPED_ENTRY lpCompletionPortEntries, ULONG ulCount,
                                 ULONG* ulNumEntriesRemoved, DWORD dwMilliseconds, BOOL fAlertable);
BOOL PostQueuedCompletionStatus(HANDLE CompletionPort, DWORD dwNumberOfBytesTransferred, ULONG_PTR dwCompletionKey,
                                LPOVERLAPPED lpOverlapped);
// Cancels the handle's pending overlapped gets (all of them when lpOverlapped is NULL). Each cancelled get
// completes at once through the completion port with STATUS_CANCELLED, without waiting for the simulator
// (which may run on the very thread that waits for the drain). FALSE + ERROR_NOT_FOUND if none was found.
// A message the simulator had already sent to a cancelled get is kept and given to another pending get or
// the next FilterGetMessage, so no message is lost.
BOOL CancelIoEx(HANDLE hFile, LPOVERLAPPED lpOverlapped);
// Non-waiting form only (bWait must be FALSE): maps lpOverlapped->Internal to a Win32 error the way
// Windows does (STATUS_CANCELLED -> ERROR_OPERATION_ABORTED, STATUS_BUFFER_TOO_SMALL ->
// ERROR_INSUFFICIENT_BUFFER, STATUS_PORT_DISCONNECTED -> ERROR_INVALID_HANDLE, ...).
BOOL GetOverlappedResult(HANDLE hFile, LPOVERLAPPED lpOverlapped, LPDWORD lpNumberOfBytesTransferred, BOOL bWait);
// Closing a port handle disconnects it: pending gets complete with STATUS_CANCELLED, the stream closes.
// Closing a completion port wakes its waiters with ERROR_ABANDONED_WAIT_0. Memory is released when the
// last internal reference goes, so a call racing with CloseHandle never touches freed memory.
BOOL CloseHandle(HANDLE hObject);

// --- fltlib communication subset (simulator-backed) -----------------------------------------------
// Endpoint taken from the FLTMGR_SIMULATOR environment variable (read at call time with getenv).
HRESULT FilterConnectCommunicationPort(LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext, WORD wSizeOfContext,
                                       LPSECURITY_ATTRIBUTES lpSecurityAttributes, HANDLE* hPort);
HRESULT FilterGetMessage(HANDLE hPort, PFILTER_MESSAGE_HEADER lpMessageBuffer, DWORD dwMessageBufferSize,
                         LPOVERLAPPED lpOverlapped);
HRESULT FilterReplyMessage(HANDLE hPort, PFILTER_REPLY_HEADER lpReplyBuffer, DWORD dwReplyBufferSize);
HRESULT FilterSendMessage(HANDLE hPort, LPVOID lpInBuffer, DWORD dwInBufferSize, LPVOID lpOutBuffer,
                          DWORD dwOutBufferSize, LPDWORD lpBytesReturned);

// The same as FilterConnectCommunicationPort with an explicit endpoint (docs/wire-protocol.md); nullptr or
// "" = FLTMGR_SIMULATOR. Missing endpoint: HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) (as if no driver).
HRESULT FltSimConnectCommunicationPort(const char* endpoint, LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext,
                                       WORD wSizeOfContext, LPSECURITY_ATTRIBUTES lpSecurityAttributes, HANDLE* hPort);
// Ends the connection now without closing the handle (which stays valid until CloseHandle): pending gets
// complete with STATUS_CANCELLED, callers waiting in FilterSendMessage / FilterReplyMessage or blocked
// writing to a simulator that stopped reading return HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED), later calls
// fail with E_HANDLE. What CancelIoEx(h, NULL) is to real fltlib, for a peer that may never answer.
HRESULT FltSimAbortPort(HANDLE hPort);

// --- fltlib management subset (simulator-backed: docs/wire-protocol.md, "Management requests") ------
// fltlib's signatures; the endpoint is FLTMGR_SIMULATOR. Find handles are compat handles: close them with
// the matching Filter*FindClose (CloseHandle works too). The FltSim* variants taking an endpoint are
// declared once for both simulator clients in native/sim/fltsim_manage.h (included below).
HRESULT FilterLoad(LPCWSTR lpFilterName);
HRESULT FilterUnload(LPCWSTR lpFilterName);
HRESULT FilterFindFirst(FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer, DWORD dwBufferSize,
                        LPDWORD lpBytesReturned, LPHANDLE lpFilterFind);
HRESULT FilterFindNext(HANDLE hFilterFind, FILTER_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                       DWORD dwBufferSize, LPDWORD lpBytesReturned);
HRESULT FilterFindClose(HANDLE hFilterFind);
HRESULT FilterInstanceFindFirst(LPCWSTR lpFilterName, INSTANCE_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                                DWORD dwBufferSize, LPDWORD lpBytesReturned, LPHANDLE lpFilterInstanceFind);
HRESULT FilterInstanceFindNext(HANDLE hFilterInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                               LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned);
HRESULT FilterInstanceFindClose(HANDLE hFilterInstanceFind);
HRESULT FilterVolumeFindFirst(FILTER_VOLUME_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer, DWORD dwBufferSize,
                              LPDWORD lpBytesReturned, PHANDLE lpVolumeFind);
HRESULT FilterVolumeFindNext(HANDLE hVolumeFind, FILTER_VOLUME_INFORMATION_CLASS dwInformationClass, LPVOID lpBuffer,
                             DWORD dwBufferSize, LPDWORD lpBytesReturned);
HRESULT FilterVolumeFindClose(HANDLE hVolumeFind);
HRESULT FilterVolumeInstanceFindFirst(LPCWSTR lpVolumeName, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                      LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned,
                                      LPHANDLE lpVolumeInstanceFind);
HRESULT FilterVolumeInstanceFindNext(HANDLE hVolumeInstanceFind, INSTANCE_INFORMATION_CLASS dwInformationClass,
                                     LPVOID lpBuffer, DWORD dwBufferSize, LPDWORD lpBytesReturned);
HRESULT FilterVolumeInstanceFindClose(HANDLE hVolumeInstanceFind);
HRESULT FilterAttach(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName,
                     DWORD dwCreatedInstanceNameLength, LPWSTR lpCreatedInstanceName);
HRESULT FilterAttachAtAltitude(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpAltitude, LPCWSTR lpInstanceName,
                               DWORD dwCreatedInstanceNameLength, LPWSTR lpCreatedInstanceName);
HRESULT FilterDetach(LPCWSTR lpFilterName, LPCWSTR lpVolumeName, LPCWSTR lpInstanceName);
HRESULT FilterGetDosName(LPCWSTR lpVolumeName, LPWSTR lpDosName, DWORD dwDosNameBufferSize);

#include "../sim/fltsim_manage.h"
