// filter.cc - Filter Manager: registration and start, the volume and its instance, contexts, file names,
// the I/O a create callback may do (FltReadFile, FltQueryInformationFile, FltGetVolumeProperties) and the
// simulated IRP_MJ_CREATE (OpenFile) that drives a filter's create callbacks.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>
#include <unordered_map>
#include <vector>

#include "core.h"
#include "objects.h"
#include "status.h"

struct _FLT_FILTER {
  uint32_t magic;
};
struct _FLT_INSTANCE {
  uint32_t magic;
};
struct _FLT_VOLUME {
  uint32_t magic;
};

namespace kh {

struct OpenRecord {
  const fltmgr_kh_open_request* request;
  FILE_OBJECT* fileObject;
  bool postRunning = false;
  bool cancelled = false;
  std::string trace;
  uint32_t sends = 0;
  NTSTATUS sendStatus = 0;
  std::string sendData;
  std::string replyData;
};

namespace {

constexpr uint32_t kFilterMagic = 0x544c4946;   // "FILT"
constexpr uint32_t kContextMagic = 0x5458434b;  // "KCXT"
constexpr uint32_t kNameMagic = 0x454d414e;     // "NAME"
constexpr ULONG FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT_ = 0x1;
constexpr SIZE_T FLT_VARIABLE_SIZED_CONTEXTS_ = static_cast<SIZE_T>(-1);
constexpr ULONG FLT_FILE_NAME_FORMAT_MASK = 0xff;
constexpr ULONG FILE_OPENED_ = 1;
// FLT_FILE_NAME_INFORMATION.NamesParsed bits.
constexpr USHORT FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT = 0x1, FLTFL_FILE_NAME_PARSED_EXTENSION = 0x2,
                 FLTFL_FILE_NAME_PARSED_STREAM = 0x4, FLTFL_FILE_NAME_PARSED_PARENT_DIR = 0x8;

_DRIVER_OBJECT g_driver{0x52444b48};
_FLT_FILTER g_filter{kFilterMagic};
_FLT_INSTANCE g_instance{0x54534e49};
_FLT_VOLUME g_volume{0x554c4f56};
FilterState g_state;
const Volume g_volumeInfo{u"\\Device\\HarddiskVolume1", 4096};
thread_local OpenRecord* t_open = nullptr;

// A context: this header, then the driver's bytes (FltAllocateContext returns a pointer past it).
struct ContextHeader {
  uint32_t magic;
  FLT_CONTEXT_TYPE type;
  std::atomic<int32_t> references;
  size_t size;
  uint32_t tag;
  void* cleanup;
  alignas(16) unsigned char data[1];
};
constexpr size_t kContextDataOffset = offsetof(ContextHeader, data);

std::mutex g_objects_mutex;
std::set<ContextHeader*> g_contexts;         // allocated, not yet freed
ContextHeader* g_instanceContext = nullptr;  // the instance's reference, under g_objects_mutex

// FLT_FILE_NAME_INFORMATION with its reference count and the name's characters after it.
struct NameInfo {
  uint32_t magic;
  std::atomic<int32_t> references;
  FLT_FILE_NAME_INFORMATION info;
  std::u16string text;
};
std::set<NameInfo*> g_names;

ContextHeader* HeaderOf(PFLT_CONTEXT context) {
  if (context == nullptr) return nullptr;
  auto* header = reinterpret_cast<ContextHeader*>(static_cast<unsigned char*>(context) - kContextDataOffset);
  std::lock_guard<std::mutex> lock(g_objects_mutex);
  return g_contexts.count(header) != 0 ? header : nullptr;
}

void FreeContext(ContextHeader* header) {
  if (header->cleanup != nullptr) {
    using Cleanup = VOID(FLTAPI*)(PFLT_CONTEXT, FLT_CONTEXT_TYPE);
    reinterpret_cast<Cleanup>(header->cleanup)(header->data, header->type);
  }
  {
    std::lock_guard<std::mutex> lock(g_objects_mutex);
    g_contexts.erase(header);
  }
  header->magic = 0;
  header->~ContextHeader();
  PoolFree(header, header->tag, "FltReleaseContext", PoolFamily::kObject);
}

void Dereference(ContextHeader* header, const char* routine) {
  const int32_t left = --header->references;
  if (left < 0) {
    Violation(routine, "context %p released more often than referenced", static_cast<void*>(header->data));
    return;
  }
  if (left == 0) FreeContext(header);
}

UNICODE_STRING Slice(const std::u16string& text, size_t begin, size_t end) {
  UNICODE_STRING s;
  s.Buffer = const_cast<PWCH>(reinterpret_cast<const WCHAR*>(text.data() + begin));
  s.Length = static_cast<USHORT>((end - begin) * sizeof(WCHAR));
  s.MaximumLength = s.Length;
  if (end == begin) s.Buffer = nullptr;
  return s;
}

}  // namespace

const Volume& TheVolume() { return g_volumeInfo; }
FilterState& Filter() { return g_state; }
PFLT_FILTER FilterHandle() { return &g_filter; }
PFLT_INSTANCE InstanceHandle() { return &g_instance; }
PFLT_VOLUME VolumeHandle() { return &g_volume; }
PDRIVER_OBJECT DriverObject() { return &g_driver; }

size_t InstanceAlignment(PFLT_INSTANCE instance) {
  if (instance != &g_instance) return 0;
  std::lock_guard<std::mutex> lock(g_state.mutex);
  return g_state.instanceAttached ? g_volumeInfo.sectorSize : 0;
}

bool CheckFilter(PFLT_FILTER filter, const char* routine) {
  if (filter != &g_filter) {
    Violation(routine, "%p is not a filter FltRegisterFilter returned", static_cast<void*>(filter));
    return false;
  }
  std::lock_guard<std::mutex> lock(g_state.mutex);
  if (!g_state.registered || g_state.unregistered) {
    Violation(routine, "called with a filter that is not registered (after FltUnregisterFilter returned?)");
    return false;
  }
  return true;
}

bool CheckInstance(PFLT_INSTANCE instance, const char* routine) {
  if (instance != &g_instance) {
    Violation(routine, "%p is not an instance of this filter", static_cast<void*>(instance));
    return false;
  }
  std::lock_guard<std::mutex> lock(g_state.mutex);
  if (!g_state.instanceAttached) {
    Violation(routine, "called with an instance that was torn down");
    return false;
  }
  return true;
}

OpenRecord* CurrentOpen() { return t_open; }

void TraceCall(const char* routine, NTSTATUS status) {
  if (t_open == nullptr) return;
  t_open->trace += Format("%s=0x%08X;", routine, static_cast<unsigned>(status));
}

void TraceSend(NTSTATUS status, const void* data, uint32_t length, const void* reply, uint32_t replyLength) {
  if (t_open == nullptr) return;
  t_open->sends++;
  t_open->sendStatus = status;
  t_open->sendData.assign(static_cast<const char*>(data), length);
  t_open->replyData.assign(reply != nullptr ? static_cast<const char*>(reply) : "", reply != nullptr ? replyLength : 0);
}

// Instance teardown (FltUnregisterFilter): the instance's context reference goes; contexts still
// referenced after that are the driver's leaked references.
void DetachInstance() {
  ContextHeader* context = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_objects_mutex);
    std::swap(context, g_instanceContext);
  }
  {
    std::lock_guard<std::mutex> lock(g_state.mutex);
    g_state.instanceAttached = false;
  }
  if (context != nullptr) Dereference(context, "FltUnregisterFilter");
}

size_t FilterObjectsReport(const char* routine) {
  std::lock_guard<std::mutex> lock(g_objects_mutex);
  for (ContextHeader* c : g_contexts) {
    Violation(routine, "a context (type %u, tag %s) still has %d reference(s): FltReleaseContext not called",
              static_cast<unsigned>(c->type), TagName(c->tag).c_str(), c->references.load());
  }
  for (NameInfo* n : g_names) {
    Violation(routine,
              "file name information for %s still has %d reference(s): FltReleaseFileNameInformation "
              "not called",
              Utf16ToUtf8(reinterpret_cast<const WCHAR*>(n->text.data()), n->text.size()).c_str(),
              n->references.load());
  }
  return g_contexts.size() + g_names.size();
}

// ---- OpenFile: the simulated IRP_MJ_CREATE ----------------------------------------------------------

int32_t OpenFile(const fltmgr_kh_open_request* request, fltmgr_kh_open_result* result) {
  std::memset(result, 0, sizeof *result);
  result->pre_status = -1;

  Registration registration;
  bool filtering;
  {
    std::lock_guard<std::mutex> lock(g_state.mutex);
    filtering = g_state.started && g_state.instanceAttached && !g_state.unregistering &&
                (g_state.registration.preCreate != nullptr || g_state.registration.postCreate != nullptr);
    if (filtering) {
      registration = g_state.registration;
      g_state.callbacksInFlight++;
    }
  }
  if (!filtering) {
    // Not filtered (not started, no instance, unloading, or no create callbacks): the open succeeds.
    result->status = STATUS_SUCCESS;
    return STATUS_SUCCESS;
  }

  Caller opener;
  opener.processId = request->process_id;
  opener.system = request->kernel_mode != 0;
  opener.admin = request->kernel_mode != 0;
  ScopedCaller scope(opener);

  FILE_OBJECT fileObject{};
  fileObject.Type = 5;  // IO_TYPE_FILE
  fileObject.Size = static_cast<SHORT>(sizeof(FILE_OBJECT));
  std::u16string path(reinterpret_cast<const char16_t*>(request->path), request->path_chars);
  fileObject.FileName = Slice(path, 0, path.size());
  IO_SECURITY_CONTEXT security{};
  security.DesiredAccess = request->desired_access;
  FLT_IO_PARAMETER_BLOCK iopb{};
  iopb.MajorFunction = IRP_MJ_CREATE;
  iopb.TargetFileObject = &fileObject;
  iopb.TargetInstance = &g_instance;
  iopb.Parameters.Create.SecurityContext = &security;
  iopb.Parameters.Create.Options = (FILE_OPEN << 24) | (request->create_options & 0x00ffffffu);
  FLT_CALLBACK_DATA data{};
  data.Iopb = &iopb;
  data.RequestorMode = request->kernel_mode != 0 ? KernelMode : 1 /* UserMode */;
  FLT_RELATED_OBJECTS objects{};
  objects.Size = static_cast<USHORT>(sizeof objects);
  objects.Filter = &g_filter;
  objects.Volume = &g_volume;
  objects.Instance = &g_instance;
  objects.FileObject = &fileObject;

  OpenRecord record;
  record.request = request;
  record.fileObject = &fileObject;
  fileObject.FsContext = &record;
  t_open = &record;

  bool callPost = true;
  PVOID completionContext = nullptr;
  if (registration.preCreate != nullptr) {
    const FLT_PREOP_CALLBACK_STATUS pre = registration.preCreate(&data, &objects, &completionContext);
    result->pre_status = static_cast<int32_t>(pre);
    switch (pre) {
      case FLT_PREOP_SUCCESS_WITH_CALLBACK:
      case FLT_PREOP_SYNCHRONIZE:
        break;
      case FLT_PREOP_SUCCESS_NO_CALLBACK:
        callPost = false;
        if (completionContext != nullptr) {
          Violation("PreCreate", "returned FLT_PREOP_SUCCESS_NO_CALLBACK with a completion context");
        }
        break;
      case FLT_PREOP_COMPLETE:
        callPost = false;
        break;
      default:
        Violation("PreCreate", "returned %d, which the harness does not support for IRP_MJ_CREATE (no pending I/O)",
                  static_cast<int>(pre));
        callPost = false;
        break;
    }
  }
  if (result->pre_status != FLT_PREOP_COMPLETE) {
    // The file system: the open succeeds (the simulator's files always exist).
    data.IoStatus.Status = STATUS_SUCCESS;
    data.IoStatus.Information = FILE_OPENED_;
  }
  if (callPost && registration.postCreate != nullptr) {
    record.postRunning = true;
    result->post_called = 1;
    const FLT_POSTOP_CALLBACK_STATUS post = registration.postCreate(&data, &objects, completionContext, 0);
    record.postRunning = false;
    if (post != FLT_POSTOP_FINISHED_PROCESSING) {
      Violation("PostCreate", "returned %d; the harness supports FLT_POSTOP_FINISHED_PROCESSING only",
                static_cast<int>(post));
    }
  }
  if (record.cancelled && NT_SUCCESS(data.IoStatus.Status)) {
    Violation("FltCancelFileOpen", "the open was cancelled but IoStatus.Status was left at success (0x%08X)",
              static_cast<unsigned>(data.IoStatus.Status));
  }
  t_open = nullptr;

  result->status = data.IoStatus.Status;
  result->cancelled = record.cancelled ? 1 : 0;
  result->sends = record.sends;
  result->send_status = record.sendStatus;
  auto copy = [](const std::string& bytes, uint8_t** out, uint32_t* length) {
    *length = static_cast<uint32_t>(bytes.size());
    *out = nullptr;
    if (bytes.empty()) return;
    *out = static_cast<uint8_t*>(std::malloc(bytes.size()));
    if (*out != nullptr)
      std::memcpy(*out, bytes.data(), bytes.size());
    else
      *length = 0;
  };
  copy(record.sendData, &result->send_data, &result->send_length);
  copy(record.replyData, &result->reply_data, &result->reply_length);
  result->trace = static_cast<char*>(std::malloc(record.trace.size() + 1));
  if (result->trace != nullptr) std::memcpy(result->trace, record.trace.c_str(), record.trace.size() + 1);

  {
    std::lock_guard<std::mutex> lock(g_state.mutex);
    g_state.callbacksInFlight--;
    if (g_state.callbacksInFlight == 0) g_state.idle.notify_all();
  }
  return STATUS_SUCCESS;
}

void ReleaseOpenResult(fltmgr_kh_open_result* result) {
  std::free(result->send_data);
  std::free(result->reply_data);
  std::free(result->trace);
  result->send_data = result->reply_data = nullptr;
  result->trace = nullptr;
}

}  // namespace kh

using namespace kh;

// ---- Registration ------------------------------------------------------------------------------------

extern "C" NTSTATUS FLTAPI FltRegisterFilter(PDRIVER_OBJECT Driver, const FLT_REGISTRATION* Registration,
                                             PFLT_FILTER* RetFilter) {
  if (RetFilter == nullptr || Registration == nullptr || Driver != &g_driver) {
    Violation("FltRegisterFilter", "bad arguments (driver %p, registration %p, out %p)", static_cast<void*>(Driver),
              static_cast<const void*>(Registration), static_cast<void*>(RetFilter));
    return STATUS_INVALID_PARAMETER;
  }
  *RetFilter = nullptr;
  if (CurrentPhase() != Phase::kDriverEntry) {
    Violation("FltRegisterFilter", "called outside DriverEntry");
  }
  if (Registration->Size < sizeof(FLT_REGISTRATION) || (Registration->Version & 0xff00) != 0x0200) {
    Log(DPFLTR_ERROR_LEVEL, Format("FltRegisterFilter: unsupported FLT_REGISTRATION (size %u, version 0x%04x)",
                                   Registration->Size, Registration->Version));
    return STATUS_INVALID_PARAMETER;
  }
  kh::Registration r;
  for (const FLT_OPERATION_REGISTRATION* op = Registration->OperationRegistration;
       op != nullptr && op->MajorFunction != IRP_MJ_OPERATION_END; ++op) {
    if (op->MajorFunction == IRP_MJ_CREATE) {
      r.preCreate = op->PreOperation;
      r.postCreate = op->PostOperation;
    } else {
      Log(DPFLTR_WARNING_LEVEL, Format("FltRegisterFilter: callbacks for major function 0x%02x are registered but "
                                       "the harness only sends IRP_MJ_CREATE",
                                       op->MajorFunction));
    }
  }
  for (const FLT_CONTEXT_REGISTRATION* c = Registration->ContextRegistration;
       c != nullptr && c->ContextType != FLT_CONTEXT_END; ++c) {
    r.contexts.push_back({c->ContextType, c->Size, c->PoolTag, c->ContextCleanupCallback});
  }
  r.unload = Registration->FilterUnloadCallback;
  r.instanceSetup = Registration->InstanceSetupCallback;
  r.queryTeardown = Registration->InstanceQueryTeardownCallback;

  std::lock_guard<std::mutex> lock(g_state.mutex);
  if (g_state.registered) {
    Violation("FltRegisterFilter", "called twice (one filter per driver)");
    return STATUS_INVALID_PARAMETER;
  }
  g_state.registered = true;
  g_state.registration = r;
  *RetFilter = &g_filter;
  return STATUS_SUCCESS;
}

extern "C" NTSTATUS FLTAPI FltStartFiltering(PFLT_FILTER Filter) {
  if (!CheckFilter(Filter, "FltStartFiltering")) return STATUS_INVALID_PARAMETER;
  PFLT_INSTANCE_SETUP_CALLBACK setup;
  {
    std::lock_guard<std::mutex> lock(g_state.mutex);
    if (g_state.started) {
      Violation("FltStartFiltering", "called twice");
      return STATUS_INVALID_PARAMETER;
    }
    g_state.started = true;
    setup = g_state.registration.instanceSetup;
  }
  // Automatic attachment to the one volume, as Filter Manager does for every mounted volume.
  NTSTATUS status = STATUS_SUCCESS;
  if (setup != nullptr) {
    {
      std::lock_guard<std::mutex> lock(g_state.mutex);
      g_state.instanceAttached = true;  // the instance exists while InstanceSetup runs (contexts can be set)
    }
    FLT_RELATED_OBJECTS objects{};
    objects.Size = static_cast<USHORT>(sizeof objects);
    objects.Filter = &g_filter;
    objects.Volume = &g_volume;
    objects.Instance = &g_instance;
    status = setup(&objects, FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT_, FILE_DEVICE_DISK_FILE_SYSTEM, FLT_FSTYPE_NTFS);
  }
  if (!NT_SUCCESS(status) || status == STATUS_FLT_DO_NOT_ATTACH) {
    Log(DPFLTR_INFO_LEVEL, Format("harness: InstanceSetup declined the volume (0x%08X): opens are not filtered",
                                  static_cast<unsigned>(status)));
    DetachInstance();
  } else {
    std::lock_guard<std::mutex> lock(g_state.mutex);
    g_state.instanceAttached = true;
  }
  return STATUS_SUCCESS;
}

extern "C" VOID FLTAPI FltUnregisterFilter(PFLT_FILTER Filter) {
  if (!CheckFilter(Filter, "FltUnregisterFilter")) return;
  {
    std::lock_guard<std::mutex> lock(g_state.mutex);
    if (g_state.unregistering) {
      Violation("FltUnregisterFilter", "called twice");
      return;
    }
    g_state.unregistering = true;  // new opens are no longer filtered
  }
  // An open server port holds a reference on the filter: on Windows FltUnregisterFilter would wait for ever.
  PortsReportOpen("FltUnregisterFilter");
  const fltmgr_kh_host* host = kh::Host();
  if (host != nullptr && host->unregister_filter != nullptr) host->unregister_filter(host->context);
  {
    // Drain: create callbacks still running (they return once their sends ended with the connections).
    std::unique_lock<std::mutex> lock(g_state.mutex);
    g_state.idle.wait(lock, [] { return g_state.callbacksInFlight == 0; });
  }
  PortsReportClients("FltUnregisterFilter");
  DetachInstance();
  std::lock_guard<std::mutex> lock(g_state.mutex);
  g_state.unregistered = true;
}

// ---- Contexts --------------------------------------------------------------------------------------

extern "C" NTSTATUS FLTAPI FltAllocateContext(PFLT_FILTER Filter, FLT_CONTEXT_TYPE ContextType, SIZE_T ContextSize,
                                              POOL_TYPE PoolType, PFLT_CONTEXT* ReturnedContext) {
  (void)PoolType;
  if (ReturnedContext == nullptr) {
    Violation("FltAllocateContext", "ReturnedContext is NULL");
    return STATUS_INVALID_PARAMETER;
  }
  *ReturnedContext = nullptr;
  if (!CheckFilter(Filter, "FltAllocateContext")) return STATUS_INVALID_PARAMETER;
  const Registration::ContextType* type = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_state.mutex);
    for (const auto& t : g_state.registration.contexts) {
      if (t.type == ContextType && (t.size == ContextSize || t.size == FLT_VARIABLE_SIZED_CONTEXTS_)) {
        type = &t;
        break;
      }
    }
  }
  if (type == nullptr) {
    Violation("FltAllocateContext", "no FLT_CONTEXT_REGISTRATION for type %u and size %zu",
              static_cast<unsigned>(ContextType), static_cast<size_t>(ContextSize));
    return STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND_;
  }
  void* block =
      PoolAllocate(kContextDataOffset + ContextSize, type->tag, 16, true, "FltAllocateContext", PoolFamily::kObject);
  if (block == nullptr) return STATUS_INSUFFICIENT_RESOURCES;
  auto* header = new (block) ContextHeader;
  header->magic = kContextMagic;
  header->type = ContextType;
  header->references = 1;
  header->size = ContextSize;
  header->tag = type->tag;
  header->cleanup = type->cleanup;
  {
    std::lock_guard<std::mutex> lock(g_objects_mutex);
    g_contexts.insert(header);
  }
  *ReturnedContext = header->data;
  return STATUS_SUCCESS;
}

extern "C" NTSTATUS FLTAPI FltSetInstanceContext(PFLT_INSTANCE Instance, FLT_SET_CONTEXT_OPERATION Operation,
                                                 PFLT_CONTEXT NewContext, PFLT_CONTEXT* OldContext) {
  if (OldContext != nullptr) *OldContext = nullptr;
  if (!CheckInstance(Instance, "FltSetInstanceContext")) return STATUS_INVALID_PARAMETER;
  ContextHeader* header = HeaderOf(NewContext);
  if (header == nullptr || header->type != FLT_INSTANCE_CONTEXT) {
    Violation("FltSetInstanceContext", "%p is not an instance context from FltAllocateContext", NewContext);
    return STATUS_INVALID_PARAMETER;
  }
  ContextHeader* previous = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_objects_mutex);
    if (g_instanceContext != nullptr && Operation == FLT_SET_CONTEXT_KEEP_IF_EXISTS) {
      if (OldContext != nullptr) {
        g_instanceContext->references++;
        *OldContext = g_instanceContext->data;
      }
      return STATUS_FLT_CONTEXT_ALREADY_DEFINED_;
    }
    previous = g_instanceContext;
    header->references++;  // the instance's reference
    g_instanceContext = header;
  }
  if (previous != nullptr) {
    // The instance's reference on the replaced context moves to the caller, or goes.
    if (OldContext != nullptr)
      *OldContext = previous->data;
    else
      Dereference(previous, "FltSetInstanceContext");
  }
  return STATUS_SUCCESS;
}

extern "C" NTSTATUS FLTAPI FltGetInstanceContext(PFLT_INSTANCE Instance, PFLT_CONTEXT* Context) {
  *Context = nullptr;
  if (!CheckInstance(Instance, "FltGetInstanceContext")) return STATUS_INVALID_PARAMETER;
  std::lock_guard<std::mutex> lock(g_objects_mutex);
  if (g_instanceContext == nullptr) {
    TraceCall("FltGetInstanceContext", STATUS_NOT_FOUND_);
    return STATUS_NOT_FOUND_;
  }
  g_instanceContext->references++;
  *Context = g_instanceContext->data;
  return STATUS_SUCCESS;
}

extern "C" VOID FLTAPI FltReleaseContext(PFLT_CONTEXT Context) {
  ContextHeader* header = HeaderOf(Context);
  if (header == nullptr) {
    Violation("FltReleaseContext", "%p is not a live context (freed already, or never allocated)", Context);
    return;
  }
  Dereference(header, "FltReleaseContext");
}

// ---- File names ------------------------------------------------------------------------------------

extern "C" NTSTATUS FLTAPI FltGetFileNameInformation(PFLT_CALLBACK_DATA CallbackData, FLT_FILE_NAME_OPTIONS NameOptions,
                                                     PFLT_FILE_NAME_INFORMATION* FileNameInformation) {
  *FileNameInformation = nullptr;
  OpenRecord* open = t_open;
  if (open == nullptr || CallbackData == nullptr || CallbackData->Iopb == nullptr ||
      CallbackData->Iopb->TargetFileObject != open->fileObject) {
    Violation("FltGetFileNameInformation", "called outside the callbacks of the open it names");
    return STATUS_INVALID_PARAMETER;
  }
  if ((NameOptions & FLT_FILE_NAME_FORMAT_MASK) != FLT_FILE_NAME_NORMALIZED) {
    // Opened names are the same string here (the harness has no short names or links).
    Log(DPFLTR_TRACE_LEVEL, "harness: FltGetFileNameInformation: every name format gives the path as opened");
  }
  auto* name = new NameInfo();
  name->magic = kNameMagic;
  name->references = 1;
  name->text.assign(reinterpret_cast<const char16_t*>(open->request->path), open->request->path_chars);
  std::memset(&name->info, 0, sizeof name->info);
  name->info.Size = static_cast<USHORT>(sizeof(FLT_FILE_NAME_INFORMATION));
  name->info.Format = FLT_FILE_NAME_NORMALIZED;
  name->info.Name = Slice(name->text, 0, name->text.size());
  // The volume part is known without parsing (Filter Manager fills it too).
  const std::u16string& device = g_volumeInfo.deviceName;
  if (name->text.compare(0, device.size(), device) == 0) name->info.Volume = Slice(name->text, 0, device.size());
  {
    std::lock_guard<std::mutex> lock(g_objects_mutex);
    g_names.insert(name);
  }
  *FileNameInformation = &name->info;
  TraceCall("FltGetFileNameInformation", STATUS_SUCCESS);
  return STATUS_SUCCESS;
}

static NameInfo* NameOf(PFLT_FILE_NAME_INFORMATION info) {
  if (info == nullptr) return nullptr;
  auto* name = reinterpret_cast<NameInfo*>(reinterpret_cast<char*>(info) - offsetof(NameInfo, info));
  std::lock_guard<std::mutex> lock(g_objects_mutex);
  return g_names.count(name) != 0 ? name : nullptr;
}

// Components per the FltParseFileNameInformation reference: for \Device\HarddiskVolume1\dir\a.txt:s1,
// ParentDir "\dir\", FinalComponent "a.txt:s1", Stream ":s1", Extension "txt" (after the last dot of the
// final component, stream excluded). A path not on the volume ("C:\a.txt" in tests) is parsed the same way
// with everything before its first backslash as the volume.
extern "C" NTSTATUS FLTAPI FltParseFileNameInformation(PFLT_FILE_NAME_INFORMATION FileNameInformation) {
  NameInfo* name = NameOf(FileNameInformation);
  if (name == nullptr) {
    Violation("FltParseFileNameInformation", "%p is not live file name information",
              static_cast<void*>(FileNameInformation));
    return STATUS_INVALID_PARAMETER;
  }
  const std::u16string& t = name->text;
  const size_t volumeEnd =
      name->info.Volume.Length != 0 ? name->info.Volume.Length / sizeof(WCHAR) : std::min(t.find(u'\\'), t.size());
  const size_t lastSlash = t.rfind(u'\\');
  const size_t finalBegin = (lastSlash == std::u16string::npos || lastSlash < volumeEnd) ? volumeEnd : lastSlash + 1;
  FLT_FILE_NAME_INFORMATION& info = name->info;
  info.Volume = Slice(t, 0, volumeEnd);
  info.ParentDir = Slice(t, volumeEnd, finalBegin);
  info.FinalComponent = Slice(t, finalBegin, t.size());
  const size_t colon = t.find(u':', finalBegin);
  const size_t streamBegin = colon == std::u16string::npos ? t.size() : colon;
  info.Stream = Slice(t, streamBegin, t.size());
  const size_t dot = t.rfind(u'.', streamBegin == 0 ? 0 : streamBegin - 1);
  info.Extension = (dot == std::u16string::npos || dot < finalBegin || dot >= streamBegin)
                       ? Slice(t, streamBegin, streamBegin)
                       : Slice(t, dot + 1, streamBegin);
  info.NamesParsed = FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT | FLTFL_FILE_NAME_PARSED_EXTENSION |
                     FLTFL_FILE_NAME_PARSED_STREAM | FLTFL_FILE_NAME_PARSED_PARENT_DIR;
  TraceCall("FltParseFileNameInformation", STATUS_SUCCESS);
  return STATUS_SUCCESS;
}

extern "C" VOID FLTAPI FltReleaseFileNameInformation(PFLT_FILE_NAME_INFORMATION FileNameInformation) {
  NameInfo* name = NameOf(FileNameInformation);
  if (name == nullptr) {
    Violation("FltReleaseFileNameInformation", "%p is not live file name information (released twice?)",
              static_cast<void*>(FileNameInformation));
    return;
  }
  if (--name->references == 0) {
    {
      std::lock_guard<std::mutex> lock(g_objects_mutex);
      g_names.erase(name);
    }
    name->magic = 0;
    delete name;
  }
}

// ---- I/O on the file being opened -------------------------------------------------------------------

static OpenRecord* OpenOf(PFILE_OBJECT FileObject, const char* routine) {
  OpenRecord* open = t_open;
  if (open == nullptr || FileObject != open->fileObject) {
    Violation(routine, "file object %p is not the one being opened on this thread", static_cast<void*>(FileObject));
    return nullptr;
  }
  return open;
}

extern "C" NTSTATUS FLTAPI FltReadFile(PFLT_INSTANCE InitiatingInstance, PFILE_OBJECT FileObject,
                                       PLARGE_INTEGER ByteOffset, ULONG Length, PVOID Buffer, ULONG Flags,
                                       PULONG BytesRead, PVOID CallbackRoutine, PVOID CallbackContext) {
  (void)CallbackContext;
  if (BytesRead != nullptr) *BytesRead = 0;
  if (!CheckInstance(InitiatingInstance, "FltReadFile")) return STATUS_INVALID_PARAMETER;
  OpenRecord* open = OpenOf(FileObject, "FltReadFile");
  if (open == nullptr) return STATUS_INVALID_PARAMETER;
  if (CallbackRoutine != nullptr) {
    Violation("FltReadFile", "asynchronous reads (a CallbackRoutine) are not supported by the harness");
    return STATUS_NOT_SUPPORTED_;
  }
  if (!open->postRunning) {
    Violation("FltReadFile", "reading a file before its create completed (pre-create)");
    return STATUS_INVALID_PARAMETER;
  }
  const uint64_t offset = ByteOffset != nullptr ? static_cast<uint64_t>(ByteOffset->QuadPart) : 0;
  NTSTATUS status;
  if ((Flags & FLTFL_IO_OPERATION_NON_CACHED) != 0 &&
      (Length % g_volumeInfo.sectorSize != 0 || offset % g_volumeInfo.sectorSize != 0 ||
       reinterpret_cast<uintptr_t>(Buffer) % g_volumeInfo.sectorSize != 0)) {
    // Non-cached I/O must be sector-aligned in offset, length and buffer address (the file systems refuse it).
    status = STATUS_INVALID_PARAMETER;
  } else if (open->request->read_fails != 0) {
    status = STATUS_UNEXPECTED_IO_ERROR_;
  } else if (offset >= open->request->content_length) {
    status = STATUS_END_OF_FILE;
  } else {
    const uint64_t n = std::min<uint64_t>(Length, open->request->content_length - offset);
    std::memcpy(Buffer, open->request->content + offset, static_cast<size_t>(n));
    if (BytesRead != nullptr) *BytesRead = static_cast<ULONG>(n);
    status = STATUS_SUCCESS;
  }
  TraceCall("FltReadFile", status);
  return status;
}

extern "C" NTSTATUS FLTAPI FltQueryInformationFile(PFLT_INSTANCE Instance, PFILE_OBJECT FileObject,
                                                   PVOID FileInformation, ULONG Length,
                                                   FILE_INFORMATION_CLASS FileInformationClass, PULONG LengthReturned) {
  if (LengthReturned != nullptr) *LengthReturned = 0;
  if (!CheckInstance(Instance, "FltQueryInformationFile")) return STATUS_INVALID_PARAMETER;
  OpenRecord* open = OpenOf(FileObject, "FltQueryInformationFile");
  if (open == nullptr) return STATUS_INVALID_PARAMETER;
  if (!open->postRunning) {
    Violation("FltQueryInformationFile", "querying a file before its create completed (pre-create)");
    return STATUS_INVALID_PARAMETER;
  }
  NTSTATUS status = STATUS_SUCCESS;
  ULONG written = 0;
  if (FileInformationClass == FileStandardInformation) {
    if (Length < sizeof(FILE_STANDARD_INFORMATION)) {
      status = STATUS_INFO_LENGTH_MISMATCH_;
    } else {
      FILE_STANDARD_INFORMATION info{};
      const bool directory = open->request->is_directory != 0;
      const uint64_t size = directory ? 0 : open->request->content_length;
      info.EndOfFile.QuadPart = static_cast<LONGLONG>(size);
      info.AllocationSize.QuadPart = static_cast<LONGLONG>((size + g_volumeInfo.sectorSize - 1) /
                                                           g_volumeInfo.sectorSize * g_volumeInfo.sectorSize);
      info.NumberOfLinks = 1;
      info.Directory = directory ? TRUE : FALSE;
      std::memcpy(FileInformation, &info, sizeof info);
      written = sizeof info;
    }
  } else if (FileInformationClass == FileInternalInformation) {
    if (Length < sizeof(FILE_INTERNAL_INFORMATION)) {
      status = STATUS_INFO_LENGTH_MISMATCH_;
    } else {
      FILE_INTERNAL_INFORMATION info{};
      info.IndexNumber.QuadPart = static_cast<LONGLONG>(open->request->file_id);
      std::memcpy(FileInformation, &info, sizeof info);
      written = sizeof info;
    }
  } else {
    status = STATUS_INVALID_INFO_CLASS_;
  }
  if (LengthReturned != nullptr) *LengthReturned = written;
  TraceCall(FileInformationClass == FileStandardInformation   ? "FltQueryInformationFile(FileStandardInformation)"
            : FileInformationClass == FileInternalInformation ? "FltQueryInformationFile(FileInternalInformation)"
                                                              : "FltQueryInformationFile",
            status);
  return status;
}

extern "C" NTSTATUS FLTAPI FltGetVolumeProperties(PFLT_VOLUME Volume, PFLT_VOLUME_PROPERTIES VolumeProperties,
                                                  ULONG VolumePropertiesLength, PULONG LengthReturned) {
  *LengthReturned = 0;
  if (Volume != &g_volume) {
    Violation("FltGetVolumeProperties", "%p is not a volume", static_cast<void*>(Volume));
    return STATUS_INVALID_PARAMETER;
  }
  // The fixed part, then the three names. A buffer for the fixed part only gets it and STATUS_BUFFER_OVERFLOW.
  static const char16_t kFsDriver[] = u"\\FileSystem\\Ntfs";
  static const char16_t kFsDevice[] = u"\\Ntfs";
  const std::u16string& real = g_volumeInfo.deviceName;
  const ULONG names = static_cast<ULONG>((sizeof kFsDriver - 2) + (sizeof kFsDevice - 2) + real.size() * 2);
  const ULONG needed = static_cast<ULONG>(sizeof(FLT_VOLUME_PROPERTIES)) + names;
  *LengthReturned = needed;
  if (VolumePropertiesLength < sizeof(FLT_VOLUME_PROPERTIES)) return STATUS_BUFFER_TOO_SMALL;
  FLT_VOLUME_PROPERTIES p{};
  p.DeviceType = FILE_DEVICE_DISK_FILE_SYSTEM;
  p.AlignmentRequirement = 0;  // FILE_BYTE_ALIGNMENT
  p.SectorSize = static_cast<USHORT>(g_volumeInfo.sectorSize);
  NTSTATUS status = STATUS_SUCCESS;
  if (VolumePropertiesLength < needed) {
    status = STATUS_BUFFER_OVERFLOW;
    *LengthReturned = sizeof(FLT_VOLUME_PROPERTIES);
  } else {
    auto* tail = reinterpret_cast<unsigned char*>(VolumeProperties) + sizeof(FLT_VOLUME_PROPERTIES);
    auto put = [&tail](UNICODE_STRING* s, const char16_t* text, size_t bytes) {
      std::memcpy(tail, text, bytes);
      s->Buffer = reinterpret_cast<PWCH>(tail);
      s->Length = s->MaximumLength = static_cast<USHORT>(bytes);
      tail += bytes;
    };
    put(&p.FileSystemDriverName, kFsDriver, sizeof kFsDriver - 2);
    put(&p.FileSystemDeviceName, kFsDevice, sizeof kFsDevice - 2);
    put(&p.RealDeviceName, real.data(), real.size() * 2);
  }
  std::memcpy(VolumeProperties, &p, sizeof p);
  return status;
}

extern "C" ULONG FLTAPI FltGetRequestorProcessId(PFLT_CALLBACK_DATA CallbackData) {
  OpenRecord* open = t_open;
  if (open == nullptr || CallbackData == nullptr || CallbackData->Iopb == nullptr ||
      CallbackData->Iopb->TargetFileObject != open->fileObject) {
    Violation("FltGetRequestorProcessId", "callback data %p is not an operation in progress on this thread",
              static_cast<void*>(CallbackData));
    return 0;
  }
  return open->request->process_id;
}

extern "C" VOID FLTAPI FltCancelFileOpen(PFLT_INSTANCE Instance, PFILE_OBJECT FileObject) {
  if (!CheckInstance(Instance, "FltCancelFileOpen")) return;
  OpenRecord* open = OpenOf(FileObject, "FltCancelFileOpen");
  if (open == nullptr) return;
  if (!open->postRunning) {
    Violation("FltCancelFileOpen", "only a post-create callback may cancel an open");
    return;
  }
  if (open->cancelled) {
    Violation("FltCancelFileOpen", "the open was cancelled twice");
    return;
  }
  open->cancelled = true;
  TraceCall("FltCancelFileOpen", STATUS_SUCCESS);
}
