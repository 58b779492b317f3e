/*
 * fltmgr_kernel_nt.h - the kernel harness's own NT types, constants and WDM/NTIFS declarations, for
 * compiling a minifilter's C on Linux (issue 7). NOT a Windows header: written here from the WDK
 * reference pages (docs/fltmgr-facts.md, "Notes for building the kernel harness"); nothing is copied
 * from Microsoft's, ReactOS's or Wine's headers. fltKernel.h includes it on every target but mingw
 * (which has its own ntifs.h, kept as an independent cross-check of these declarations).
 *
 * Contract with the compiler: C11 (gnu11), -fshort-wchar (WCHAR and L"..." are 16-bit, as on
 * Windows), LLP64 integer types (ULONG/LONG are 32-bit fixed-width types, never `long`).
 * Struct layouts: the documented members the driver uses; layouts only need to agree between the
 * driver and the harness, which are built against this one header. Only what a routine's
 * documentation promises is declared; extend it when a driver needs more.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if !defined(__WCHAR_MAX__) || __WCHAR_MAX__ != 0xffff
#error "the kernel harness headers need a 16-bit wchar_t: compile with -fshort-wchar"
#endif

/* The WDK's compiler defines _WIN64 for 64-bit targets and drivers test it for the pointer size. */
#if UINTPTR_MAX == UINT64_MAX && !defined(_WIN64)
#define _WIN64 1
#endif

/* ---- SAL annotations and calling conventions: no meaning to gcc ---------------------------- */

#define _In_
#define _In_opt_
#define _Inout_
#define _Out_
#define _Outptr_
#define _Outptr_result_maybenull_
#define _Must_inspect_result_
#define _Ret_maybenull_
#define _Use_decl_annotations_
#define _Post_invalid_
#define _In_reads_bytes_(size)
#define _In_reads_bytes_opt_(size)
#define _Out_writes_bytes_to_(size, count)
#define _Out_writes_bytes_to_opt_(size, count)
#define _Post_writable_byte_size_(size)
#define _IRQL_requires_(irql)
#define _IRQL_requires_max_(irql)
#define NTAPI
#define NTKERNELAPI

/* ---- Base types (LLP64) ------------------------------------------------------------------- */

#define VOID void
typedef void *PVOID;
typedef void *HANDLE;
typedef char CHAR, CCHAR;
typedef const char *PCSTR;
typedef uint8_t UCHAR, *PUCHAR, BOOLEAN, *PBOOLEAN;
typedef int16_t SHORT;
typedef uint16_t USHORT, *PUSHORT;
typedef int32_t LONG, *PLONG;
typedef uint32_t ULONG, *PULONG;
typedef int64_t LONGLONG, LONG64;
typedef uint64_t ULONGLONG, ULONG64;
typedef uintptr_t ULONG_PTR;
typedef size_t SIZE_T;
typedef wchar_t WCHAR, *PWCH, *PWSTR;
typedef const WCHAR *PCWSTR;
typedef LONG NTSTATUS;
typedef ULONG ACCESS_MASK;
typedef ULONG DEVICE_TYPE;
typedef CCHAR KPROCESSOR_MODE;

typedef union _LARGE_INTEGER {
    struct {
        ULONG LowPart;
        LONG HighPart;
    };
    LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;

_Static_assert(sizeof(ULONG) == 4 && sizeof(LONG) == 4 && sizeof(WCHAR) == 2, "LLP64 widths");
_Static_assert(sizeof(LARGE_INTEGER) == 8, "LARGE_INTEGER is 64-bit");

#define TRUE 1
#define FALSE 0
#define MAXULONG 0xffffffffu
#define KernelMode 0
#define PASSIVE_LEVEL 0
#define APC_LEVEL 1
#define DISPATCH_LEVEL 2

#define FIELD_OFFSET(type, field) ((LONG)offsetof(type, field))
#define CONTAINING_RECORD(address, type, field) ((type *)((char *)(address) - offsetof(type, field)))
#define RTL_NUMBER_OF(a) (sizeof(a) / sizeof((a)[0]))
#define C_ASSERT(e) _Static_assert(e, #e)
#define UNREFERENCED_PARAMETER(p) ((void)(p))
#ifndef min
#define min(a, b) (((a) < (b)) ? (a) : (b))
#endif
#ifndef max
#define max(a, b) (((a) > (b)) ? (a) : (b))
#endif
#define FlagOn(flags, bit) ((flags) & (bit))
#define ReadNoFence(source) __atomic_load_n((const volatile LONG *)(source), __ATOMIC_RELAXED)

/* The harness runs at "PASSIVE_LEVEL" on ordinary threads: there is no IRQL to assert. */
#define PAGED_CODE() ((void)0)
#define NT_ASSERT(e) ((e) ? (void)0 : __builtin_trap())
#define NT_VERIFY(e) NT_ASSERT(e)

/* ---- NTSTATUS (values from the NTSTATUS reference; the same as lib/status.ts) ------------- */

#define NT_SUCCESS(s) (((NTSTATUS)(s)) >= 0)
#define NT_ERROR(s) ((((ULONG)(s)) >> 30) == 3)

#define STATUS_SUCCESS ((NTSTATUS)0x00000000)
#define STATUS_TIMEOUT ((NTSTATUS)0x00000102)
#define STATUS_REPARSE ((NTSTATUS)0x00000104)
#define STATUS_DATATYPE_MISALIGNMENT ((NTSTATUS)0x80000002u)
#define STATUS_BUFFER_OVERFLOW ((NTSTATUS)0x80000005u)
#define STATUS_UNSUCCESSFUL ((NTSTATUS)0xC0000001u)
#define STATUS_INVALID_PARAMETER ((NTSTATUS)0xC000000Du)
#define STATUS_INVALID_DEVICE_REQUEST ((NTSTATUS)0xC0000010u)
#define STATUS_END_OF_FILE ((NTSTATUS)0xC0000011u)
#define STATUS_ACCESS_DENIED ((NTSTATUS)0xC0000022u)
#define STATUS_BUFFER_TOO_SMALL ((NTSTATUS)0xC0000023u)
#define STATUS_OBJECT_TYPE_MISMATCH ((NTSTATUS)0xC0000024u)
#define STATUS_OBJECT_NAME_NOT_FOUND ((NTSTATUS)0xC0000034u)
#define STATUS_PORT_DISCONNECTED ((NTSTATUS)0xC0000037u)
#define STATUS_DELETE_PENDING ((NTSTATUS)0xC0000056u)
#define STATUS_REVISION_MISMATCH ((NTSTATUS)0xC0000059u)
#define STATUS_INVALID_SECURITY_DESCR ((NTSTATUS)0xC0000079u)
#define STATUS_INSUFFICIENT_RESOURCES ((NTSTATUS)0xC000009Au)
#define STATUS_FLT_DO_NOT_ATTACH ((NTSTATUS)0xC01C000Fu)

/* ---- Strings and lists -------------------------------------------------------------------- */

typedef struct _UNICODE_STRING {
    USHORT Length; /* bytes, no NUL */
    USHORT MaximumLength;
    PWCH Buffer;
} UNICODE_STRING, *PUNICODE_STRING;
typedef const UNICODE_STRING *PCUNICODE_STRING;

#define RTL_CONSTANT_STRING(s) {(USHORT)(sizeof(s) - sizeof((s)[0])), (USHORT)sizeof(s), (PWCH)(s)}

typedef struct _LIST_ENTRY {
    struct _LIST_ENTRY *Flink;
    struct _LIST_ENTRY *Blink;
} LIST_ENTRY, *PLIST_ENTRY;

/* The list routines are inline in the WDK too (no import): circular, doubly linked, head is a sentinel. */
static inline void InitializeListHead(PLIST_ENTRY Head) { Head->Flink = Head->Blink = Head; }
static inline BOOLEAN IsListEmpty(const LIST_ENTRY *Head) { return (BOOLEAN)(Head->Flink == Head); }
static inline BOOLEAN RemoveEntryList(PLIST_ENTRY Entry) {
    PLIST_ENTRY next = Entry->Flink, prev = Entry->Blink;
    prev->Flink = next;
    next->Blink = prev;
    return (BOOLEAN)(next == prev);
}
static inline PLIST_ENTRY RemoveHeadList(PLIST_ENTRY Head) {
    PLIST_ENTRY entry = Head->Flink;
    RemoveEntryList(entry);
    return entry;
}
static inline void InsertTailList(PLIST_ENTRY Head, PLIST_ENTRY Entry) {
    PLIST_ENTRY last = Head->Blink;
    Entry->Flink = Head;
    Entry->Blink = last;
    last->Flink = Entry;
    Head->Blink = Entry;
}

/* ---- Interlocked: compiler intrinsics on Windows, so inline here too (full barriers) -------- */

static inline LONG InterlockedIncrement(volatile LONG *p) { return __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST); }
static inline LONG InterlockedDecrement(volatile LONG *p) { return __atomic_sub_fetch(p, 1, __ATOMIC_SEQ_CST); }
static inline LONG InterlockedExchange(volatile LONG *p, LONG v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline LONG64 InterlockedIncrement64(volatile LONG64 *p) { return __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST); }
static inline LONG64 InterlockedDecrement64(volatile LONG64 *p) { return __atomic_sub_fetch(p, 1, __ATOMIC_SEQ_CST); }
/* Returns the resulting value (InterlockedExchangeAdd64 returns the initial one). */
static inline LONG64 InterlockedAdd64(volatile LONG64 *p, LONG64 v) {
    return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}
static inline LONG64 InterlockedCompareExchange64(volatile LONG64 *p, LONG64 exchange, LONG64 comparand) {
    __atomic_compare_exchange_n(p, &comparand, exchange, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return comparand; /* the initial value, whether or not it was exchanged */
}

/* ---- Memory and pool ---------------------------------------------------------------------- */

#define RtlCopyMemory(d, s, n) memcpy((d), (s), (n))
#define RtlZeroMemory(d, n) memset((d), 0, (n))
/* The kernel CRT's wcslen counts 16-bit WCHARs. glibc's counts 32-bit wchar_t, so the harness must
 * define its own in the same link, hidden, so that glibc's can never bind (native/kernel/README.md). */
size_t wcslen(const wchar_t *s);

typedef enum _POOL_TYPE { NonPagedPool = 0, PagedPool = 1, NonPagedPoolNx = 512 } POOL_TYPE;
typedef ULONG64 POOL_FLAGS;
#define POOL_FLAG_UNINITIALIZED 0x0000000000000002ULL
#define POOL_FLAG_NON_PAGED 0x0000000000000040ULL
#define POOL_FLAG_PAGED 0x0000000000000100ULL

PVOID ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag);
VOID ExFreePoolWithTag(PVOID P, ULONG Tag);

/* ---- Synchronisation ---------------------------------------------------------------------- */

typedef ULONG_PTR EX_PUSH_LOCK, *PEX_PUSH_LOCK;
typedef struct _EX_RUNDOWN_REF {
    ULONG_PTR Count;
} EX_RUNDOWN_REF, *PEX_RUNDOWN_REF;

VOID ExInitializeRundownProtection(PEX_RUNDOWN_REF RunRef);
BOOLEAN ExAcquireRundownProtection(PEX_RUNDOWN_REF RunRef);
VOID ExReleaseRundownProtection(PEX_RUNDOWN_REF RunRef);
VOID ExWaitForRundownProtectionRelease(PEX_RUNDOWN_REF RunRef);

/* ---- Objects, I/O, files ------------------------------------------------------------------ */

/* A process id is a HANDLE-sized value; the conversion is the documented truncation to 32 bits. */
#define HandleToULong(h) ((ULONG)(ULONG_PTR)(h))

typedef struct _DRIVER_OBJECT DRIVER_OBJECT, *PDRIVER_OBJECT; /* opaque: the harness owns it */
typedef struct _ETHREAD *PETHREAD;
typedef NTSTATUS DRIVER_INITIALIZE(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath);

typedef struct _OBJECT_ATTRIBUTES {
    ULONG Length;
    HANDLE RootDirectory;
    PUNICODE_STRING ObjectName;
    ULONG Attributes;
    PVOID SecurityDescriptor;
    PVOID SecurityQualityOfService;
} OBJECT_ATTRIBUTES, *POBJECT_ATTRIBUTES;

#define OBJ_CASE_INSENSITIVE 0x00000040u
#define OBJ_KERNEL_HANDLE 0x00000200u
#define InitializeObjectAttributes(p, n, a, r, s)       \
    do {                                                \
        (p)->Length = (ULONG)sizeof(OBJECT_ATTRIBUTES); \
        (p)->RootDirectory = (r);                       \
        (p)->ObjectName = (n);                          \
        (p)->Attributes = (a);                          \
        (p)->SecurityDescriptor = (s);                  \
        (p)->SecurityQualityOfService = NULL;           \
    } while (0)

typedef struct _IO_STATUS_BLOCK {
    union {
        NTSTATUS Status;
        PVOID Pointer;
    };
    ULONG_PTR Information;
} IO_STATUS_BLOCK, *PIO_STATUS_BLOCK;

typedef struct _IO_SECURITY_CONTEXT {
    PVOID SecurityQos;
    PVOID AccessState;
    ACCESS_MASK DesiredAccess;
    ULONG FullCreateOptions;
} IO_SECURITY_CONTEXT, *PIO_SECURITY_CONTEXT;

/* The members of FILE_OBJECT a minifilter reads; the harness creates every file object. */
typedef struct _FILE_OBJECT {
    SHORT Type;
    SHORT Size;
    ULONG Flags;
    UNICODE_STRING FileName;
    PVOID FsContext;
} FILE_OBJECT, *PFILE_OBJECT;

typedef enum _FILE_INFORMATION_CLASS {
    FileStandardInformation = 5,
    FileInternalInformation = 6
} FILE_INFORMATION_CLASS;

typedef struct _FILE_STANDARD_INFORMATION {
    LARGE_INTEGER AllocationSize;
    LARGE_INTEGER EndOfFile;
    ULONG NumberOfLinks;
    BOOLEAN DeletePending;
    BOOLEAN Directory;
} FILE_STANDARD_INFORMATION;

typedef struct _FILE_INTERNAL_INFORMATION {
    LARGE_INTEGER IndexNumber;
} FILE_INTERNAL_INFORMATION;

#define IRP_MJ_CREATE 0x00
#define SL_OPEN_PAGING_FILE 0x02
#define FO_VOLUME_OPEN 0x00400000u
#define FILE_DIRECTORY_FILE 0x00000001u
#define FILE_OPEN 0x00000001u
#define FILE_DEVICE_DISK_FILE_SYSTEM 0x00000008u

/* ---- Access rights, registry -------------------------------------------------------------- */

#define FILE_READ_DATA 0x0001u
#define FILE_WRITE_DATA 0x0002u
#define FILE_APPEND_DATA 0x0004u
#define FILE_EXECUTE 0x0020u
#define STANDARD_RIGHTS_ALL 0x001F0000u
#define KEY_READ 0x00020019u
#define REG_SZ 1u

/* ---- Security ----------------------------------------------------------------------------- */

typedef PVOID PSID;
typedef PVOID PSECURITY_DESCRIPTOR;
typedef PVOID PACCESS_TOKEN;

typedef struct _SID_IDENTIFIER_AUTHORITY {
    UCHAR Value[6];
} SID_IDENTIFIER_AUTHORITY;

typedef struct _SID {
    UCHAR Revision;
    UCHAR SubAuthorityCount;
    SID_IDENTIFIER_AUTHORITY IdentifierAuthority;
    ULONG SubAuthority[1]; /* SubAuthorityCount of them */
} SID;

#define SECURITY_MAX_SID_SIZE 68 /* 8 + 4 * SID_MAX_SUB_AUTHORITIES (15) */

typedef struct _ACL {
    UCHAR AclRevision;
    UCHAR Sbz1;
    USHORT AclSize;
    USHORT AceCount;
    USHORT Sbz2;
} ACL, *PACL;

typedef struct _ACE_HEADER {
    UCHAR AceType;
    UCHAR AceFlags;
    USHORT AceSize;
} ACE_HEADER, *PACE_HEADER;

typedef struct _ACCESS_ALLOWED_ACE {
    ACE_HEADER Header;
    ACCESS_MASK Mask;
    ULONG SidStart; /* the SID starts here */
} ACCESS_ALLOWED_ACE;

#define ACL_REVISION 2
#define SECURITY_DESCRIPTOR_REVISION 1

/* Absolute form (pointers), what RtlCreateSecurityDescriptor initialises. */
typedef struct _SECURITY_DESCRIPTOR {
    UCHAR Revision;
    UCHAR Sbz1;
    USHORT Control;
    PSID Owner;
    PSID Group;
    PACL Sacl;
    PACL Dacl;
} SECURITY_DESCRIPTOR;

typedef struct _SECURITY_SUBJECT_CONTEXT {
    PACCESS_TOKEN ClientToken; /* non-NULL when the thread impersonates */
    int ImpersonationLevel;
    PACCESS_TOKEN PrimaryToken;
    PVOID ProcessAuditId;
} SECURITY_SUBJECT_CONTEXT, *PSECURITY_SUBJECT_CONTEXT;

/* A macro in the WDK as well (documented: the client token if impersonating, else the primary). */
#define SeQuerySubjectContextToken(s) ((s)->ClientToken != NULL ? (s)->ClientToken : (s)->PrimaryToken)

VOID SeCaptureSubjectContext(PSECURITY_SUBJECT_CONTEXT SubjectContext);
VOID SeReleaseSubjectContext(PSECURITY_SUBJECT_CONTEXT SubjectContext);
BOOLEAN SeTokenIsAdmin(PACCESS_TOKEN Token);

BOOLEAN RtlValidSid(PSID Sid);
ULONG RtlLengthSid(PSID Sid);
NTSTATUS RtlCreateAcl(PACL Acl, ULONG AclLength, ULONG AclRevision);
NTSTATUS RtlGetAce(PACL Acl, ULONG AceIndex, PVOID *Ace);
NTSTATUS RtlAddAce(PACL Acl, ULONG AceRevision, ULONG StartingAceIndex, PVOID AceList, ULONG AceListLength);
NTSTATUS RtlAddAccessAllowedAce(PACL Acl, ULONG AceRevision, ACCESS_MASK AccessMask, PSID Sid);
NTSTATUS RtlCreateSecurityDescriptor(PSECURITY_DESCRIPTOR SecurityDescriptor, ULONG Revision);
NTSTATUS RtlSetDaclSecurityDescriptor(PSECURITY_DESCRIPTOR SecurityDescriptor, BOOLEAN DaclPresent, PACL Dacl,
                                      BOOLEAN DaclDefaulted);
NTSTATUS RtlGetDaclSecurityDescriptor(PSECURITY_DESCRIPTOR SecurityDescriptor, PBOOLEAN DaclPresent, PACL *Dacl,
                                      PBOOLEAN DaclDefaulted);
BOOLEAN RtlEqualUnicodeString(PCUNICODE_STRING String1, PCUNICODE_STRING String2, BOOLEAN CaseInSensitive);

/* ---- Processes, time, debug output -------------------------------------------------------- */

HANDLE PsGetCurrentProcessId(void);
LARGE_INTEGER KeQueryPerformanceCounter(PLARGE_INTEGER PerformanceFrequency);

#define DPFLTR_IHVDRIVER_ID 77
#define DPFLTR_ERROR_LEVEL 0
#define DPFLTR_WARNING_LEVEL 1
#define DPFLTR_TRACE_LEVEL 2
#define DPFLTR_INFO_LEVEL 3
/* No format attribute: the kernel's %wZ / %ws are not printf's. */
ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...);
