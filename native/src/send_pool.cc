#include "send_pool.h"

#include <utility>

#include "hresult.h"

namespace fltmgr {
namespace {

class SendCall : public BlockingCall {
 public:
  SendCall(std::shared_ptr<PortHandle> port, std::vector<uint64_t> input, size_t inputSize, uint32_t outputSize)
      : port_(std::move(port)),
        input_(std::move(input)),
        inputSize_(inputSize),
        output_((uint64_t{outputSize} + 7) / 8),
        outputSize_(outputSize) {}

  void Run() override {
    PortUse use(port_);
    if (!use) {
      hr_ = HresultFromWin32(ERROR_INVALID_HANDLE);
      return;
    }
    DWORD returned = 0;
    hr_ =
        port_->api()->sendMessage(port_->handle(), inputSize_ ? input_.data() : nullptr, static_cast<DWORD>(inputSize_),
                                  outputSize_ ? output_.data() : nullptr, outputSize_, &returned);
    returned_ = returned;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Status(env, hr_);
    if (SUCCEEDED(hr_)) {
      // Never more than the kernel said it wrote, nor more than the buffer.
      const size_t size = returned_ < outputSize_ ? returned_ : outputSize_;
      result.Set("output", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(output_.data()), size));
    }
    return result;
  }

  Napi::Value NotRun(Napi::Env env, NotRunReason reason) override {
    // Withdrawn (AbortSignal, close()): it never reached the kernel. After close(): the handle is gone.
    return Status(
        env, HresultFromWin32(reason == NotRunReason::kWithdrawn ? ERROR_OPERATION_ABORTED : ERROR_INVALID_HANDLE));
  }

 private:
  static Napi::Object Status(Napi::Env env, HRESULT hr) {
    Napi::Object result = Napi::Object::New(env);
    result.Set("hresult", Napi::Number::New(env, static_cast<uint32_t>(hr)));
    return result;
  }

  std::shared_ptr<PortHandle> port_;
  std::vector<uint64_t> input_;  // 8-byte aligned copies
  size_t inputSize_;
  std::vector<uint64_t> output_;
  uint32_t outputSize_;
  HRESULT hr_ = S_OK;
  DWORD returned_ = 0;
};

}  // namespace

std::shared_ptr<BlockingCalls> CreateSendPool(Napi::Env env, std::shared_ptr<PortHandle> port) {
  // Teardown: a send waiting for a peer that stopped answering returns once its I/O is cancelled.
  return BlockingCalls::Create(env, "fltmgr.send", kMaxSendThreads, [port] { port->Abort(); });
}

std::unique_ptr<BlockingCall> MakeSendCall(std::shared_ptr<PortHandle> port, std::vector<uint64_t> input,
                                           size_t inputSize, uint32_t outputSize) {
  return std::make_unique<SendCall>(std::move(port), std::move(input), inputSize, outputSize);
}

}  // namespace fltmgr
