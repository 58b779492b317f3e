// The native client of the benchmark: the same receive loop (native/src/receive_loop.cc), port handle and
// fltlib calls the addon uses, driven from C++ instead of JS. It is the limit of this transport: the JS client
// is measured against it. argv: endpoint concurrency size count sends. Prints one JSON line.
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fltapi.h"
#include "port_handle.h"
#include "receive_loop.h"

using namespace fltmgr;

namespace {

double CpuMs() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
}

struct Wakeup {
  std::mutex mutex;
  std::condition_variable cv;
  bool notified = false;
  static void Notify(void* self) {
    auto* w = static_cast<Wakeup*>(self);
    std::lock_guard<std::mutex> lock(w->mutex);
    w->notified = true;
    w->cv.notify_one();
  }
};

std::string Send(PortHandle& port, const std::vector<uint8_t>& input, size_t outputSize) {
  std::vector<uint64_t> in((input.size() + 7) / 8), out((outputSize + 7) / 8);
  std::memcpy(in.data(), input.data(), input.size());
  DWORD returned = 0;
  const HRESULT hr = port.api()->sendMessage(port.handle(), in.data(), static_cast<DWORD>(input.size()), out.data(),
                                             static_cast<DWORD>(outputSize), &returned);
  if (FAILED(hr)) {
    std::fprintf(stderr, "FilterSendMessage failed: 0x%08X\n", static_cast<unsigned>(hr));
    std::exit(1);
  }
  return std::string(reinterpret_cast<const char*>(out.data()), returned);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s endpoint concurrency size count sends\n", argv[0]);
    return 2;
  }
  const char* endpoint = argv[1];
  const uint32_t concurrency = static_cast<uint32_t>(std::atoi(argv[2]));
  const uint32_t size = static_cast<uint32_t>(std::atoi(argv[3]));
  const uint32_t count = static_cast<uint32_t>(std::atoi(argv[4]));
  const uint32_t sends = static_cast<uint32_t>(std::atoi(argv[5]));

  const FilterApi* api = SimulatorFilterApi();
  const std::u16string name = u"\\FltmgrBenchPort";
  HANDLE handle = INVALID_HANDLE_VALUE;
  HRESULT hr = api->connect(endpoint, reinterpret_cast<LPCWSTR>(name.c_str()), 0, nullptr, 0, &handle);
  if (FAILED(hr)) {
    std::fprintf(stderr, "connect failed: 0x%08X\n", static_cast<unsigned>(hr));
    return 1;
  }
  auto port = std::make_shared<PortHandle>(handle, api, false);
  auto iocp = CompletionPort::Associate(*port, &hr);
  if (!iocp) return 1;
  Wakeup wakeup;
  ReceiveLoop loop(port, iocp, {concurrency, size + 64, 1u << 20}, &Wakeup::Notify, &wakeup);
  if (!loop.Start()) return 1;

  // The flood runs while this thread answers messages; a helper thread issues the commands.
  std::atomic<bool> floodDone{false};
  std::string flood;
  const double cpu0 = CpuMs();
  std::thread commander([&] {
    std::vector<uint8_t> command(13);
    command[0] = 'F';
    std::memcpy(&command[1], &count, 4);
    std::memcpy(&command[5], &size, 4);
    std::memcpy(&command[9], &concurrency, 4);
    Send(*port, command, 16);
    flood = Send(*port, std::vector<uint8_t>{'R'}, 4096);
    floodDone = true;
    Wakeup::Notify(&wakeup);
  });
  const uint8_t reply[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  std::vector<ReceiveEvent> events;
  uint64_t received = 0;
  bool stopped = false;
  while (!stopped) {
    {
      std::unique_lock<std::mutex> lock(wakeup.mutex);
      wakeup.cv.wait(lock, [&] { return wakeup.notified; });
      wakeup.notified = false;
    }
    loop.TakeEvents(events);
    for (const ReceiveEvent& event : events) {
      if (event.kind == ReceiveEvent::kMessage) {
        ++received;
        loop.Reply(event.slot, 0, reply, sizeof(reply));
      } else if (event.kind == ReceiveEvent::kStopped) {
        stopped = true;
      } else if (event.kind == ReceiveEvent::kError || event.kind == ReceiveEvent::kDisconnected) {
        std::fprintf(stderr, "receive failed: 0x%08X\n", static_cast<unsigned>(event.hr));
        return 1;
      }
    }
    if (floodDone) loop.Stop();  // idempotent
  }
  const double recvCpuMs = CpuMs() - cpu0;
  commander.join();
  loop.Join();

  // Sends: the addon runs them on up to 4 threads per port; so does this client.
  std::vector<uint8_t> echo(size, 7);
  echo[0] = 'E';
  const uint32_t threads = concurrency < 4 ? concurrency : 4;
  std::atomic<uint32_t> issued{0};
  const double cpu1 = CpuMs();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> senders;
  for (uint32_t i = 0; i < threads; ++i) {
    senders.emplace_back([&] {
      while (issued.fetch_add(1) < sends) Send(*port, echo, size);
    });
  }
  for (auto& t : senders) t.join();
  const double sendMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const double sendCpuMs = CpuMs() - cpu1;
  port->RequestClose();
  std::printf(
      "{\"client\":\"native\",\"concurrency\":%u,\"size\":%u,\"received\":%llu,\"flood\":%s,\"recvCpuMs\":%.3f,"
      "\"sends\":%u,\"sendMs\":%.3f,\"sendCpuMs\":%.3f}\n",
      concurrency, size, static_cast<unsigned long long>(received), flood.c_str(), recvCpuMs, sends, sendMs, sendCpuMs);
  return 0;
}
