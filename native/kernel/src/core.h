// core.h - the parts of core.cc only the image's entry points and tests use (harness.h has the rest).
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "image_abi.h"

namespace kh {

// The host the image reports to (nullptr in unit tests: logs go to stderr).
void SetHost(const fltmgr_kh_host* host);
const fltmgr_kh_host* Host();

// Every violation recorded so far, "routine: reason".
std::vector<std::string> Violations();

}  // namespace kh
