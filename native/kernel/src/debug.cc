// debug.cc - DbgPrintEx: the kernel's format language to one host log line per call (harness.h, Log).
//
// The language is printf's as the kernel CRT speaks it, on an LLP64 ABI: %ld/%lu/%lx take a 32-bit ULONG,
// %I64d and %lld a 64-bit value, %I (and %z) a pointer-sized one, %p prints a pointer as zero-padded hex
// without "0x"; %wZ prints a PUNICODE_STRING and %Z a PANSI_STRING; %ws, %ls and %S print a 16-bit WCHAR
// string, %hs and %s an 8-bit one (%wc, %lc and %C a WCHAR). Non-ASCII WCHARs become UTF-8. A conversion
// the harness does not know (floating point, %n, ...) is copied to the line literally and consumes no
// argument: debug output must never crash the driver.
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "harness.h"

namespace kh {

std::string Utf16ToUtf8(const WCHAR* text, size_t units) {
  std::string out;
  out.reserve(units);
  for (size_t i = 0; i < units; ++i) {
    uint32_t cp = static_cast<uint16_t>(text[i]);
    if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < units) {
      const uint32_t low = static_cast<uint16_t>(text[i + 1]);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        ++i;
      }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // an unpaired surrogate
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return out;
}

namespace {

// The ANSI_STRING layout (%Z); the driver headers do not declare it because the sample does not use it.
struct AnsiString {
  USHORT Length;
  USHORT MaximumLength;
  char* Buffer;
};

enum class Length { kNone, kChar, kShort, kLong, kLongLong, kPointer, kWide };

// Pads `text` to `width` characters (code points, so UTF-8 counts once per character).
void AppendPadded(std::string* out, const std::string& text, int width, bool left) {
  size_t chars = 0;
  for (const char c : text) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  const size_t pad = width > 0 && static_cast<size_t>(width) > chars ? static_cast<size_t>(width) - chars : 0;
  if (!left) out->append(pad, ' ');
  *out += text;
  if (left) out->append(pad, ' ');
}

size_t WideLength(const WCHAR* s, int precision) {
  size_t n = 0;
  while ((precision < 0 || n < static_cast<size_t>(precision)) && s[n] != 0) ++n;
  return n;
}

std::string FormatKernelV(const char* format, va_list args) {
  std::string out;
  const char* p = format;
  while (*p != '\0') {
    if (*p != '%') {
      out += *p++;
      continue;
    }
    const char* start = p++;
    std::string flags;
    while (*p != '\0' && std::strchr("-+ #0", *p) != nullptr) flags += *p++;
    const bool left = flags.find('-') != std::string::npos;
    int width = -1;
    if (*p == '*') {
      width = va_arg(args, int);
      ++p;
    } else if (*p >= '0' && *p <= '9') {
      width = 0;
      while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    }
    int precision = -1;
    if (*p == '.') {
      ++p;
      precision = 0;
      if (*p == '*') {
        precision = va_arg(args, int);
        ++p;
      } else {
        while (*p >= '0' && *p <= '9') precision = precision * 10 + (*p++ - '0');
      }
    }
    Length length = Length::kNone;
    if (std::strncmp(p, "I64", 3) == 0) {
      length = Length::kLongLong;
      p += 3;
    } else if (std::strncmp(p, "I32", 3) == 0) {
      length = Length::kLong;
      p += 3;
    } else if (*p == 'I' || *p == 'z') {
      length = Length::kPointer;
      ++p;
    } else if (p[0] == 'l' && p[1] == 'l') {
      length = Length::kLongLong;
      p += 2;
    } else if (p[0] == 'h' && p[1] == 'h') {
      length = Length::kChar;
      p += 2;
    } else if (*p == 'l') {
      length = Length::kLong;
      ++p;
    } else if (*p == 'h') {
      length = Length::kShort;
      ++p;
    } else if (*p == 'w') {
      length = Length::kWide;
      ++p;
    }
    const char conversion = *p;
    if (conversion == '\0') {  // a format that ends inside a conversion
      out += start;
      break;
    }
    ++p;
    // printf's own spelling of the flags, width and precision, for the numeric conversions.
    std::string spec = "%" + flags;
    if (width >= 0) spec += std::to_string(width);
    if (precision >= 0) spec += "." + std::to_string(precision);
    char buffer[128];
    switch (conversion) {
      case 'd':
      case 'i': {
        long long value;
        switch (length) {
          case Length::kLongLong:
            value = va_arg(args, long long);
            break;
          case Length::kPointer:
            value = static_cast<long long>(va_arg(args, intptr_t));
            break;
          case Length::kShort:
            value = static_cast<short>(va_arg(args, int));
            break;
          case Length::kChar:
            value = static_cast<signed char>(va_arg(args, int));
            break;
          default:  // int, LONG (32-bit: long is 32-bit on Windows)
            value = static_cast<int32_t>(va_arg(args, int));
            break;
        }
        std::snprintf(buffer, sizeof buffer, (spec + "lld").c_str(), value);
        out += buffer;
        break;
      }
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        unsigned long long value;
        switch (length) {
          case Length::kLongLong:
            value = va_arg(args, unsigned long long);
            break;
          case Length::kPointer:
            value = static_cast<unsigned long long>(va_arg(args, uintptr_t));
            break;
          case Length::kShort:
            value = static_cast<unsigned short>(va_arg(args, unsigned int));
            break;
          case Length::kChar:
            value = static_cast<unsigned char>(va_arg(args, unsigned int));
            break;
          default:  // unsigned int, ULONG
            value = static_cast<uint32_t>(va_arg(args, unsigned int));
            break;
        }
        std::snprintf(buffer, sizeof buffer, (spec + "ll" + conversion).c_str(), value);
        out += buffer;
        break;
      }
      case 'p': {
        const void* value = va_arg(args, void*);
        std::snprintf(buffer, sizeof buffer, "%0*llX", static_cast<int>(2 * sizeof(void*)),
                      static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(value)));
        AppendPadded(&out, buffer, width, left);
        break;
      }
      case 'c':
      case 'C': {
        const bool wide =
            conversion == 'C' ? length != Length::kShort : (length == Length::kLong || length == Length::kWide);
        const int value = va_arg(args, int);
        std::string text;
        if (wide) {
          const WCHAR unit = static_cast<WCHAR>(value & 0xFFFF);
          text = Utf16ToUtf8(&unit, 1);
        } else {
          text = std::string(1, static_cast<char>(value));
        }
        AppendPadded(&out, text, width, left);
        break;
      }
      case 's':
      case 'S': {
        const bool wide =
            conversion == 'S' ? length != Length::kShort : (length == Length::kLong || length == Length::kWide);
        std::string text;
        if (wide) {
          const WCHAR* value = va_arg(args, const WCHAR*);
          text = value == nullptr ? "(null)" : Utf16ToUtf8(value, WideLength(value, precision));
        } else {
          const char* value = va_arg(args, const char*);
          text = value == nullptr ? "(null)"
                 : precision < 0  ? std::string(value)
                                  : std::string(value, strnlen(value, static_cast<size_t>(precision)));
        }
        AppendPadded(&out, text, width, left);
        break;
      }
      case 'Z': {
        std::string text = "(null)";
        if (length == Length::kWide) {
          const UNICODE_STRING* value = va_arg(args, const UNICODE_STRING*);
          if (value != nullptr && value->Buffer != nullptr)
            text = Utf16ToUtf8(value->Buffer, value->Length / sizeof(WCHAR));
        } else {
          const AnsiString* value = va_arg(args, const AnsiString*);
          if (value != nullptr && value->Buffer != nullptr) text = std::string(value->Buffer, value->Length);
        }
        AppendPadded(&out, text, width, left);
        break;
      }
      case '%':
        out += '%';
        break;
      default:  // unknown: literally, consuming nothing
        out.append(start, static_cast<size_t>(p - start));
        break;
    }
  }
  return out;
}

}  // namespace
}  // namespace kh

extern "C" ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...) {
  (void)ComponentId;  // every component's output goes to the host; the host filters by level
  if (Format == nullptr) {
    kh::Violation("DbgPrintEx", "Format is NULL");
    return static_cast<ULONG>(STATUS_INVALID_PARAMETER);
  }
  va_list args;
  va_start(args, Format);
  std::string line = kh::FormatKernelV(Format, args);
  va_end(args);
  if (!line.empty() && line.back() == '\n') line.pop_back();
  kh::Log(Level, line);
  return static_cast<ULONG>(STATUS_SUCCESS);
}
