// security.cc - the security routines a minifilter calls (Rtl SID/ACL/descriptor, FltBuildDefaultSecurityDescriptor,
// Se* subject contexts and tokens, RtlEqualUnicodeString) and the harness's own access check (harness.h, "Security").
//
// Byte layouts and return codes follow the WDK reference pages (RtlCreateAcl, RtlAddAce, RtlGetAce,
// RtlAddAccessAllowedAce, RtlCreate/Set/GetDaclSecurityDescriptor, ACE_HEADER, SECURITY_DESCRIPTOR_CONTROL) and
// MS-DTYP (SID, ACL, ACE, SECURITY_DESCRIPTOR_RELATIVE). Nothing here is copied from Windows, ReactOS or Wine.
// Every structure is read through memcpy: descriptors built by a test or a driver need not be aligned.
#include <locale.h>
#include <cinttypes>
#include <cstring>
#include <cwctype>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "harness.h"
#include "status.h"

namespace {

constexpr uint8_t kSidRevision = 1;
constexpr uint8_t kSidMaxSubAuthorities = 15;
constexpr uint8_t kMinAclRevision = 2;  // ACL_REVISION
constexpr uint8_t kMaxAclRevision = 4;  // ACL_REVISION_DS
constexpr uint8_t kAccessAllowedAceType = 0;
constexpr uint8_t kAccessDeniedAceType = 1;
constexpr uint8_t kInheritOnlyAce = 0x08;
constexpr uint16_t kSeDaclPresent = 0x0004;
constexpr uint16_t kSeDaclDefaulted = 0x0008;
constexpr uint16_t kSeSelfRelative = 0x8000;

constexpr size_t kSidHeader = 8;        // Revision, SubAuthorityCount, IdentifierAuthority[6]
constexpr size_t kAclHeader = 8;        // sizeof(ACL)
constexpr size_t kAceHeader = 4;        // sizeof(ACE_HEADER)
constexpr size_t kAceSidOffset = 8;     // FIELD_OFFSET(ACCESS_ALLOWED_ACE, SidStart): header + mask
constexpr size_t kRelativeHeader = 20;  // SECURITY_DESCRIPTOR_RELATIVE: Revision, Sbz1, Control, 4 ULONG offsets

// FltBuildDefaultSecurityDescriptor's pool tag. Not a documented Windows tag: the harness's own, so a driver that
// forgets FltFreeSecurityDescriptor sees "FtDb" in the leak report. Spelled by bytes ('bDtF' as MSVC reads it).
constexpr uint32_t kDefaultSdTag = uint32_t{'F'} | uint32_t{'t'} << 8 | uint32_t{'D'} << 16 | uint32_t{'b'} << 24;

static_assert(sizeof(ACL) == kAclHeader && sizeof(ACE_HEADER) == kAceHeader, "MS-DTYP layouts");
static_assert(offsetof(ACCESS_ALLOWED_ACE, SidStart) == kAceSidOffset, "MS-DTYP layouts");

uint16_t Load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
void Store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, sizeof v); }
void Store32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, sizeof v); }

// ---- SIDs -------------------------------------------------------------------------------------------------

bool SidHeaderValid(const uint8_t* sid) {
  return sid != nullptr && sid[0] == kSidRevision && sid[1] <= kSidMaxSubAuthorities;
}
size_t SidLength(const uint8_t* sid) { return kSidHeader + 4u * sid[1]; }

// A SID that must lie within `available` bytes.
bool SidValidWithin(const uint8_t* sid, size_t available) {
  return available >= kSidHeader && SidHeaderValid(sid) && SidLength(sid) <= available;
}

// A SID with NT-style authority (the value fits in 48 bits, big-endian in IdentifierAuthority).
std::string MakeSid(uint64_t authority, std::initializer_list<uint32_t> subs) {
  std::string sid(kSidHeader + 4 * subs.size(), '\0');
  auto* p = reinterpret_cast<uint8_t*>(&sid[0]);
  p[0] = kSidRevision;
  p[1] = static_cast<uint8_t>(subs.size());
  for (int i = 0; i < 6; i++) p[2 + i] = static_cast<uint8_t>(authority >> (8 * (5 - i)));
  size_t at = kSidHeader;
  for (uint32_t s : subs) {
    Store32(p + at, s);
    at += 4;
  }
  return sid;
}

const std::string& LocalSystemSid() {
  static const std::string sid = MakeSid(5, {18});
  return sid;
}
const std::string& AdministratorsSid() {
  static const std::string sid = MakeSid(5, {32, 544});
  return sid;
}

// The SIDs a caller's token holds (harness.h, Caller).
std::vector<std::string> TokenSids(const kh::Caller& caller) {
  std::vector<std::string> sids;
  if (caller.uid >= 0 && caller.uid <= int64_t{UINT32_MAX}) sids.push_back(MakeSid(22, {1, uint32_t(caller.uid)}));
  if (caller.gid >= 0 && caller.gid <= int64_t{UINT32_MAX}) sids.push_back(MakeSid(22, {2, uint32_t(caller.gid)}));
  if (caller.system) sids.push_back(LocalSystemSid());
  // LocalSystem's token holds Administrators too, which is what SeTokenIsAdmin reports for it.
  if (caller.admin || caller.system) sids.push_back(AdministratorsSid());
  if (!caller.system) {
    sids.push_back(MakeSid(1, {0}));        // Everyone
    sids.push_back(MakeSid(5, {11}));       // Authenticated Users
    sids.push_back(MakeSid(5, {32, 545}));  // BUILTIN\Users
  }
  return sids;
}

// ---- ACLs -------------------------------------------------------------------------------------------------

// Walks an ACL header and its AceCount ACEs. On success *used is the byte count the header and ACEs take.
// Every ACE must lie inside AclSize, be at least a header long and a multiple of 4 (MS-DTYP ACE_HEADER);
// allowed and denied ACEs must hold a valid SID (ACCESS_ALLOWED_ACE). Returns STATUS_INVALID_ACL or
// STATUS_INVALID_SID.
NTSTATUS CheckAcl(const uint8_t* acl, size_t* used) {
  if (acl == nullptr) return kh::STATUS_INVALID_ACL_;
  const uint8_t revision = acl[0];
  const size_t size = Load16(acl + 2);
  const size_t count = Load16(acl + 4);
  if (revision < kMinAclRevision || revision > kMaxAclRevision || size < kAclHeader) return kh::STATUS_INVALID_ACL_;
  size_t at = kAclHeader;
  for (size_t i = 0; i < count; i++) {
    if (size - at < kAceHeader) return kh::STATUS_INVALID_ACL_;
    const uint8_t type = acl[at];
    const size_t aceSize = Load16(acl + at + 2);
    if (aceSize < kAceHeader || aceSize % 4 != 0 || aceSize > size - at) return kh::STATUS_INVALID_ACL_;
    if (type == kAccessAllowedAceType || type == kAccessDeniedAceType) {
      if (aceSize < kAceSidOffset) return kh::STATUS_INVALID_ACL_;
      if (!SidValidWithin(acl + at + kAceSidOffset, aceSize - kAceSidOffset)) return kh::STATUS_INVALID_SID_;
    }
    at += aceSize;
  }
  if (used != nullptr) *used = at;
  return STATUS_SUCCESS;
}

// Offset of ACE `index` (index <= AceCount; AceCount gives the end of the ACEs) in a checked ACL.
size_t AceOffset(const uint8_t* acl, size_t index) {
  size_t at = kAclHeader;
  for (size_t i = 0; i < index; i++) at += Load16(acl + at + 2);
  return at;
}

// ---- Security descriptors ---------------------------------------------------------------------------------

// Where a descriptor's DACL is, for both forms. Assumes Revision was checked.
struct DaclView {
  bool present = false;
  bool defaulted = false;
  const uint8_t* acl = nullptr;  // nullptr with present: a NULL DACL
};

DaclView ViewDacl(const uint8_t* descriptor) {
  DaclView view;
  const uint16_t control = Load16(descriptor + 2);
  view.present = (control & kSeDaclPresent) != 0;
  view.defaulted = (control & kSeDaclDefaulted) != 0;
  if (!view.present) return view;
  if (control & kSeSelfRelative) {
    const uint32_t offset = Load32(descriptor + 16);  // OffsetDacl
    view.acl = offset == 0 ? nullptr : descriptor + offset;
  } else {
    PACL dacl;
    std::memcpy(&dacl, descriptor + offsetof(SECURITY_DESCRIPTOR, Dacl), sizeof dacl);
    view.acl = reinterpret_cast<const uint8_t*>(dacl);
  }
  return view;
}

// The owner or group SID of either form, or nullptr. `which` is 0 for the owner, 1 for the group.
const uint8_t* DescriptorSid(const uint8_t* descriptor, int which) {
  if (Load16(descriptor + 2) & kSeSelfRelative) {
    const uint32_t offset = Load32(descriptor + 4 + 4 * which);
    return offset == 0 ? nullptr : descriptor + offset;
  }
  PSID sid;
  std::memcpy(&sid,
              descriptor + (which == 0 ? offsetof(SECURITY_DESCRIPTOR, Owner) : offsetof(SECURITY_DESCRIPTOR, Group)),
              sizeof sid);
  return static_cast<const uint8_t*>(sid);
}

// Whether a copy's bytes cover the ACL header and AclSize (checked before walking the ACEs).
bool CopyHoldsAcl(const kh::SecurityCopy& security) {
  const auto* acl = reinterpret_cast<const uint8_t*>(security.dacl.data());
  return security.dacl.size() >= kAclHeader && Load16(acl + 2) <= security.dacl.size();
}

// ---- Tokens and subject contexts ---------------------------------------------------------------------------

// What PrimaryToken points at: the caller as it was at capture time. One per captured context, freed by
// SeReleaseSubjectContext; the live set lets SeTokenIsAdmin reject pointers that are not harness tokens.
struct HarnessToken {
  kh::Caller caller;
};

std::mutex g_tokens_mutex;
std::unordered_set<const HarnessToken*> g_tokens;  // captured and not yet released

bool TokenIsLive(const HarnessToken* token) {
  std::lock_guard<std::mutex> lock(g_tokens_mutex);
  return g_tokens.count(token) != 0;
}

// ---- Case-insensitive comparison --------------------------------------------------------------------------

// RtlUpcaseUnicodeChar: one UTF-16 unit to its simple (one-unit) uppercase, over the whole BMP (Windows' upcase
// table covers Greek, Cyrillic, Latin Extended...); surrogate halves stay as they are. glibc's C.UTF-8 towupper
// is that mapping; without that locale, only ASCII and Latin-1 are mapped (a harness limit).
uint16_t Upcase(uint16_t c) {
  if (c < 0x80) return (c >= u'a' && c <= u'z') ? static_cast<uint16_t>(c - 0x20) : c;
  if (c >= 0xD800 && c <= 0xDFFF) return c;
  static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  if (utf8 != static_cast<locale_t>(nullptr)) {
    const wint_t up = towupper_l(static_cast<wint_t>(c), utf8);
    return up <= 0xFFFF ? static_cast<uint16_t>(up) : c;
  }
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return static_cast<uint16_t>(c - 0x20);
  if (c == 0xFF) return 0x178;
  return c;
}

}  // namespace

// ==== Kernel routines =========================================================================================

extern "C" {

BOOLEAN RtlValidSid(PSID Sid) { return SidHeaderValid(static_cast<const uint8_t*>(Sid)) ? TRUE : FALSE; }

// Documented for valid SIDs only; like Windows it trusts SubAuthorityCount.
ULONG RtlLengthSid(PSID Sid) { return static_cast<ULONG>(SidLength(static_cast<const uint8_t*>(Sid))); }

NTSTATUS RtlCreateAcl(PACL Acl, ULONG AclLength, ULONG AclRevision) {
  if (AclLength < kAclHeader) return STATUS_BUFFER_TOO_SMALL;
  if (AclRevision < kMinAclRevision || AclRevision > kMaxAclRevision || AclLength > 0xFFFFu) {
    return STATUS_INVALID_PARAMETER;
  }
  auto* p = reinterpret_cast<uint8_t*>(Acl);
  std::memset(p, 0, kAclHeader);
  p[0] = static_cast<uint8_t>(AclRevision);
  Store16(p + 2, static_cast<uint16_t>(AclLength));
  return STATUS_SUCCESS;
}

NTSTATUS RtlGetAce(PACL Acl, ULONG AceIndex, PVOID* Ace) {
  const auto* p = reinterpret_cast<const uint8_t*>(Acl);
  if (Ace == nullptr || !NT_SUCCESS(CheckAcl(p, nullptr)) || AceIndex >= Load16(p + 4)) {
    return STATUS_INVALID_PARAMETER;
  }
  *Ace = reinterpret_cast<uint8_t*>(Acl) + AceOffset(p, AceIndex);
  return STATUS_SUCCESS;
}

NTSTATUS RtlAddAce(PACL Acl, ULONG AceRevision, ULONG StartingAceIndex, PVOID AceList, ULONG AceListLength) {
  auto* p = reinterpret_cast<uint8_t*>(Acl);
  const auto* list = static_cast<const uint8_t*>(AceList);
  size_t used = 0;
  if (!NT_SUCCESS(CheckAcl(p, &used)) || AceRevision < kMinAclRevision || AceRevision > kMaxAclRevision ||
      (list == nullptr && AceListLength != 0)) {
    return STATUS_INVALID_PARAMETER;
  }
  // The list must be whole ACEs, each well formed (the same rules as inside an ACL).
  size_t added = 0;
  for (size_t at = 0; at < AceListLength; added++) {
    if (AceListLength - at < kAceHeader) return STATUS_INVALID_PARAMETER;
    const uint8_t type = list[at];
    const size_t aceSize = Load16(list + at + 2);
    if (aceSize < kAceHeader || aceSize % 4 != 0 || aceSize > AceListLength - at) return STATUS_INVALID_PARAMETER;
    if ((type == kAccessAllowedAceType || type == kAccessDeniedAceType) &&
        (aceSize < kAceSidOffset || !SidValidWithin(list + at + kAceSidOffset, aceSize - kAceSidOffset))) {
      return STATUS_INVALID_PARAMETER;
    }
    at += aceSize;
  }
  const size_t size = Load16(p + 2);
  const size_t count = Load16(p + 4);
  if (AceListLength > size - used) return STATUS_BUFFER_TOO_SMALL;
  if (count + added > 0xFFFFu) return STATUS_INVALID_PARAMETER;
  // An index past the last ACE appends, as MAXULONG does [unverified on Windows: the page names only MAXULONG].
  const size_t index = StartingAceIndex < count ? StartingAceIndex : count;
  const size_t insertAt = AceOffset(p, index);
  std::memmove(p + insertAt + AceListLength, p + insertAt, used - insertAt);
  if (AceListLength != 0) std::memcpy(p + insertAt, list, AceListLength);
  Store16(p + 4, static_cast<uint16_t>(count + added));
  if (AceRevision > p[0]) p[0] = static_cast<uint8_t>(AceRevision);  // the ACL takes the newer revision
  return STATUS_SUCCESS;
}

NTSTATUS RtlAddAccessAllowedAce(PACL Acl, ULONG AceRevision, ACCESS_MASK AccessMask, PSID Sid) {
  auto* p = reinterpret_cast<uint8_t*>(Acl);
  const auto* sid = static_cast<const uint8_t*>(Sid);
  size_t used = 0;
  if (!NT_SUCCESS(CheckAcl(p, &used))) return kh::STATUS_INVALID_ACL_;
  if (!SidHeaderValid(sid)) return kh::STATUS_INVALID_SID_;
  if (AceRevision < kMinAclRevision || AceRevision > kMaxAclRevision) return STATUS_REVISION_MISMATCH;
  const size_t aceSize = kAceSidOffset + SidLength(sid);
  if (aceSize > Load16(p + 2) - used) return kh::STATUS_ALLOTTED_SPACE_EXCEEDED_;
  const size_t count = Load16(p + 4);
  if (count == 0xFFFFu) return kh::STATUS_ALLOTTED_SPACE_EXCEEDED_;
  uint8_t* ace = p + used;
  ace[0] = kAccessAllowedAceType;
  ace[1] = 0;
  Store16(ace + 2, static_cast<uint16_t>(aceSize));
  Store32(ace + 4, AccessMask);
  std::memcpy(ace + kAceSidOffset, sid, SidLength(sid));
  Store16(p + 4, static_cast<uint16_t>(count + 1));
  if (AceRevision > p[0]) p[0] = static_cast<uint8_t>(AceRevision);
  return STATUS_SUCCESS;
}

NTSTATUS RtlCreateSecurityDescriptor(PSECURITY_DESCRIPTOR SecurityDescriptor, ULONG Revision) {
  if (Revision != SECURITY_DESCRIPTOR_REVISION) return kh::STATUS_UNKNOWN_REVISION_;
  SECURITY_DESCRIPTOR sd;
  std::memset(&sd, 0, sizeof sd);
  sd.Revision = SECURITY_DESCRIPTOR_REVISION;
  std::memcpy(SecurityDescriptor, &sd, sizeof sd);
  return STATUS_SUCCESS;
}

NTSTATUS RtlSetDaclSecurityDescriptor(PSECURITY_DESCRIPTOR SecurityDescriptor, BOOLEAN DaclPresent, PACL Dacl,
                                      BOOLEAN DaclDefaulted) {
  SECURITY_DESCRIPTOR sd;
  std::memcpy(&sd, SecurityDescriptor, sizeof sd);
  if (sd.Revision != SECURITY_DESCRIPTOR_REVISION) return kh::STATUS_UNKNOWN_REVISION_;
  if (sd.Control & kSeSelfRelative) return STATUS_INVALID_SECURITY_DESCR;  // only the absolute form has pointers
  sd.Control = static_cast<USHORT>(sd.Control & ~(kSeDaclPresent | kSeDaclDefaulted));
  if (DaclPresent) {
    sd.Control = static_cast<USHORT>(sd.Control | kSeDaclPresent | (DaclDefaulted ? kSeDaclDefaulted : 0));
    sd.Dacl = Dacl;  // referenced, not copied (the reference page)
  } else {
    sd.Dacl = nullptr;
  }
  std::memcpy(SecurityDescriptor, &sd, sizeof sd);
  return STATUS_SUCCESS;
}

NTSTATUS RtlGetDaclSecurityDescriptor(PSECURITY_DESCRIPTOR SecurityDescriptor, PBOOLEAN DaclPresent, PACL* Dacl,
                                      PBOOLEAN DaclDefaulted) {
  const auto* p = static_cast<const uint8_t*>(SecurityDescriptor);
  if (p[0] != SECURITY_DESCRIPTOR_REVISION) return kh::STATUS_UNKNOWN_REVISION_;
  const DaclView view = ViewDacl(p);
  *DaclPresent = view.present ? TRUE : FALSE;
  if (view.present) {  // otherwise the other outputs "do not receive valid values": left as they are
    *Dacl = reinterpret_cast<PACL>(const_cast<uint8_t*>(view.acl));
    *DaclDefaulted = view.defaulted ? TRUE : FALSE;
  }
  return STATUS_SUCCESS;
}

BOOLEAN RtlEqualUnicodeString(PCUNICODE_STRING String1, PCUNICODE_STRING String2, BOOLEAN CaseInSensitive) {
  const size_t n = String1->Length / sizeof(WCHAR);
  if (n != String2->Length / sizeof(WCHAR)) return FALSE;
  for (size_t i = 0; i < n; i++) {
    uint16_t a = static_cast<uint16_t>(String1->Buffer[i]);
    uint16_t b = static_cast<uint16_t>(String2->Buffer[i]);
    if (CaseInSensitive) {
      a = Upcase(a);
      b = Upcase(b);
    }
    if (a != b) return FALSE;
  }
  return TRUE;
}

// One pool block: the absolute descriptor, then its DACL (SYSTEM, then Administrators, each granted
// DesiredAccess), so FltFreeSecurityDescriptor frees it all at once.
NTSTATUS FLTAPI FltBuildDefaultSecurityDescriptor(PSECURITY_DESCRIPTOR* SecurityDescriptor, ACCESS_MASK DesiredAccess) {
  const std::string& system = LocalSystemSid();
  const std::string& admins = AdministratorsSid();
  const size_t aclSize = kAclHeader + 2 * kAceSidOffset + system.size() + admins.size();
  const size_t sdSize = (sizeof(SECURITY_DESCRIPTOR) + 7) & ~size_t{7};
  auto* block = static_cast<uint8_t*>(
      kh::PoolAllocate(sdSize + aclSize, kDefaultSdTag, 16, true, "FltBuildDefaultSecurityDescriptor"));
  if (block == nullptr) return STATUS_INSUFFICIENT_RESOURCES;
  auto* acl = reinterpret_cast<PACL>(block + sdSize);
  NTSTATUS status = RtlCreateAcl(acl, static_cast<ULONG>(aclSize), ACL_REVISION);
  if (NT_SUCCESS(status)) status = RtlAddAccessAllowedAce(acl, ACL_REVISION, DesiredAccess, (PSID)system.data());
  if (NT_SUCCESS(status)) status = RtlAddAccessAllowedAce(acl, ACL_REVISION, DesiredAccess, (PSID)admins.data());
  if (NT_SUCCESS(status)) status = RtlCreateSecurityDescriptor(block, SECURITY_DESCRIPTOR_REVISION);
  if (NT_SUCCESS(status)) status = RtlSetDaclSecurityDescriptor(block, TRUE, acl, FALSE);
  if (!NT_SUCCESS(status)) {  // a harness bug: the sizes above are exact
    kh::PoolFree(block, kDefaultSdTag, "FltBuildDefaultSecurityDescriptor");
    return status;
  }
  *SecurityDescriptor = block;
  return STATUS_SUCCESS;
}

// Unknown pointers and double frees are the pool's violations (kh::PoolFree).
VOID FLTAPI FltFreeSecurityDescriptor(PSECURITY_DESCRIPTOR SecurityDescriptor) {
  kh::PoolFree(SecurityDescriptor, kDefaultSdTag, "FltFreeSecurityDescriptor");
}

VOID SeCaptureSubjectContext(PSECURITY_SUBJECT_CONTEXT SubjectContext) {
  auto* token = new HarnessToken{kh::CurrentCaller()};
  {
    std::lock_guard<std::mutex> lock(g_tokens_mutex);
    g_tokens.insert(token);
  }
  SubjectContext->ClientToken = nullptr;  // harness threads never impersonate
  SubjectContext->ImpersonationLevel = 0;
  SubjectContext->PrimaryToken = token;
  SubjectContext->ProcessAuditId = reinterpret_cast<PVOID>(static_cast<uintptr_t>(token->caller.processId));
}

VOID SeReleaseSubjectContext(PSECURITY_SUBJECT_CONTEXT SubjectContext) {
  const auto* token = static_cast<const HarnessToken*>(SubjectContext->PrimaryToken);
  {
    std::lock_guard<std::mutex> lock(g_tokens_mutex);
    if (token == nullptr || g_tokens.erase(token) == 0) {
      kh::Violation("SeReleaseSubjectContext",
                    "the context was not captured by SeCaptureSubjectContext, or was "
                    "already released");
      return;
    }
  }
  delete token;
  SubjectContext->PrimaryToken = nullptr;  // a second release is then reported, not a double delete
  SubjectContext->ClientToken = nullptr;
}

BOOLEAN SeTokenIsAdmin(PACCESS_TOKEN Token) {
  const auto* token = static_cast<const HarnessToken*>(Token);
  if (token == nullptr || !TokenIsLive(token)) {
    kh::Violation("SeTokenIsAdmin", "%p is not a token of a captured, unreleased subject context", Token);
    return FALSE;
  }
  return (token->caller.admin || token->caller.system) ? TRUE : FALSE;
}

}  // extern "C"

// ==== Harness helpers (harness.h) =============================================================================

namespace kh {

size_t SubjectContextsReport(const char* routine) {
  std::vector<const HarnessToken*> leaked;
  {
    std::lock_guard<std::mutex> lock(g_tokens_mutex);
    leaked.assign(g_tokens.begin(), g_tokens.end());
    g_tokens.clear();
  }
  if (!leaked.empty()) {
    Violation(routine,
              "%zu subject context(s) captured by SeCaptureSubjectContext and never released "
              "(SeReleaseSubjectContext)",
              leaked.size());
  }
  for (const HarnessToken* token : leaked) delete token;  // no driver code runs after unload
  return leaked.size();
}

NTSTATUS CaptureSecurity(PSECURITY_DESCRIPTOR descriptor, SecurityCopy* out) {
  const auto* p = static_cast<const uint8_t*>(descriptor);
  if (p == nullptr || p[0] != SECURITY_DESCRIPTOR_REVISION) return STATUS_INVALID_SECURITY_DESCR;
  const bool selfRelative = (Load16(p + 2) & kSeSelfRelative) != 0;
  if (selfRelative) {
    // The relative form has no length: offsets are trusted, but must point past the header.
    for (int i = 0; i < 4; i++) {
      const uint32_t offset = Load32(p + 4 + 4 * i);
      if (offset != 0 && offset < kRelativeHeader) return STATUS_INVALID_SECURITY_DESCR;
    }
  }
  for (int which = 0; which < 2; which++) {
    const uint8_t* sid = DescriptorSid(p, which);
    if (sid != nullptr && !SidHeaderValid(sid)) return kh::STATUS_INVALID_SID_;
  }
  const DaclView view = ViewDacl(p);
  SecurityCopy copy;
  copy.daclPresent = view.present;
  if (view.present && view.acl != nullptr) {
    const NTSTATUS status = CheckAcl(view.acl, nullptr);
    if (!NT_SUCCESS(status)) return status;
    copy.dacl.assign(reinterpret_cast<const char*>(view.acl), Load16(view.acl + 2));
  }
  *out = std::move(copy);
  return STATUS_SUCCESS;
}

bool AccessCheck(const SecurityCopy& security, const Caller& caller, ACCESS_MASK desired) {
  if (!security.daclPresent || security.dacl.empty()) return true;  // no DACL, or a NULL DACL: all access
  const auto* acl = reinterpret_cast<const uint8_t*>(security.dacl.data());
  if (!CopyHoldsAcl(security) || !NT_SUCCESS(CheckAcl(acl, nullptr))) {
    return false;  // CaptureSecurity never makes one; refuse rather than guess
  }
  const std::vector<std::string> sids = TokenSids(caller);
  ACCESS_MASK granted = 0;
  ACCESS_MASK denied = 0;
  const size_t count = Load16(acl + 4);
  size_t at = kAclHeader;
  for (size_t i = 0; i < count && (granted & desired) != desired; i++) {
    const uint8_t* ace = acl + at;
    at += Load16(ace + 2);
    const uint8_t type = ace[0];
    if ((ace[1] & kInheritOnlyAce) || (type != kAccessAllowedAceType && type != kAccessDeniedAceType)) continue;
    const uint8_t* sid = ace + kAceSidOffset;
    bool match = false;
    for (const std::string& own : sids) {
      if (own.size() == SidLength(sid) && std::memcmp(own.data(), sid, own.size()) == 0) match = true;
    }
    if (!match) continue;
    const ACCESS_MASK mask = Load32(ace + 4);
    // A bit is decided by the first ACE that names it: later ACEs cannot undo it.
    if (type == kAccessAllowedAceType) {
      granted |= mask & ~denied;
    } else {
      denied |= mask & ~granted;
      if (denied & desired) return false;
    }
  }
  return (granted & desired) == desired;
}

std::string SidToString(const void* sid) {
  const auto* p = static_cast<const uint8_t*>(sid);
  if (!SidHeaderValid(p)) return "<invalid SID>";
  uint64_t authority = 0;
  for (int i = 0; i < 6; i++) authority = authority << 8 | p[2 + i];
  // SDDL prints authorities of 2^32 and more in hex.
  std::string out = authority >> 32 ? Format("S-1-0x%012" PRIX64, authority) : Format("S-1-%" PRIu64, authority);
  for (size_t i = 0; i < p[1]; i++) out += Format("-%" PRIu32, Load32(p + kSidHeader + 4 * i));
  return out;
}

std::string DescribeDacl(const SecurityCopy& security) {
  if (!security.daclPresent) return "<no DACL: all access>";
  if (security.dacl.empty()) return "<NULL DACL: all access>";
  const auto* acl = reinterpret_cast<const uint8_t*>(security.dacl.data());
  if (!CopyHoldsAcl(security) || !NT_SUCCESS(CheckAcl(acl, nullptr))) return "<invalid DACL>";
  const size_t count = Load16(acl + 4);
  if (count == 0) return "<empty DACL: no access>";
  std::string out;
  size_t at = kAclHeader;
  for (size_t i = 0; i < count; i++) {
    const uint8_t* ace = acl + at;
    at += Load16(ace + 2);
    const uint8_t type = ace[0];
    const std::string flags = (ace[1] & kInheritOnlyAce) ? "IO" : "";
    if (type == kAccessAllowedAceType || type == kAccessDeniedAceType) {
      out += Format("(%s;%s;0x%" PRIx32 ";;;%s)", type == kAccessAllowedAceType ? "A" : "D", flags.c_str(),
                    Load32(ace + 4), SidToString(ace + kAceSidOffset).c_str());
    } else {
      out += Format("(type 0x%02x;%s)", type, flags.c_str());
    }
  }
  return out;
}

}  // namespace kh
