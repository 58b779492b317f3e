// kh-test-sources: core.cc debug.cc crt.c
// DbgPrintEx's format language (debug.cc), one host log line per call, and the 16-bit wcslen (crt.c).
#include <cassert>
#include <cstdio>
#include <string>
#include <vector>

#include "core.h"
#include "harness.h"

struct Line {
  uint32_t level;
  std::string text;
};
static std::vector<Line> g_lines;

static void CaptureLog(void*, uint32_t level, const char* line) { g_lines.push_back(Line{level, line}); }

// The one line the last DbgPrintEx call logged.
#define EXPECT_PRINT(expected, ...)                                                                                \
  do {                                                                                                             \
    g_lines.clear();                                                                                               \
    DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, __VA_ARGS__);                                               \
    if (g_lines.size() != 1 || g_lines[0].text != (expected)) {                                                    \
      std::fprintf(stderr, "line %d: expected \"%s\", got \"%s\" (%zu lines)\n", __LINE__,                         \
                   std::string(expected).c_str(), g_lines.empty() ? "" : g_lines[0].text.c_str(), g_lines.size()); \
      assert(false);                                                                                               \
    }                                                                                                              \
  } while (0)

int main() {
  fltmgr_kh_host host = {};
  host.log = CaptureLog;
  kh::SetHost(&host);

  // Level passes through; one trailing newline is stripped, only one.
  g_lines.clear();
  DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_ERROR_LEVEL, "fltsample: EvtDriverUnload\n");
  assert(g_lines.size() == 1 && g_lines[0].level == DPFLTR_ERROR_LEVEL &&
         g_lines[0].text == "fltsample: EvtDriverUnload");
  EXPECT_PRINT("two\n", "two\n\n");
  EXPECT_PRINT("", "");

  // Integers: widths, flags, precision, lengths. LLP64: %ld/%lu/%lx are 32-bit.
  EXPECT_PRINT("-7 42 4294967295 ff FF 17 %", "%d %i %u %x %X %o %%", -7, 42, 0xFFFFFFFFu, 255u, 255u, 15u);
  EXPECT_PRINT("0xC0000022 0x00000001", "0x%08X 0x%08x", 0xC0000022u, 1u);
  EXPECT_PRINT("[   42] [42   ] [+42] [00042] [0x1f]", "[%5d] [%-5d] [%+d] [%.5d] [%#x]", 42, 42, 42, 42, 31u);
  EXPECT_PRINT("[  7]", "[%*d]", 3, 7);
  EXPECT_PRINT("-1 4294967295 ffffffff", "%ld %lu %lx", static_cast<LONG>(-1), static_cast<ULONG>(0xFFFFFFFFu),
               static_cast<ULONG>(0xFFFFFFFFu));
  EXPECT_PRINT("fltsample: leaked -3 pool allocations (123456789012 bytes)",
               "fltsample: leaked %I64d pool allocations (%I64d bytes)\n", static_cast<LONG64>(-3),
               static_cast<LONG64>(123456789012LL));
  EXPECT_PRINT("18446744073709551615 ffffffffffffffff 9223372036854775807", "%I64u %I64x %lld", ~0ULL, ~0ULL,
               0x7FFFFFFFFFFFFFFFLL);
  EXPECT_PRINT("-5 65535 -1 255 12345678 123456789abc", "%I32d %hu %hd %hhu %I32x %Ix", -5, 0xFFFF, 0xFFFF, 0x1FF,
               0x12345678u, static_cast<uintptr_t>(0x123456789ABCull));

  // %p: zero-padded hex, pointer-sized, no 0x.
  EXPECT_PRINT(sizeof(void*) == 8 ? "00000000DEADBEEF" : "DEADBEEF", "%p", reinterpret_cast<void*>(0xDEADBEEFu));

  // Characters and strings, 8- and 16-bit; NULL strings; precision and width.
  EXPECT_PRINT("x y z", "%c %hc %wc", 'x', 'y', static_cast<int>(L'z'));
  EXPECT_PRINT("\xC3\xA9", "%C", static_cast<int>(0xE9));
  EXPECT_PRINT("narrow wide wide wide narrow", "%s %ws %ls %S %hs", "narrow", L"wide", L"wide", L"wide", "narrow");
  EXPECT_PRINT("(null) (null)", "%s %ws", static_cast<const char*>(nullptr), static_cast<const WCHAR*>(nullptr));
  EXPECT_PRINT("[abc] [  abc] [abc  ] [wi]", "[%.3s] [%5s] [%-5s] [%.2ws]", "abcdef", "abc", "abc", L"wide");
  // Non-ASCII WCHARs to UTF-8: BMP (é, €) and a surrogate pair (U+1F600); an unpaired surrogate -> U+FFFD.
  const WCHAR text[] = {0x00E9, 0x20AC, 0xD83D, 0xDE00, 0xD800, 'a', 0};
  EXPECT_PRINT(
      "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xEF\xBF\xBD"
      "a",
      "%ws", text);
  EXPECT_PRINT("[ \xC3\xA9]", "[%2.1ws]", text);  // width counts characters, not UTF-8 bytes

  // %wZ: the UNICODE_STRING's Length (bytes), no NUL needed; NULL and NULL buffer print (null).
  WCHAR sid[] = {'S', '-', '1', '-', '5', '-', '1', '8', 'X', 'X'};
  UNICODE_STRING us;
  us.Buffer = sid;
  us.Length = 8 * sizeof(WCHAR);
  us.MaximumLength = sizeof sid;
  EXPECT_PRINT("fltsample: PortGroupSid S-1-5-18 is not a SID string",
               "fltsample: PortGroupSid %wZ is not a SID string\n", &us);
  EXPECT_PRINT("(null)", "%wZ", static_cast<PUNICODE_STRING>(nullptr));
  UNICODE_STRING empty = {0, 0, nullptr};
  EXPECT_PRINT("[(null)]", "[%wZ]", &empty);
  struct {
    USHORT Length;
    USHORT MaximumLength;
    const char* Buffer;
  } ansi = {3, 8, "abcdef"};
  EXPECT_PRINT("abc", "%Z", &ansi);

  // Unknown conversions: literal, consuming nothing (the next conversion still gets its argument).
  EXPECT_PRINT("%f 5 %n 6 %q", "%f %d %n %d %q", 5, 6);
  EXPECT_PRINT("trailing %", "trailing %");
  EXPECT_PRINT("trailing %-08l", "trailing %-08l");

  // Several lines in one call stay one log line.
  EXPECT_PRINT("a\nb", "a\nb\n");

  // NULL format: a violation, no line.
  g_lines.clear();
  const size_t before = kh::Violations().size();
  assert(DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, nullptr) == static_cast<ULONG>(STATUS_INVALID_PARAMETER));
  assert(kh::Violations().size() == before + 1);

  // Utf16ToUtf8 directly.
  assert(kh::Utf16ToUtf8(text, 2) == "\xC3\xA9\xE2\x82\xAC");
  assert(kh::Utf16ToUtf8(text, 3) == "\xC3\xA9\xE2\x82\xAC\xEF\xBF\xBD");  // pair cut in half

  // wcslen counts 16-bit units (glibc's would read 32-bit ones, past this array: ASan would report it).
  const WCHAR two[3] = {'a', 'b', 0};
  assert(wcslen(two) == 2 && wcslen(L"") == 0 && wcslen(L"fltsample") == 9);
  kh::SetHost(nullptr);
  std::puts("debug_test: ok");
  return 0;
}
