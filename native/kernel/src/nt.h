// nt.h - the driver-facing kernel declarations (include/fltKernel.h, include/wdf.h), as seen from the
// harness's C++. The headers are C11 written for the driver; this is the one place that adapts them to
// C++17: C linkage, _Static_assert, and the min/max macros (which would break <algorithm>).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#ifndef _Static_assert
#define _Static_assert static_assert
#define KH_DEFINED_STATIC_ASSERT 1
#endif

extern "C" {
#include <fltKernel.h>
#include <wdf.h>
}

#ifdef KH_DEFINED_STATIC_ASSERT
#undef _Static_assert
#undef KH_DEFINED_STATIC_ASSERT
#endif
#undef min
#undef max
