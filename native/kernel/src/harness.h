// harness.h - what the kernel harness's parts share (internal; never seen by a driver).
//
// The harness is linked into every driver image (native/kernel/README.md, "Images"): each load of a driver
// is a fresh copy of its image, so the state below is per image, like a kernel image's globals. It is C++17
// over the driver-facing C declarations (nt.h). Every exported kernel routine is `extern "C"` and defined in
// exactly one file, by group: pool.cc, sync.cc, security.cc, debug.cc, crt.c, filter.cc, ports.cc, wdf.cc.
#pragma once

#include <cstdarg>
#include <cstdint>
#include <string>

#include "nt.h"

namespace kh {

// ---- Who runs the current thread ------------------------------------------------------------------------
// What PsGetCurrentProcessId and SeCaptureSubjectContext report on this thread. A thread the harness starts
// for DriverEntry, unload and port closes runs as the System process; a connect or FilterSendMessage runs as
// the client; a simulated open runs as the opener.

// POSIX identities are mapped onto SIDs (security.cc): uid N <-> S-1-22-1-N, gid N <-> S-1-22-2-N (the
// "Unix User" / "Unix Group" authority Samba and NFS use), administrators <-> S-1-5-32-544, System <->
// S-1-5-18; every non-System caller also has Everyone (S-1-1-0), Authenticated Users (S-1-5-11) and Users
// (S-1-5-32-545), as an interactive Windows user does.
struct Caller {
  uint32_t processId = 4;  // the System process
  int64_t uid = -1;        // -1: unknown
  int64_t gid = -1;        // primary group, -1: unknown
  bool admin = true;       // the token holds BUILTIN\Administrators (enabled)
  bool system = true;      // the token is LocalSystem's
};

// The calling thread's caller (default: System).
const Caller& CurrentCaller();

// Sets the calling thread's caller for a scope.
class ScopedCaller {
 public:
  explicit ScopedCaller(const Caller& caller);
  ~ScopedCaller();
  ScopedCaller(const ScopedCaller&) = delete;
  ScopedCaller& operator=(const ScopedCaller&) = delete;

 private:
  const Caller* previous_;
  Caller caller_;
};

// ---- Output to the host ---------------------------------------------------------------------------------

// A line of the driver's debug output (DbgPrintEx) or of the harness's own, to the host's log.
void Log(uint32_t level, const std::string& line);

// The verifier: a rule a driver broke (what Driver Verifier's Filter Manager checks would catch). Recorded
// in the image's violation list (the host fails the test with it) and logged as
// "VERIFIER: <routine>: <reason>". Never aborts: the driver goes on, as with a non-fatal verifier report,
// so that one test can show several violations.
void Violation(const char* routine, const char* format, ...) __attribute__((format(printf, 2, 3)));

// printf into a std::string.
std::string Format(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string FormatV(const char* format, va_list args);

// ---- Lifecycle ------------------------------------------------------------------------------------------
// Where the image is in its life; routines that are only valid in some phases check it (e.g.
// FltSendMessage after FltUnregisterFilter returned is a violation).
enum class Phase {
  kLoaded,       // mapped, DriverEntry not called yet
  kDriverEntry,  // DriverEntry runs
  kRunning,      // DriverEntry returned success
  kUnloading,    // the unload routine(s) run
  kUnloaded,     // unload returned, or DriverEntry failed: no driver code may run
};
Phase CurrentPhase();
void SetPhase(Phase phase);

// ---- Pool (pool.cc) ------------------------------------------------------------------------------------
// The ledger behind ExAllocatePool2 / FltAllocatePoolAlignedWithTag and every allocation the harness makes
// on a driver's behalf that the driver must give back (so leaks are reported by tag at unload).

// Which free routine a block belongs to: freeing it with another family's routine is a violation.
enum class PoolFamily {
  kPool,     // ExAllocatePool2 -> ExFreePoolWithTag
  kAligned,  // FltAllocatePoolAlignedWithTag -> FltFreePoolAlignedWithTag
  kObject,   // a harness object the driver gives back through its own routine (e.g. a context)
};

// Allocates `size` bytes tagged `tag`, aligned to `alignment` (a power of two, at least 16), zeroed unless
// `zero` is false (then filled with a pattern, as POOL_FLAG_UNINITIALIZED may leave garbage). `routine`
// names the allocating routine in reports. Returns nullptr when size is 0 or too big.
void* PoolAllocate(size_t size, uint32_t tag, size_t alignment, bool zero, const char* routine,
                   PoolFamily family = PoolFamily::kPool);
// Frees a block from PoolAllocate. Violations: unknown pointer (never allocated / double free), a tag that
// differs from the allocation's (when `tag` is not 0), freed by the other family (ExFreePoolWithTag on an
// aligned block or the reverse). Returns false (and does not free) on a violation.
bool PoolFree(void* block, uint32_t tag, const char* routine, PoolFamily family = PoolFamily::kPool);
// Outstanding allocations, for the unload check: reports each leaked tag ("3 allocations, 144 bytes")
// as a violation of `routine` and returns how many blocks leaked.
size_t PoolReportLeaks(const char* routine);
// Outstanding allocations and bytes now (tests, stats).
void PoolOutstanding(size_t* blocks, size_t* bytes);
// The tag as the pool tools print it ('cSlF' -> "FlSc").
std::string TagName(uint32_t tag);

// ---- Synchronisation (sync.cc) ------------------------------------------------------------------------
// Push locks still held or never deleted, and rundown references (EX_RUNDOWN_REF) still acquired, at unload
// are violations of `routine`; returns how many such locks and references it reported.
size_t PushLocksReport(const char* routine);

// ---- Debug output (debug.cc) ----------------------------------------------------------------------------
// UTF-16 (`units` 16-bit WCHARs, no NUL needed) to UTF-8; an unpaired surrogate becomes U+FFFD.
std::string Utf16ToUtf8(const WCHAR* text, size_t units);

// ---- Filter Manager (filter.cc) -------------------------------------------------------------------------
// The alignment FltAllocatePoolAlignedWithTag gives for `instance`: its volume's sector size (a power of
// two), or 0 when `instance` is not a live instance of this image (the caller reports that).
size_t InstanceAlignment(PFLT_INSTANCE instance);

}  // namespace kh

// ---- Security (security.cc) ---------------------------------------------------------------------------
namespace kh {

// A security descriptor captured by the harness (FltCreateCommunicationPort copies the caller's, which the
// caller frees right after): whether a DACL is present and the DACL's bytes (an ACL header and its ACEs).
struct SecurityCopy {
  bool daclPresent = false;
  std::string dacl;  // raw ACL bytes; empty when absent or NULL (a NULL DACL grants everything)
};

// Validates and copies an absolute or self-relative descriptor. STATUS_INVALID_SECURITY_DESCR (or
// STATUS_INVALID_ACL / STATUS_INVALID_SID) on a malformed one; nullptr is STATUS_INVALID_SECURITY_DESCR too
// (what an object created without a descriptor gets is the caller's decision, not this copy's).
NTSTATUS CaptureSecurity(PSECURITY_DESCRIPTOR descriptor, SecurityCopy* out);

// Whether the DACL grants `caller` every bit of `desired` (AccessCheck's rules: no or NULL DACL grants
// all, an empty DACL none; ACEs in order, each bit decided by the first allow or deny ACE that names one of
// the caller's SIDs; inherit-only ACEs skipped; unknown ACE types skipped).
bool AccessCheck(const SecurityCopy& security, const Caller& caller, ACCESS_MASK desired);

// "S-1-5-32-544"; "<invalid SID>" when it is not one.
std::string SidToString(const void* sid);

// The DACL in SDDL-like form for logs: "(A;;0x1f0001;;;S-1-5-18)(A;;0x1f0001;;;S-1-5-32-544)".
std::string DescribeDacl(const SecurityCopy& security);

// The unload check for SeCaptureSubjectContext: contexts captured and never given to SeReleaseSubjectContext
// are reported as one violation of `routine` ("2 subject context(s) ... never released") and freed. Returns
// how many there were.
size_t SubjectContextsReport(const char* routine);

}  // namespace kh
