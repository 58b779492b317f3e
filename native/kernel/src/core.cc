// core.cc - the harness's shared state: the host it reports to, the calling thread's caller, the image's
// phase and its verifier list (harness.h).
#include "core.h"

#include <cstdio>
#include <mutex>
#include <vector>

#include "harness.h"

namespace kh {
namespace {

const fltmgr_kh_host* g_host = nullptr;
std::mutex g_violations_mutex;
std::vector<std::string> g_violations;  // "routine: reason"
std::atomic<Phase> g_phase{Phase::kLoaded};

const Caller kSystem{};
thread_local const Caller* t_caller = nullptr;

}  // namespace

void SetHost(const fltmgr_kh_host* host) { g_host = host; }
const fltmgr_kh_host* Host() { return g_host; }

const Caller& CurrentCaller() { return t_caller != nullptr ? *t_caller : kSystem; }

ScopedCaller::ScopedCaller(const Caller& caller) : previous_(t_caller), caller_(caller) { t_caller = &caller_; }
ScopedCaller::~ScopedCaller() { t_caller = previous_; }

std::string FormatV(const char* format, va_list args) {
  va_list copy;
  va_copy(copy, args);
  char small[256];
  const int n = std::vsnprintf(small, sizeof small, format, copy);
  va_end(copy);
  if (n < 0) return std::string();
  if (static_cast<size_t>(n) < sizeof small) return std::string(small, static_cast<size_t>(n));
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(&out[0], out.size(), format, args);
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Format(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::string out = FormatV(format, args);
  va_end(args);
  return out;
}

void Log(uint32_t level, const std::string& line) {
  if (g_host != nullptr && g_host->log != nullptr) {
    g_host->log(g_host->context, level, line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

void Violation(const char* routine, const char* format, ...) {
  va_list args;
  va_start(args, format);
  const std::string reason = FormatV(format, args);
  va_end(args);
  {
    std::lock_guard<std::mutex> lock(g_violations_mutex);
    g_violations.push_back(std::string(routine) + ": " + reason);
  }
  Log(DPFLTR_ERROR_LEVEL, "VERIFIER: " + std::string(routine) + ": " + reason);
  if (g_host != nullptr && g_host->violation != nullptr) g_host->violation(g_host->context, routine, reason.c_str());
}

std::vector<std::string> Violations() {
  std::lock_guard<std::mutex> lock(g_violations_mutex);
  return g_violations;
}

Phase CurrentPhase() { return g_phase.load(); }
void SetPhase(Phase phase) { g_phase.store(phase); }

}  // namespace kh

// ---- Processes -----------------------------------------------------------------------------------------

extern "C" HANDLE PsGetCurrentProcessId(void) {
  // The caller this thread runs as (harness.h): a connecting client, an opener, or the System process (4).
  return reinterpret_cast<HANDLE>(static_cast<uintptr_t>(kh::CurrentCaller().processId));
}
