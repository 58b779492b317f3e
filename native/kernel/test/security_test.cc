// kh-test-sources: core.cc security.cc pool.cc
// The security routines: Rtl SID/ACL/descriptor layouts and their error paths, FltBuildDefaultSecurityDescriptor,
// subject contexts and tokens, RtlEqualUnicodeString, and the harness's access check on the sample's own
// sequence (driver-sample/driver/port.c, FsBuildGroupDacl + FsPortCreate).
// The checks call the routines inside assert(): keep them whatever the build defines.
#undef NDEBUG
#include <cassert>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core.h"
#include "harness.h"

// pool.cc asks filter.cc for an instance's alignment; no instance exists in this test.
namespace kh {
size_t InstanceAlignment(PFLT_INSTANCE) { return 0; }
}  // namespace kh

namespace {

constexpr NTSTATUS kUnknownRevision = static_cast<NTSTATUS>(0xC0000058u);
constexpr NTSTATUS kInvalidAcl = static_cast<NTSTATUS>(0xC0000077u);
constexpr NTSTATUS kInvalidSid = static_cast<NTSTATUS>(0xC0000078u);
constexpr NTSTATUS kAllottedSpaceExceeded = static_cast<NTSTATUS>(0xC0000099u);

// A SID's bytes: authority (48-bit, big-endian) and sub-authorities.
std::vector<uint8_t> Sid(uint64_t authority, std::vector<uint32_t> subs) {
  std::vector<uint8_t> sid(8 + 4 * subs.size());
  sid[0] = 1;
  sid[1] = static_cast<uint8_t>(subs.size());
  for (int i = 0; i < 6; i++) sid[2 + i] = static_cast<uint8_t>(authority >> (8 * (5 - i)));
  for (size_t i = 0; i < subs.size(); i++) std::memcpy(&sid[8 + 4 * i], &subs[i], 4);
  return sid;
}

// An ACE's bytes (ACCESS_ALLOWED_ACE / ACCESS_DENIED_ACE layout).
std::vector<uint8_t> Ace(uint8_t type, uint8_t flags, ACCESS_MASK mask, const std::vector<uint8_t>& sid) {
  std::vector<uint8_t> ace(8 + sid.size());
  ace[0] = type;
  ace[1] = flags;
  const uint16_t size = static_cast<uint16_t>(ace.size());
  std::memcpy(&ace[2], &size, 2);
  std::memcpy(&ace[4], &mask, 4);
  std::memcpy(&ace[8], sid.data(), sid.size());
  return ace;
}

// An ACL buffer, 8-byte aligned, with room for `size` bytes.
struct AclBuffer {
  alignas(8) uint8_t bytes[512];
  PACL acl() { return reinterpret_cast<PACL>(bytes); }
};

kh::Caller Make(int64_t uid, int64_t gid, bool admin, bool system) {
  kh::Caller c;
  c.processId = 1000 + static_cast<uint32_t>(uid < 0 ? 0 : uid);
  c.uid = uid;
  c.gid = gid;
  c.admin = admin;
  c.system = system;
  return c;
}

// A descriptor with a DACL made of `aces`, captured.
kh::SecurityCopy Capture(const std::vector<std::vector<uint8_t>>& aces) {
  AclBuffer buffer;
  assert(RtlCreateAcl(buffer.acl(), sizeof buffer.bytes, ACL_REVISION) == STATUS_SUCCESS);
  for (const auto& ace : aces) {
    assert(RtlAddAce(buffer.acl(), ACL_REVISION, MAXULONG, const_cast<uint8_t*>(ace.data()),
                     static_cast<ULONG>(ace.size())) == STATUS_SUCCESS);
  }
  SECURITY_DESCRIPTOR sd;
  assert(RtlCreateSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION) == STATUS_SUCCESS);
  assert(RtlSetDaclSecurityDescriptor(&sd, TRUE, buffer.acl(), FALSE) == STATUS_SUCCESS);
  kh::SecurityCopy copy;
  assert(kh::CaptureSecurity(&sd, &copy) == STATUS_SUCCESS);
  return copy;
}

const std::vector<uint8_t> kSystem = Sid(5, {18});
const std::vector<uint8_t> kAdmins = Sid(5, {32, 544});
const std::vector<uint8_t> kEveryone = Sid(1, {0});
const std::vector<uint8_t> kGroup1000 = Sid(22, {2, 1000});
const std::vector<uint8_t> kUser1000 = Sid(22, {1, 1000});

void Sids() {
  auto admins = kAdmins;
  assert(RtlValidSid(admins.data()) == TRUE);
  assert(RtlLengthSid(admins.data()) == 16);
  assert(kh::SidToString(admins.data()) == "S-1-5-32-544");
  assert(kh::SidToString(kUser1000.data()) == "S-1-22-1-1000");
  auto big = Sid(0x123456789ABCull, {7});
  assert(kh::SidToString(big.data()) == "S-1-0x123456789ABC-7");
  auto bad = admins;
  bad[0] = 2;  // revision
  assert(RtlValidSid(bad.data()) == FALSE && kh::SidToString(bad.data()) == "<invalid SID>");
  bad = admins;
  bad[1] = 16;  // more than 15 sub-authorities
  assert(RtlValidSid(bad.data()) == FALSE);
  assert(RtlValidSid(nullptr) == FALSE);
}

void Acls() {
  AclBuffer b;
  assert(RtlCreateAcl(b.acl(), 4, ACL_REVISION) == STATUS_BUFFER_TOO_SMALL);
  assert(RtlCreateAcl(b.acl(), 64, 1) == STATUS_INVALID_PARAMETER);
  assert(RtlCreateAcl(b.acl(), 64, 5) == STATUS_INVALID_PARAMETER);
  assert(RtlCreateAcl(b.acl(), 0x10000, ACL_REVISION) == STATUS_INVALID_PARAMETER);
  assert(RtlCreateAcl(b.acl(), 8 + 8 + 12, ACL_REVISION) == STATUS_SUCCESS);  // room for one SYSTEM ACE
  assert(b.acl()->AclRevision == ACL_REVISION && b.acl()->AclSize == 28 && b.acl()->AceCount == 0);

  auto system = kSystem;
  auto admins = kAdmins;
  assert(RtlAddAccessAllowedAce(b.acl(), ACL_REVISION, 0x1F0001, system.data()) == STATUS_SUCCESS);
  assert(b.acl()->AceCount == 1);
  assert(RtlAddAccessAllowedAce(b.acl(), ACL_REVISION, 1, admins.data()) == kAllottedSpaceExceeded);
  auto badSid = admins;
  badSid[0] = 9;
  assert(RtlAddAccessAllowedAce(b.acl(), ACL_REVISION, 1, badSid.data()) == kInvalidSid);
  assert(RtlAddAccessAllowedAce(b.acl(), 9, 1, system.data()) == STATUS_REVISION_MISMATCH);

  PVOID ace = nullptr;
  assert(RtlGetAce(b.acl(), 0, &ace) == STATUS_SUCCESS && ace == b.bytes + 8);
  assert(static_cast<PACE_HEADER>(ace)->AceSize == 20 && static_cast<PACE_HEADER>(ace)->AceType == 0);
  assert(RtlGetAce(b.acl(), 1, &ace) == STATUS_INVALID_PARAMETER);  // index out of range

  // RtlAddAce: a list of two ACEs at the front, one appended, one at an index past the end (appends).
  AclBuffer c;
  assert(RtlCreateAcl(c.acl(), 200, ACL_REVISION) == STATUS_SUCCESS);
  auto allowAdmins = Ace(0, 0, 2, kAdmins);
  assert(RtlAddAce(c.acl(), ACL_REVISION, MAXULONG, allowAdmins.data(), (ULONG)allowAdmins.size()) == 0);
  std::vector<uint8_t> list = Ace(1, 0, 4, kEveryone);
  auto allowSystem = Ace(0, 0, 8, kSystem);
  list.insert(list.end(), allowSystem.begin(), allowSystem.end());
  assert(RtlAddAce(c.acl(), ACL_REVISION, 0, list.data(), (ULONG)list.size()) == STATUS_SUCCESS);
  auto allowUser = Ace(0, 0, 16, kUser1000);
  assert(RtlAddAce(c.acl(), ACL_REVISION, 99, allowUser.data(), (ULONG)allowUser.size()) == STATUS_SUCCESS);
  assert(c.acl()->AceCount == 4);
  ACCESS_MASK masks[4];
  for (ULONG i = 0; i < 4; i++) {
    assert(RtlGetAce(c.acl(), i, &ace) == STATUS_SUCCESS);
    std::memcpy(&masks[i], static_cast<uint8_t*>(ace) + 4, 4);
  }
  assert(masks[0] == 4 && masks[1] == 8 && masks[2] == 2 && masks[3] == 16);
  kh::SecurityCopy copy;
  copy.daclPresent = true;
  copy.dacl.assign(reinterpret_cast<char*>(c.bytes), c.acl()->AclSize);
  assert(kh::DescribeDacl(copy) ==
         "(D;;0x4;;;S-1-1-0)(A;;0x8;;;S-1-5-18)(A;;0x2;;;S-1-5-32-544)(A;;0x10;;;S-1-22-1-1000)");

  // Errors: no room, a torn list, an unknown revision, a corrupt ACL.
  AclBuffer d;
  assert(RtlCreateAcl(d.acl(), 8 + 16, ACL_REVISION) == STATUS_SUCCESS);
  assert(RtlAddAce(d.acl(), ACL_REVISION, MAXULONG, allowAdmins.data(), (ULONG)allowAdmins.size()) ==
         STATUS_BUFFER_TOO_SMALL);
  assert(RtlAddAce(c.acl(), ACL_REVISION, MAXULONG, allowAdmins.data(), (ULONG)allowAdmins.size() - 2) ==
         STATUS_INVALID_PARAMETER);
  assert(RtlAddAce(c.acl(), 7, MAXULONG, allowAdmins.data(), (ULONG)allowAdmins.size()) == STATUS_INVALID_PARAMETER);
  d.bytes[0] = 0;  // AclRevision
  assert(RtlAddAce(d.acl(), ACL_REVISION, MAXULONG, allowAdmins.data(), 4) == STATUS_INVALID_PARAMETER);
  assert(RtlAddAccessAllowedAce(d.acl(), ACL_REVISION, 1, system.data()) == kInvalidAcl);
  assert(RtlGetAce(d.acl(), 0, &ace) == STATUS_INVALID_PARAMETER);
}

void Descriptors() {
  SECURITY_DESCRIPTOR sd;
  std::memset(&sd, 0xCC, sizeof sd);
  assert(RtlCreateSecurityDescriptor(&sd, 2) == kUnknownRevision);
  assert(RtlCreateSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION) == STATUS_SUCCESS);
  assert(sd.Revision == 1 && sd.Control == 0 && sd.Dacl == nullptr && sd.Owner == nullptr);

  BOOLEAN present = 7, defaulted = 7;
  PACL dacl = reinterpret_cast<PACL>(&sd);  // a sentinel: "not set" must leave it
  assert(RtlGetDaclSecurityDescriptor(&sd, &present, &dacl, &defaulted) == STATUS_SUCCESS);
  assert(present == FALSE && dacl == reinterpret_cast<PACL>(&sd) && defaulted == 7);

  AclBuffer b;
  assert(RtlCreateAcl(b.acl(), 64, ACL_REVISION) == STATUS_SUCCESS);
  assert(RtlSetDaclSecurityDescriptor(&sd, TRUE, b.acl(), TRUE) == STATUS_SUCCESS);
  assert(sd.Control == 0x000C && sd.Dacl == b.acl());
  assert(RtlGetDaclSecurityDescriptor(&sd, &present, &dacl, &defaulted) == STATUS_SUCCESS);
  assert(present == TRUE && dacl == b.acl() && defaulted == TRUE);
  assert(RtlSetDaclSecurityDescriptor(&sd, TRUE, nullptr, FALSE) == STATUS_SUCCESS);  // a NULL DACL
  assert(RtlGetDaclSecurityDescriptor(&sd, &present, &dacl, &defaulted) == STATUS_SUCCESS);
  assert(present == TRUE && dacl == nullptr && defaulted == FALSE);
  assert(RtlSetDaclSecurityDescriptor(&sd, FALSE, b.acl(), TRUE) == STATUS_SUCCESS);
  assert(sd.Control == 0);

  SECURITY_DESCRIPTOR bad = sd;
  bad.Revision = 3;
  assert(RtlSetDaclSecurityDescriptor(&bad, TRUE, nullptr, FALSE) == kUnknownRevision);
  assert(RtlGetDaclSecurityDescriptor(&bad, &present, &dacl, &defaulted) == kUnknownRevision);

  // Self-relative: header (20 bytes), owner SID at 20, DACL at 36 (deny Everyone 1, allow Users-group 3).
  alignas(4) uint8_t rel[128] = {};
  rel[0] = 1;
  const uint16_t control = 0x8000 | 0x0004;
  std::memcpy(rel + 2, &control, 2);
  const uint32_t ownerOffset = 20, daclOffset = 36;
  std::memcpy(rel + 4, &ownerOffset, 4);
  std::memcpy(rel + 16, &daclOffset, 4);
  std::memcpy(rel + 20, kAdmins.data(), kAdmins.size());
  assert(RtlCreateAcl(reinterpret_cast<PACL>(rel + 36), 8 + 20 + 24, ACL_REVISION) == STATUS_SUCCESS);
  auto denyEveryone = Ace(1, 0, 1, kEveryone);
  auto allowUsers = Ace(0, 0, 3, Sid(5, {32, 545}));
  assert(RtlAddAce(reinterpret_cast<PACL>(rel + 36), ACL_REVISION, MAXULONG, denyEveryone.data(),
                   (ULONG)denyEveryone.size()) == 0);
  assert(RtlAddAce(reinterpret_cast<PACL>(rel + 36), ACL_REVISION, MAXULONG, allowUsers.data(),
                   (ULONG)allowUsers.size()) == 0);
  assert(RtlGetDaclSecurityDescriptor(rel, &present, &dacl, &defaulted) == STATUS_SUCCESS);
  assert(present == TRUE && dacl == reinterpret_cast<PACL>(rel + 36) && defaulted == FALSE);
  assert(RtlSetDaclSecurityDescriptor(rel, TRUE, nullptr, FALSE) == STATUS_INVALID_SECURITY_DESCR);
  kh::SecurityCopy copy;
  assert(kh::CaptureSecurity(rel, &copy) == STATUS_SUCCESS && copy.daclPresent && copy.dacl.size() == 52);
  const kh::Caller user = Make(1000, 1000, false, false);
  assert(!kh::AccessCheck(copy, user, 1));  // the deny on Everyone comes first
  assert(kh::AccessCheck(copy, user, 2));   // bit 2 is decided by the allow
  assert(!kh::AccessCheck(copy, user, 3));
  assert(!kh::AccessCheck(copy, Make(-1, -1, true, true), 2));  // SYSTEM is not in Users here

  // Capture errors: an offset into the header, a bad owner SID, a torn ACL, a bad SID in an ACE, nullptr.
  uint8_t broken[128];
  std::memcpy(broken, rel, sizeof rel);
  const uint32_t intoHeader = 8;
  std::memcpy(broken + 16, &intoHeader, 4);
  assert(kh::CaptureSecurity(broken, &copy) == STATUS_INVALID_SECURITY_DESCR);
  std::memcpy(broken, rel, sizeof rel);
  broken[20] = 3;  // owner SID revision
  assert(kh::CaptureSecurity(broken, &copy) == kInvalidSid);
  std::memcpy(broken, rel, sizeof rel);
  broken[36 + 8 + 2] = 13;  // first ACE's size: not a multiple of 4
  assert(kh::CaptureSecurity(broken, &copy) == kInvalidAcl);
  std::memcpy(broken, rel, sizeof rel);
  broken[36 + 8 + 8 + 1] = 20;  // first ACE's SID: 20 sub-authorities
  assert(kh::CaptureSecurity(broken, &copy) == kInvalidSid);
  std::memcpy(broken, rel, sizeof rel);
  broken[0] = 2;
  assert(kh::CaptureSecurity(broken, &copy) == STATUS_INVALID_SECURITY_DESCR);
  assert(kh::CaptureSecurity(nullptr, &copy) == STATUS_INVALID_SECURITY_DESCR);
}

void AccessRules() {
  const kh::Caller user = Make(1000, 1000, false, false);
  const kh::Caller admin = Make(1000, 1000, true, false);
  SECURITY_DESCRIPTOR sd;
  kh::SecurityCopy copy;
  // No DACL and a NULL DACL grant everything; an empty DACL nothing.
  assert(RtlCreateSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION) == STATUS_SUCCESS);
  assert(kh::CaptureSecurity(&sd, &copy) == STATUS_SUCCESS && !copy.daclPresent);
  assert(kh::AccessCheck(copy, user, 0x1F0001) && kh::DescribeDacl(copy) == "<no DACL: all access>");
  assert(RtlSetDaclSecurityDescriptor(&sd, TRUE, nullptr, FALSE) == STATUS_SUCCESS);
  assert(kh::CaptureSecurity(&sd, &copy) == STATUS_SUCCESS && copy.daclPresent && copy.dacl.empty());
  assert(kh::AccessCheck(copy, user, 0x1F0001) && kh::DescribeDacl(copy) == "<NULL DACL: all access>");
  copy = Capture({});
  assert(!kh::AccessCheck(copy, admin, 1) && kh::DescribeDacl(copy) == "<empty DACL: no access>");

  // A deny before an allow refuses; an allow before a deny grants (the first ACE deciding a bit wins).
  copy = Capture({Ace(1, 0, 1, kUser1000), Ace(0, 0, 1, kEveryone)});
  assert(!kh::AccessCheck(copy, user, 1));
  assert(kh::AccessCheck(copy, Make(1001, 1000, false, false), 1));
  copy = Capture({Ace(0, 0, 1, kEveryone), Ace(1, 0, 1, kUser1000)});
  assert(kh::AccessCheck(copy, user, 1));
  // Bits add up across ACEs; inherit-only and unknown ACE types are skipped.
  copy = Capture({Ace(0, 0, 1, kEveryone), Ace(0, 0, 2, kGroup1000)});
  assert(kh::AccessCheck(copy, user, 3) && !kh::AccessCheck(copy, Make(1000, 1001, false, false), 3));
  copy = Capture({Ace(1, 0x08, 1, kEveryone), Ace(2, 0, 1, kEveryone), Ace(0, 0, 1, kEveryone)});
  assert(kh::AccessCheck(copy, user, 1));
  assert(kh::DescribeDacl(copy) == "(D;IO;0x1;;;S-1-1-0)(type 0x02;)(A;;0x1;;;S-1-1-0)");
  kh::SecurityCopy torn = copy;  // a copy shorter than its AclSize is refused, not over-read
  torn.dacl.resize(torn.dacl.size() - 4);
  assert(!kh::AccessCheck(torn, user, 1) && kh::DescribeDacl(torn) == "<invalid DACL>");
  // SYSTEM has no Everyone in the harness's token (harness.h, Caller), but does hold Administrators.
  assert(!kh::AccessCheck(copy, kh::Caller{}, 1));
  copy = Capture({Ace(0, 0, 1, kAdmins)});
  assert(kh::AccessCheck(copy, Make(-1, -1, false, true), 1) && kh::AccessCheck(copy, Make(5, 5, true, false), 1));
  assert(!kh::AccessCheck(copy, Make(0, 0, false, false), 1));  // uid 0 alone is not admin: caller.admin is
}

// The sample's port security: the default descriptor, copied into a new DACL with a group ACE
// (FsBuildGroupDacl), then the checks a connect makes (FLT_PORT_CONNECT for the group, all for admins).
void SampleSequence() {
  size_t blocks = 0, bytes = 0;
  PSECURITY_DESCRIPTOR defaultSd = nullptr;
  assert(FltBuildDefaultSecurityDescriptor(&defaultSd, FLT_PORT_ALL_ACCESS) == STATUS_SUCCESS);
  kh::PoolOutstanding(&blocks, &bytes);
  assert(blocks == 1);

  kh::SecurityCopy defaults;
  assert(kh::CaptureSecurity(defaultSd, &defaults) == STATUS_SUCCESS);
  assert(kh::DescribeDacl(defaults) == "(A;;0x1f0001;;;S-1-5-18)(A;;0x1f0001;;;S-1-5-32-544)");
  assert(kh::AccessCheck(defaults, Make(0, 0, true, false), FLT_PORT_ALL_ACCESS));  // root
  assert(kh::AccessCheck(defaults, kh::Caller{}, FLT_PORT_ALL_ACCESS));             // SYSTEM
  assert(!kh::AccessCheck(defaults, Make(1000, 1000, false, false), FLT_PORT_CONNECT));

  // FsBuildGroupDacl, step by step.
  BOOLEAN present = FALSE, defaulted = FALSE;
  PACL oldDacl = nullptr;
  assert(RtlGetDaclSecurityDescriptor(defaultSd, &present, &oldDacl, &defaulted) == STATUS_SUCCESS);
  assert(present && oldDacl != nullptr && oldDacl->AceCount == 2);
  auto group = kGroup1000;
  const ULONG size = oldDacl->AclSize + (ULONG)FIELD_OFFSET(ACCESS_ALLOWED_ACE, SidStart) + RtlLengthSid(group.data());
  AclBuffer b;
  assert(RtlCreateAcl(b.acl(), size, ACL_REVISION) == STATUS_SUCCESS);
  for (ULONG i = 0; i < oldDacl->AceCount; i++) {
    PVOID ace = nullptr;
    assert(RtlGetAce(oldDacl, i, &ace) == STATUS_SUCCESS);
    assert(RtlAddAce(b.acl(), ACL_REVISION, MAXULONG, ace, static_cast<PACE_HEADER>(ace)->AceSize) == 0);
  }
  assert(RtlAddAccessAllowedAce(b.acl(), ACL_REVISION, FLT_PORT_CONNECT, group.data()) == STATUS_SUCCESS);
  SECURITY_DESCRIPTOR groupSd;
  assert(RtlCreateSecurityDescriptor(&groupSd, SECURITY_DESCRIPTOR_REVISION) == STATUS_SUCCESS);
  assert(RtlSetDaclSecurityDescriptor(&groupSd, TRUE, b.acl(), FALSE) == STATUS_SUCCESS);

  kh::SecurityCopy port;
  assert(kh::CaptureSecurity(&groupSd, &port) == STATUS_SUCCESS);
  FltFreeSecurityDescriptor(defaultSd);     // FsPortCreate frees right after the port captured it
  std::memset(b.bytes, 0, sizeof b.bytes);  // ... and the group DACL: the copy must not depend on either
  kh::PoolOutstanding(&blocks, &bytes);
  assert(blocks == 0);

  assert(kh::DescribeDacl(port) == "(A;;0x1f0001;;;S-1-5-18)(A;;0x1f0001;;;S-1-5-32-544)(A;;0x1;;;S-1-22-2-1000)");
  assert(kh::AccessCheck(port, Make(0, 0, true, false), FLT_PORT_ALL_ACCESS));
  assert(kh::AccessCheck(port, Make(1000, 1000, false, false), FLT_PORT_CONNECT));
  assert(!kh::AccessCheck(port, Make(1000, 1000, false, false), FLT_PORT_ALL_ACCESS));
  assert(!kh::AccessCheck(port, Make(1000, 1001, false, false), FLT_PORT_CONNECT));
  assert(!kh::AccessCheck(port, Make(1001, 1001, false, false), FLT_PORT_CONNECT));

  // Freeing twice is the pool's violation.
  const size_t before = kh::Violations().size();
  FltFreeSecurityDescriptor(defaultSd);
  assert(kh::Violations().size() == before + 1);
  assert(kh::Violations().back().rfind("FltFreeSecurityDescriptor: ", 0) == 0);
}

void Tokens() {
  SECURITY_SUBJECT_CONTEXT subject;
  SeCaptureSubjectContext(&subject);  // this thread: System
  assert(subject.ClientToken == nullptr && subject.PrimaryToken != nullptr);
  assert(SeTokenIsAdmin(SeQuerySubjectContextToken(&subject)) == TRUE);
  SeReleaseSubjectContext(&subject);
  {
    kh::ScopedCaller scope(Make(1000, 1000, false, false));
    SeCaptureSubjectContext(&subject);
  }
  // The token describes the caller at capture time, whoever asks later.
  assert(SeTokenIsAdmin(SeQuerySubjectContextToken(&subject)) == FALSE);
  SeReleaseSubjectContext(&subject);
  {
    kh::ScopedCaller scope(Make(0, 0, true, false));
    SeCaptureSubjectContext(&subject);
    assert(HandleToULong(subject.ProcessAuditId) == 1000);
    assert(SeTokenIsAdmin(SeQuerySubjectContextToken(&subject)) == TRUE);
    SeReleaseSubjectContext(&subject);
  }

  {
    kh::ScopedCaller scope(Make(-1, -1, false, true));  // LocalSystem's token holds Administrators
    SeCaptureSubjectContext(&subject);
    assert(SeTokenIsAdmin(SeQuerySubjectContextToken(&subject)) == TRUE);
    SeReleaseSubjectContext(&subject);
  }

  size_t before = kh::Violations().size();
  SeReleaseSubjectContext(&subject);  // twice
  int notAToken = 0;
  assert(SeTokenIsAdmin(&notAToken) == FALSE);
  assert(kh::Violations().size() == before + 2);

  assert(kh::SubjectContextsReport("FltUnregisterFilter") == 0);
  SECURITY_SUBJECT_CONTEXT leaked[2];
  SeCaptureSubjectContext(&leaked[0]);
  SeCaptureSubjectContext(&leaked[1]);
  before = kh::Violations().size();
  assert(kh::SubjectContextsReport("FltUnregisterFilter") == 2);
  assert(kh::Violations().size() == before + 1);
  assert(kh::Violations().back().find("FltUnregisterFilter: 2 subject context(s)") == 0);
  assert(kh::SubjectContextsReport("FltUnregisterFilter") == 0);
}

void Strings() {
  UNICODE_STRING a = RTL_CONSTANT_STRING(L"Report.DOCX");
  UNICODE_STRING b = RTL_CONSTANT_STRING(L"report.docx");
  UNICODE_STRING c = RTL_CONSTANT_STRING(L"report.doc");
  assert(RtlEqualUnicodeString(&a, &b, TRUE) == TRUE);
  assert(RtlEqualUnicodeString(&a, &b, FALSE) == FALSE);
  assert(RtlEqualUnicodeString(&a, &a, FALSE) == TRUE);
  assert(RtlEqualUnicodeString(&b, &c, TRUE) == FALSE);
  UNICODE_STRING e1 = RTL_CONSTANT_STRING(L"\u00c9T\u00c9 \u0178");  // ÉTÉ Ÿ
  UNICODE_STRING e2 = RTL_CONSTANT_STRING(L"\u00e9t\u00e9 \u00ff");  // été ÿ
  assert(RtlEqualUnicodeString(&e1, &e2, TRUE) == TRUE && RtlEqualUnicodeString(&e1, &e2, FALSE) == FALSE);
  UNICODE_STRING div = RTL_CONSTANT_STRING(L"\u00f7");  // ÷ has no upper case; × (U+00D7) is not it
  UNICODE_STRING mul = RTL_CONSTANT_STRING(L"\u00d7");
  assert(RtlEqualUnicodeString(&div, &mul, TRUE) == FALSE);
  // Beyond Latin-1 (per UTF-16 unit, as Windows' upcase table): Greek and Cyrillic fold; a surrogate pair does not.
  UNICODE_STRING g1 = RTL_CONSTANT_STRING(L"\u03a9\u0416");  // ΩЖ
  UNICODE_STRING g2 = RTL_CONSTANT_STRING(L"\u03c9\u0436");  // ωж
  assert(RtlEqualUnicodeString(&g1, &g2, TRUE) == TRUE && RtlEqualUnicodeString(&g1, &g2, FALSE) == FALSE);
  UNICODE_STRING d1 = RTL_CONSTANT_STRING(L"\xd801\xdc00");  // U+10400 DESERET CAPITAL LONG I
  UNICODE_STRING d2 = RTL_CONSTANT_STRING(L"\xd801\xdc28");  // U+10428, its lower case
  assert(RtlEqualUnicodeString(&d1, &d2, TRUE) == FALSE);
  UNICODE_STRING empty1 = {0, 0, nullptr};
  UNICODE_STRING empty2 = {0, 2, b.Buffer};
  assert(RtlEqualUnicodeString(&empty1, &empty2, TRUE) == TRUE);
}

}  // namespace

int main() {
  Sids();
  Acls();
  Descriptors();
  AccessRules();
  SampleSequence();
  Tokens();
  Strings();
  size_t blocks = 0, bytes = 0;
  kh::PoolOutstanding(&blocks, &bytes);
  assert(blocks == 0);
  std::puts("security_test: ok");
  return 0;
}
