// FilterSendMessage as a blocking call, and the per-port executor it runs on. Why sends have their own
// threads, and how teardown bounds them: the threading rule in blocking_calls.h.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "blocking_calls.h"
#include "port_handle.h"

namespace fltmgr {

// Sends that run at once per port (each one a MessageNotify call); more wait in a FIFO queue.
constexpr uint32_t kMaxSendThreads = 4;

// A port's send executor; environment teardown cancels everything pending on the port (FilterApi::abort).
std::shared_ptr<BlockingCalls> CreateSendPool(Napi::Env env, std::shared_ptr<PortHandle> port);

// One FilterSendMessage; its result is { hresult, output? }. input holds inputSize bytes, 8-byte aligned.
std::unique_ptr<BlockingCall> MakeSendCall(std::shared_ptr<PortHandle> port, std::vector<uint64_t> input,
                                           size_t inputSize, uint32_t outputSize);

}  // namespace fltmgr
