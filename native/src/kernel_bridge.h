// The kernel harness's bridge (POSIX hosts): loads a driver image (native/kernel: a minifilter's C code
// linked with the harness) and connects it to the simulator running in this process. JS side:
// lib/simulator/kernel-driver.ts; the interface with the image: native/kernel/src/image_abi.h.
//
// Threads (the rule of blocking_calls.h): every call into the image runs on the image's own executor, never
// on the JS thread, because driver code waits (push locks, rundown, FltSendMessage). A routine the image
// calls back that needs the simulator (FltSendMessage, FltCreateCommunicationPort, ...) posts a request to
// the JS thread (NonBlockingCall) and blocks its image thread until JS answers it (answer()). Environment
// teardown or close() fails every request still waiting and every later one at once, so a driver blocked in
// FltSendMessage returns (STATUS_PORT_DISCONNECTED) and the executor's threads can be joined.
#pragma once
#if !defined(_WIN32)
#include <napi.h>

namespace fltmgr {

// The KernelImage class for `exports`.
Napi::Function DefineKernelImage(Napi::Env env);

}  // namespace fltmgr
#endif
