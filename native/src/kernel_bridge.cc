// The kernel harness's bridge: one KernelImage per loaded driver image (kernel_bridge.h).
#if !defined(_WIN32)
#include "kernel_bridge.h"

#include <dlfcn.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../kernel/src/image_abi.h"
#include "blocking_calls.h"

namespace fltmgr {
namespace {

constexpr int32_t kStatusPortDisconnected = static_cast<int32_t>(0xC0000037u);
constexpr int32_t kStatusUnsuccessful = static_cast<int32_t>(0xC0000001u);

// Heap memory aligned like pool memory (16 bytes), for buffers the driver sees.
struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) : size(n), data(n == 0 ? nullptr : std::aligned_alloc(16, (n + 15) / 16 * 16)) {}
  ~AlignedBuffer() { std::free(data); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  size_t size;
  void* data;
};

// A routine of the image that needs the simulator, waiting for the JS thread's answer.
struct HostRequest {
  std::string kind;  // "createPort", "closePort", "closeClient", "send", "unregisterFilter"
  uint64_t target = 0;
  std::u16string name;
  int32_t maxConnections = 0;
  std::vector<uint8_t> data;
  bool wantsReply = false;
  uint32_t replyCapacity = 0;
  bool hasTimeout = false;
  int64_t timeoutMs = 0;
  // The answer.
  bool done = false;
  int32_t status = 0;
  std::vector<uint8_t> reply;
};

// What the thread-safe function carries to JS: a request (by id) or a log line.
struct HostEvent {
  enum class Kind { kRequest, kLog, kViolation } kind;
  uint64_t requestId = 0;
  uint32_t level = 0;
  std::string text;
  std::string text2;
};

class KernelHost;
// The thread-safe function's context owns a reference to the host: events still queued when the KernelImage
// goes are delivered (or dropped) against a live host, and the finalizer drops the reference.
using HostRef = std::shared_ptr<KernelHost>;
void CallJsWithEvent(Napi::Env env, Napi::Function callback, HostRef* host, HostEvent* event);
using EventTsfn = Napi::TypedThreadSafeFunction<HostRef, HostEvent, CallJsWithEvent>;

// Registry value names are case-insensitive (ASCII folding covers the names drivers use).
std::string RegistryKey(std::string name) {
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return name;
}

struct RegistryValue {
  uint32_t type;
  std::vector<uint8_t> data;
};

// The host side of image_abi.h: shared by the KernelImage (JS thread) and the image's threads.
class KernelHost {
 public:
  KernelHost() {
    abi_.abi_version = FLTMGR_KH_ABI_VERSION;
    abi_.context = this;
    abi_.log = [](void* c, uint32_t level, const char* line) {
      static_cast<KernelHost*>(c)->Post(HostEvent{HostEvent::Kind::kLog, 0, level, line, ""});
    };
    abi_.violation = [](void* c, const char* routine, const char* reason) {
      static_cast<KernelHost*>(c)->Post(HostEvent{HostEvent::Kind::kViolation, 0, 0, routine, reason});
    };
    abi_.registry_value = [](void* c, const char* name, uint32_t* type, const uint8_t** data, uint32_t* size) {
      auto* self = static_cast<KernelHost*>(c);
      auto it = self->registry_.find(RegistryKey(name));  // immutable after load: no lock
      if (it == self->registry_.end()) return 0;
      *type = it->second.type;
      *data = it->second.data.data();
      *size = static_cast<uint32_t>(it->second.data.size());
      return 1;
    };
    abi_.create_port = [](void* c, uint64_t port, const uint16_t* name, uint32_t chars, int32_t max) {
      HostRequest r;
      r.kind = "createPort";
      r.target = port;
      r.name.assign(reinterpret_cast<const char16_t*>(name), chars);
      r.maxConnections = max;
      return static_cast<KernelHost*>(c)->Call(&r, kStatusUnsuccessful);
    };
    abi_.close_port = [](void* c, uint64_t port) {
      HostRequest r;
      r.kind = "closePort";
      r.target = port;
      static_cast<KernelHost*>(c)->Call(&r, 0);
    };
    abi_.close_client = [](void* c, uint64_t client) {
      HostRequest r;
      r.kind = "closeClient";
      r.target = client;
      static_cast<KernelHost*>(c)->Call(&r, 0);
    };
    abi_.send_message = [](void* c, uint64_t client, const void* data, uint32_t length, void* reply,
                           uint32_t* replyLength, const int64_t* timeoutMs) {
      HostRequest r;
      r.kind = "send";
      r.target = client;
      if (length != 0) r.data.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + length);
      r.wantsReply = reply != nullptr;
      r.replyCapacity = reply != nullptr ? *replyLength : 0;
      r.hasTimeout = timeoutMs != nullptr;
      r.timeoutMs = timeoutMs != nullptr ? *timeoutMs : 0;
      const int32_t status = static_cast<KernelHost*>(c)->Call(&r, kStatusPortDisconnected);
      if (reply != nullptr) {
        const size_t n = std::min<size_t>(r.reply.size(), *replyLength);
        if (n != 0) std::memcpy(reply, r.reply.data(), n);
        *replyLength = static_cast<uint32_t>(n);
      }
      return status;
    };
    abi_.unregister_filter = [](void* c) {
      HostRequest r;
      r.kind = "unregisterFilter";
      static_cast<KernelHost*>(c)->Call(&r, 0);
    };
  }

  const fltmgr_kh_host* abi() const { return &abi_; }
  std::map<std::string, RegistryValue>& registry() { return registry_; }

  void Start(EventTsfn tsfn) {
    std::lock_guard<std::mutex> lock(mutex_);
    tsfn_ = tsfn;
    started_ = true;
  }

  // Image thread: posts the request to JS and waits for its answer; `failed` when the host is shut down.
  int32_t Call(HostRequest* request, int32_t failed) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopped_ || !started_) return failed;
    const uint64_t id = nextId_++;
    pending_.emplace(id, request);
    auto* event = new HostEvent{HostEvent::Kind::kRequest, id, 0, "", ""};
    if (tsfn_.NonBlockingCall(event) != napi_ok) {
      delete event;
      pending_.erase(id);
      return failed;
    }
    answered_.wait(lock, [&] { return request->done || stopped_; });
    pending_.erase(id);
    return request->done ? request->status : failed;
  }

  // Any thread: a log line or violation for JS (dropped once shut down).
  void Post(HostEvent event) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_ || !started_) return;
    auto* heap = new HostEvent(std::move(event));
    if (tsfn_.NonBlockingCall(heap) != napi_ok) delete heap;
  }

  // JS thread: the request as a JS object (nullptr when it is no longer waiting).
  Napi::Value Describe(Napi::Env env, uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return env.Null();
    const HostRequest& r = *it->second;
    Napi::Object o = Napi::Object::New(env);
    o.Set("kind", r.kind);
    o.Set("id", Napi::Number::New(env, static_cast<double>(id)));
    o.Set("target", Napi::Number::New(env, static_cast<double>(r.target)));
    if (r.kind == "createPort") {
      o.Set("name", Napi::String::New(env, r.name));
      o.Set("maxConnections", Napi::Number::New(env, r.maxConnections));
    } else if (r.kind == "send") {
      o.Set("data", Napi::Buffer<uint8_t>::Copy(env, r.data.data(), r.data.size()));
      if (r.wantsReply) o.Set("replyLength", Napi::Number::New(env, r.replyCapacity));
      if (r.hasTimeout) o.Set("timeoutMs", Napi::Number::New(env, static_cast<double>(r.timeoutMs)));
    }
    return o;
  }

  // JS thread: answers request `id` (ignored when it no longer waits).
  void Answer(uint64_t id, int32_t status, const uint8_t* reply, size_t length) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = pending_.find(id);
      if (it == pending_.end() || it->second->done) return;
      it->second->status = status;
      it->second->reply.assign(reply, reply + length);
      it->second->done = true;
    }
    answered_.notify_all();
  }

  // JS thread (close(), environment teardown): every waiting request fails now, later ones at once.
  void Shutdown() {
    bool release = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
      release = started_;
    }
    answered_.notify_all();
    if (release) tsfn_.Release();
  }

 private:
  fltmgr_kh_host abi_{};
  std::map<std::string, RegistryValue> registry_;
  std::mutex mutex_;
  std::condition_variable answered_;
  std::unordered_map<uint64_t, HostRequest*> pending_;
  uint64_t nextId_ = 1;
  bool started_ = false;
  bool stopped_ = false;
  EventTsfn tsfn_;
};

void CallJsWithEvent(Napi::Env env, Napi::Function callback, HostRef* host, HostEvent* event) {
  std::unique_ptr<HostEvent> owned(event);
  if (env == nullptr || callback.IsEmpty()) return;
  Napi::Value value;
  if (owned->kind == HostEvent::Kind::kRequest) {
    value = (*host)->Describe(env, owned->requestId);
    if (value.IsNull()) return;
  } else {
    Napi::Object o = Napi::Object::New(env);
    o.Set("kind", owned->kind == HostEvent::Kind::kLog ? "log" : "violation");
    o.Set("level", Napi::Number::New(env, owned->level));
    o.Set("text", owned->text);
    if (owned->kind == HostEvent::Kind::kViolation) o.Set("reason", owned->text2);
    value = o;
  }
  callback.Call({value});
}

// One call into the image, on the executor: `run` there, `result` on the JS thread.
class ImageCall : public BlockingCall {
 public:
  ImageCall(std::function<void()> run, std::function<Napi::Value(Napi::Env)> result)
      : run_(std::move(run)), result_(std::move(result)) {}
  void Run() override { run_(); }
  Napi::Value Result(Napi::Env env) override { return result_(env); }
  // The harness stopped (close() or teardown) before the call ran: JS sees null.
  Napi::Value NotRun(Napi::Env env, NotRunReason) override { return env.Null(); }

 private:
  std::function<void()> run_;
  std::function<Napi::Value(Napi::Env)> result_;
};

fltmgr_kh_caller CallerFrom(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) throw Napi::TypeError::New(env, "caller must be an object");
  Napi::Object o = value.As<Napi::Object>();
  fltmgr_kh_caller c{};
  c.process_id = o.Get("processId").As<Napi::Number>().Uint32Value();
  c.admin = o.Get("admin").ToBoolean().Value() ? 1 : 0;
  c.system = o.Get("system").ToBoolean().Value() ? 1 : 0;
  c.uid = o.Get("uid").IsNumber() ? o.Get("uid").As<Napi::Number>().Int64Value() : -1;
  c.gid = o.Get("gid").IsNumber() ? o.Get("gid").As<Napi::Number>().Int64Value() : -1;
  return c;
}

std::vector<uint8_t> BytesFrom(const Napi::Value& value, const char* what) {
  if (!value.IsBuffer()) throw Napi::TypeError::New(value.Env(), std::string(what) + " must be a Buffer");
  auto b = value.As<Napi::Buffer<uint8_t>>();
  return std::vector<uint8_t>(b.Data(), b.Data() + b.Length());
}

uint64_t IdFrom(const Napi::Value& value, const char* what) {
  if (!value.IsNumber()) throw Napi::TypeError::New(value.Env(), std::string(what) + " must be a number");
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 9007199254740991.0))
    throw Napi::RangeError::New(value.Env(), std::string(what) + " out of range");
  return static_cast<uint64_t>(d);
}

class KernelImage : public Napi::ObjectWrap<KernelImage> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "KernelImage",
                       {
                           InstanceMethod<&KernelImage::DriverEntry>("driverEntry"),
                           InstanceMethod<&KernelImage::Unload>("unload"),
                           InstanceMethod<&KernelImage::Connect>("connect"),
                           InstanceMethod<&KernelImage::Disconnect>("disconnect"),
                           InstanceMethod<&KernelImage::Message>("message"),
                           InstanceMethod<&KernelImage::OpenFile>("openFile"),
                           InstanceMethod<&KernelImage::PortAccess>("portAccess"),
                           InstanceMethod<&KernelImage::Query>("query"),
                           InstanceMethod<&KernelImage::ViolationCount>("violationCount"),
                           InstanceMethod<&KernelImage::Answer>("answer"),
                           InstanceMethod<&KernelImage::Shutdown>("shutdown"),
                           InstanceMethod<&KernelImage::Close>("close"),
                       });
  }

  // new KernelImage(path, registry: [name, type, Buffer][], onEvent)
  explicit KernelImage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<KernelImage>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
    if (!info[1].IsArray()) throw Napi::TypeError::New(env, "registry must be an array");
    if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "onEvent must be a function");
    host_ = std::make_shared<KernelHost>();
    Napi::Array registry = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < registry.Length(); i++) {
      Napi::Array entry = registry.Get(i).As<Napi::Array>();
      host_->registry()[RegistryKey(entry.Get(0u).As<Napi::String>().Utf8Value())] =
          RegistryValue{entry.Get(1u).As<Napi::Number>().Uint32Value(), BytesFrom(entry.Get(2u), "registry data")};
    }
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    // RTLD_LOCAL: the image's symbols (DriverEntry, the kernel routines) stay its own; each load of a driver
    // is a fresh copy of the file (lib/simulator/kernel-driver.ts), so its globals start from zero.
    library_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library_ == nullptr) {
      const char* why = dlerror();
      throw Napi::Error::New(env, std::string("cannot load the driver image: ") + (why != nullptr ? why : path));
    }
    auto attach = reinterpret_cast<fltmgr_kh_attach_fn>(dlsym(library_, FLTMGR_KH_ENTRY_NAME));
    image_ = attach != nullptr ? attach(host_->abi()) : nullptr;
    if (image_ == nullptr || image_->abi_version != FLTMGR_KH_ABI_VERSION) {
      dlclose(library_);
      library_ = nullptr;
      throw Napi::Error::New(env, path + " is not a kernel harness image of ABI version " +
                                      std::to_string(FLTMGR_KH_ABI_VERSION) +
                                      " (rebuild it with scripts/kernel-image.js)");
    }
    std::shared_ptr<KernelHost> host = host_;
    calls_ =
        BlockingCalls::Create(env, "fltmgr.kernel-image", BlockingCalls::kNoThreadCap, [host] { host->Shutdown(); });
    EventTsfn tsfn = EventTsfn::New(env, info[2].As<Napi::Function>(), "fltmgr.kernel-image.events", 0, 1,
                                    new HostRef(host), [](Napi::Env, void*, HostRef* ref) { delete ref; });
    tsfn.Unref(env);  // the calls in flight keep the loop alive, not the image
    host_->Start(tsfn);
  }

  ~KernelImage() override {
    // Collected without close(): stop; the mapping stays (a thread may still be in it).
    if (calls_) {
      host_->Shutdown();
      calls_->Stop();
    }
  }

 private:
  void CheckOpen(Napi::Env env) {
    if (closed_) throw Napi::Error::New(env, "the driver image was closed");
  }

  Napi::Value Submit(Napi::Env env, std::function<void()> run, std::function<Napi::Value(Napi::Env)> result) {
    CheckOpen(env);
    return calls_->Submit(env, std::make_unique<ImageCall>(std::move(run), std::move(result)));
  }

  Napi::Value DriverEntry(const Napi::CallbackInfo& info) {
    auto path = std::make_shared<std::u16string>(info[0].As<Napi::String>().Utf16Value());
    auto status = std::make_shared<int32_t>(0);
    const fltmgr_kh_image* image = image_;
    return Submit(
        info.Env(),
        [=] {
          *status =
              image->driver_entry(reinterpret_cast<const uint16_t*>(path->data()), static_cast<uint32_t>(path->size()));
        },
        [=](Napi::Env env) { return Napi::Number::New(env, *status); });
  }

  Napi::Value Unload(const Napi::CallbackInfo& info) {
    auto status = std::make_shared<int32_t>(0);
    const fltmgr_kh_image* image = image_;
    return Submit(
        info.Env(), [=] { *status = image->unload(); }, [=](Napi::Env env) { return Napi::Number::New(env, *status); });
  }

  // connect(port, client, caller, context: Buffer) -> Promise<status | null>
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    const uint64_t port = IdFrom(info[0], "port");
    const uint64_t client = IdFrom(info[1], "client");
    const fltmgr_kh_caller caller = CallerFrom(info[2]);
    auto context = std::make_shared<std::vector<uint8_t>>(BytesFrom(info[3], "context"));
    auto status = std::make_shared<int32_t>(0);
    const fltmgr_kh_image* image = image_;
    return Submit(
        info.Env(),
        [=] {
          *status = image->connect(port, client, &caller, context->data(), static_cast<uint32_t>(context->size()));
        },
        [=](Napi::Env env) { return Napi::Number::New(env, *status); });
  }

  Napi::Value Disconnect(const Napi::CallbackInfo& info) {
    const uint64_t client = IdFrom(info[0], "client");
    const fltmgr_kh_image* image = image_;
    return Submit(
        info.Env(), [=] { image->disconnect(client); }, [](Napi::Env env) { return Napi::Boolean::New(env, true); });
  }

  // message(client, caller, input: Buffer, outputLength) -> Promise<{ status, output } | null>
  Napi::Value Message(const Napi::CallbackInfo& info) {
    const uint64_t client = IdFrom(info[0], "client");
    const fltmgr_kh_caller caller = CallerFrom(info[1]);
    std::vector<uint8_t> bytes = BytesFrom(info[2], "input");
    const uint32_t outputLength = info[3].As<Napi::Number>().Uint32Value();
    // The buffers MessageNotify sees: 8-byte aligned, as FilterSendMessage's should be (docs/fltmgr-facts.md).
    auto input = std::make_shared<AlignedBuffer>(bytes.size());
    if (!bytes.empty()) std::memcpy(input->data, bytes.data(), bytes.size());
    auto output = std::make_shared<AlignedBuffer>(outputLength);
    if ((!bytes.empty() && input->data == nullptr) || (outputLength != 0 && output->data == nullptr)) {
      throw Napi::Error::New(info.Env(), "out of memory for a MessageNotify buffer");
    }
    auto status = std::make_shared<int32_t>(0);
    auto returned = std::make_shared<uint32_t>(0);
    const fltmgr_kh_image* image = image_;
    return Submit(
        info.Env(),
        [=] {
          *status = image->message(client, &caller, input->data, static_cast<uint32_t>(input->size), output->data,
                                   outputLength, returned.get());
        },
        [=](Napi::Env env) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("status", Napi::Number::New(env, *status));
          // Only the bytes MessageNotify reported written (never memory it did not write).
          o.Set("output", Napi::Buffer<uint8_t>::Copy(env, static_cast<uint8_t*>(output->data), *returned));
          return o;
        });
  }

  // openFile({ path, processId, content, fileId, desiredAccess, createOptions, kernelMode, isDirectory, readFails })
  Napi::Value OpenFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "request must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    // The result is copied out and released on the image's thread, right after open_file: nothing here may
    // call into the image later (it may be unmapped by then).
    struct State {
      std::u16string path;
      std::vector<uint8_t> content;
      fltmgr_kh_open_request request{};
      int32_t status = 0, preStatus = 0, sendStatus = 0;
      bool postCalled = false, cancelled = false;
      uint32_t sends = 0;
      std::vector<uint8_t> sendData, replyData;
      std::string trace;
    };
    auto state = std::make_shared<State>();
    state->path = o.Get("path").As<Napi::String>().Utf16Value();
    state->content = BytesFrom(o.Get("content"), "content");
    fltmgr_kh_open_request& r = state->request;
    r.path = reinterpret_cast<const uint16_t*>(state->path.data());
    r.path_chars = static_cast<uint32_t>(state->path.size());
    r.process_id = o.Get("processId").As<Napi::Number>().Uint32Value();
    r.content = state->content.data();
    r.content_length = state->content.size();
    bool lossless = true;
    r.file_id = o.Get("fileId").As<Napi::BigInt>().Uint64Value(&lossless);
    r.desired_access = o.Get("desiredAccess").As<Napi::Number>().Uint32Value();
    r.create_options = o.Get("createOptions").As<Napi::Number>().Uint32Value();
    r.kernel_mode = o.Get("kernelMode").ToBoolean().Value() ? 1 : 0;
    r.is_directory = o.Get("isDirectory").ToBoolean().Value() ? 1 : 0;
    r.read_fails = o.Get("readFails").ToBoolean().Value() ? 1 : 0;
    const fltmgr_kh_image* image = image_;
    return Submit(
        env,
        [state, image] {
          fltmgr_kh_open_result x{};
          image->open_file(&state->request, &x);
          state->status = x.status;
          state->preStatus = x.pre_status;
          state->postCalled = x.post_called != 0;
          state->cancelled = x.cancelled != 0;
          state->sends = x.sends;
          state->sendStatus = x.send_status;
          if (x.send_data != nullptr) state->sendData.assign(x.send_data, x.send_data + x.send_length);
          if (x.reply_data != nullptr) state->replyData.assign(x.reply_data, x.reply_data + x.reply_length);
          if (x.trace != nullptr) state->trace = x.trace;
          image->release_open_result(&x);
        },
        [state](Napi::Env e) {
          Napi::Object out = Napi::Object::New(e);
          out.Set("status", Napi::Number::New(e, state->status));
          out.Set("preStatus", Napi::Number::New(e, state->preStatus));
          out.Set("postCalled", Napi::Boolean::New(e, state->postCalled));
          out.Set("cancelled", Napi::Boolean::New(e, state->cancelled));
          out.Set("sends", Napi::Number::New(e, state->sends));
          out.Set("sendStatus", Napi::Number::New(e, state->sendStatus));
          out.Set("sendData", Napi::Buffer<uint8_t>::Copy(e, state->sendData.data(), state->sendData.size()));
          out.Set("replyData", Napi::Buffer<uint8_t>::Copy(e, state->replyData.data(), state->replyData.size()));
          out.Set("trace", Napi::String::New(e, state->trace));
          return out;
        });
  }

  // portAccess(port, caller, desired) -> boolean. Pure computation over the captured descriptor: no wait.
  Napi::Value PortAccess(const Napi::CallbackInfo& info) {
    CheckOpen(info.Env());
    const uint64_t port = IdFrom(info[0], "port");
    const fltmgr_kh_caller caller = CallerFrom(info[1]);
    const uint32_t desired = info[2].As<Napi::Number>().Uint32Value();
    return Napi::Boolean::New(info.Env(), image_->port_access(port, &caller, desired) != 0);
  }

  // query(code, length, input?: Buffer) -> Promise<{ status, data } | null>. The hook's buffer holds `input`
  // first, zeros after it.
  Napi::Value Query(const Napi::CallbackInfo& info) {
    const uint32_t code = info[0].As<Napi::Number>().Uint32Value();
    const uint32_t length = info[1].As<Napi::Number>().Uint32Value();
    std::vector<uint8_t> input;
    if (info.Length() > 2 && !info[2].IsUndefined()) input = BytesFrom(info[2], "input");
    if (input.size() > length) throw Napi::RangeError::New(info.Env(), "input is longer than length");
    auto buffer = std::make_shared<AlignedBuffer>(length);
    if (length != 0 && buffer->data == nullptr) throw Napi::Error::New(info.Env(), "out of memory");
    if (length != 0) {
      std::memset(buffer->data, 0, length);
      if (!input.empty()) std::memcpy(buffer->data, input.data(), input.size());
    }
    auto status = std::make_shared<int32_t>(0);
    auto returned = std::make_shared<uint32_t>(0);
    const fltmgr_kh_image* image = image_;
    return Submit(
        info.Env(), [=] { *status = image->query(code, buffer->data, length, returned.get()); },
        [=](Napi::Env env) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("status", Napi::Number::New(env, *status));
          o.Set("data", Napi::Buffer<uint8_t>::Copy(env, static_cast<uint8_t*>(buffer->data), *returned));
          return o;
        });
  }

  Napi::Value ViolationCount(const Napi::CallbackInfo& info) {
    CheckOpen(info.Env());
    return Napi::Number::New(info.Env(), image_->violation_count());
  }

  // answer(id, status, reply?: Buffer)
  Napi::Value Answer(const Napi::CallbackInfo& info) {
    const uint64_t id = IdFrom(info[0], "id");
    const int32_t status = info[1].As<Napi::Number>().Int32Value();
    if (info.Length() > 2 && info[2].IsBuffer()) {
      auto b = info[2].As<Napi::Buffer<uint8_t>>();
      host_->Answer(id, status, b.Data(), b.Length());
    } else {
      host_->Answer(id, status, nullptr, 0);
    }
    return info.Env().Undefined();
  }

  // shutdown(): every request the image waits on fails now (FltSendMessage returns STATUS_PORT_DISCONNECTED),
  // later ones at once; calls in flight then return and settle as usual. close() afterwards unmaps.
  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    host_->Shutdown();
    return info.Env().Undefined();
  }

  // close() -> boolean: true when the image was unmapped (no thread of it was left in driver code).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (closed_) return Napi::Boolean::New(info.Env(), unmapped_);
    closed_ = true;
    host_->Shutdown();
    calls_->Stop();
    const bool joined = calls_->Join();
    calls_.reset();
    if (joined && library_ != nullptr) {
      dlclose(library_);
      library_ = nullptr;
      unmapped_ = true;
    }
    return Napi::Boolean::New(info.Env(), unmapped_);
  }

  std::shared_ptr<KernelHost> host_;
  std::shared_ptr<BlockingCalls> calls_;
  void* library_ = nullptr;
  const fltmgr_kh_image* image_ = nullptr;
  bool closed_ = false;
  bool unmapped_ = false;
};

}  // namespace

Napi::Function DefineKernelImage(Napi::Env env) { return KernelImage::Define(env); }

}  // namespace fltmgr
#endif
