// ports.cc - communication ports: FltCreateCommunicationPort / FltCloseCommunicationPort, the connections
// (client ports) and their callbacks, FltCloseClientPort and FltSendMessage, all over the host's simulator
// (image_abi.h). docs/fltmgr-facts.md has the semantics.
#include <time.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include "core.h"
#include "objects.h"
#include "status.h"

struct _FLT_PORT {
  uint32_t magic = 0;
  bool server = false;
  uint64_t id = 0;  // server: the image's id; client: the host's
  // Server ports.
  std::u16string name;
  bool defaultSecurity = false;  // no descriptor given: administrators and SYSTEM only
  kh::SecurityCopy security;
  PVOID cookie = nullptr;
  PFLT_CONNECT_NOTIFY connect = nullptr;
  PFLT_DISCONNECT_NOTIFY disconnect = nullptr;
  PFLT_MESSAGE_NOTIFY message = nullptr;
  bool closed = false;
  bool leakReported = false;  // PortsReportOpen named it already (FltUnregisterFilter, then unload: once)
  // Client ports (connections).
  _FLT_PORT* serverPort = nullptr;
  PVOID connectionCookie = nullptr;
  bool connected = false;       // ConnectNotify succeeded
  bool disconnected = false;    // DisconnectNotify ran
  bool closedByDriver = false;  // FltCloseClientPort
  uint32_t sendsInFlight = 0;
};

namespace kh {
namespace {

constexpr uint32_t kPortMagic = 0x54524f50;  // "PORT"
std::mutex g_mutex;
std::condition_variable g_sendDone;
std::map<uint64_t, std::unique_ptr<_FLT_PORT>> g_servers;
std::map<uint64_t, std::unique_ptr<_FLT_PORT>> g_clients;
uint64_t g_nextServerId = 1;

// With g_mutex held: the live port object `port` points to, or nullptr.
_FLT_PORT* Lookup(PFLT_PORT port, bool server) {
  auto& table = server ? g_servers : g_clients;
  for (auto& entry : table) {
    if (entry.second.get() == port) return port;
  }
  return nullptr;
}

_FLT_PORT* ClientById(uint64_t id) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_clients.find(id);
  return it == g_clients.end() ? nullptr : it->second.get();
}

// FltSendMessage's Timeout (100 ns units; negative relative, positive absolute system time; NULL forever)
// as milliseconds from now, rounded up so that a short wait is never shortened to none.
int64_t TimeoutMs(const LARGE_INTEGER& timeout) {
  if (timeout.QuadPart < 0) {
    const uint64_t units = static_cast<uint64_t>(-(timeout.QuadPart + 1)) + 1;
    return static_cast<int64_t>((units + 9999) / 10000);
  }
  if (timeout.QuadPart == 0) return 0;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  constexpr int64_t kUnixEpochIn100ns = 116444736000000000LL;  // 1601-01-01 to 1970-01-01
  const int64_t now100ns = kUnixEpochIn100ns + static_cast<int64_t>(now.tv_sec) * 10000000 + now.tv_nsec / 100;
  return timeout.QuadPart <= now100ns ? 0 : (timeout.QuadPart - now100ns + 9999) / 10000;
}

}  // namespace

int32_t PortConnect(uint64_t port, uint64_t client, const Caller& caller, const void* context, uint32_t length) {
  _FLT_PORT* server;
  _FLT_PORT* connection;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_servers.find(port);
    if (it == g_servers.end() || it->second->closed) return STATUS_OBJECT_NAME_NOT_FOUND;
    if (g_clients.count(client) != 0) return STATUS_INVALID_PARAMETER;
    server = it->second.get();
    auto object = std::make_unique<_FLT_PORT>();
    object->magic = kPortMagic;
    object->id = client;
    object->serverPort = server;
    connection = object.get();
    g_clients.emplace(client, std::move(object));
  }
  // The context as Filter Manager hands it over: its own copy, 8-byte aligned.
  void* copy = nullptr;
  if (length != 0) {
    copy = std::aligned_alloc(16, (length + 15) / 16 * 16);
    if (copy == nullptr) return STATUS_INSUFFICIENT_RESOURCES;
    std::memcpy(copy, context, length);
  }
  NTSTATUS status = STATUS_SUCCESS;
  PVOID cookie = nullptr;
  if (server->connect != nullptr) {
    ScopedCaller scope(caller);
    status = server->connect(connection, server->cookie, copy, length, &cookie);
  }
  std::free(copy);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!NT_SUCCESS(status)) {
    if (connection->closedByDriver) {
      Violation("FltCloseClientPort", "called on a connection whose ConnectNotify then failed");
    }
    g_clients.erase(client);  // Filter Manager disposes of the client port of a failed connect
    return status;
  }
  connection->connected = true;
  connection->connectionCookie = cookie;
  return STATUS_SUCCESS;
}

void PortDisconnect(uint64_t client) {
  _FLT_PORT* connection = ClientById(client);
  if (connection == nullptr || !connection->connected || connection->disconnected) return;
  if (connection->serverPort->disconnect != nullptr) {
    connection->serverPort->disconnect(connection->connectionCookie);
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  connection->disconnected = true;
  if (!connection->closedByDriver) {
    Violation("DisconnectNotify", "returned without calling FltCloseClientPort for connection %llu",
              static_cast<unsigned long long>(client));
  }
}

int32_t PortMessage(uint64_t client, const Caller& caller, const void* input, uint32_t inputLength, void* output,
                    uint32_t outputLength, uint32_t* returned) {
  *returned = 0;
  _FLT_PORT* connection = ClientById(client);
  if (connection == nullptr || !connection->connected) return STATUS_PORT_DISCONNECTED;
  PFLT_MESSAGE_NOTIFY message = connection->serverPort->message;
  if (message == nullptr) return STATUS_NOT_SUPPORTED_;
  ULONG written = 0;
  NTSTATUS status;
  {
    ScopedCaller scope(caller);
    status = message(connection->connectionCookie, inputLength != 0 ? const_cast<void*>(input) : nullptr, inputLength,
                     outputLength != 0 ? output : nullptr, outputLength, &written);
  }
  if (written > outputLength) {
    Violation("MessageNotify", "reported %u bytes returned for an output buffer of %u", written, outputLength);
    written = outputLength;
  }
  *returned = written;
  return status;
}

bool PortAccess(uint64_t port, const Caller& caller, uint32_t desired) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_servers.find(port);
  if (it == g_servers.end()) return false;
  if (it->second->defaultSecurity) return caller.admin || caller.system;
  return AccessCheck(it->second->security, caller, desired);
}

size_t PortsReportOpen(const char* routine) {
  std::lock_guard<std::mutex> lock(g_mutex);
  size_t n = 0;
  for (auto& entry : g_servers) {
    if (entry.second->closed || entry.second->leakReported) continue;
    entry.second->leakReported = true;
    const std::u16string& text = entry.second->name;
    const std::string name = Utf16ToUtf8(reinterpret_cast<const WCHAR*>(text.data()), text.size());
    Violation(routine,
              "server port %s is still open (FltCloseCommunicationPort first: an open port keeps the "
              "filter referenced)",
              name.c_str());
    n++;
  }
  return n;
}

size_t PortsReportClients(const char* routine) {
  std::lock_guard<std::mutex> lock(g_mutex);
  size_t n = 0;
  for (auto& entry : g_clients) {
    if (entry.second->connected && !entry.second->closedByDriver && !entry.second->disconnected) {
      Violation(routine, "connection %llu: FltCloseClientPort was never called",
                static_cast<unsigned long long>(entry.first));
      n++;
    }
  }
  return n;
}

}  // namespace kh

using namespace kh;

extern "C" NTSTATUS FLTAPI FltCreateCommunicationPort(PFLT_FILTER Filter, PFLT_PORT* ServerPort,
                                                      POBJECT_ATTRIBUTES ObjectAttributes, PVOID ServerPortCookie,
                                                      PFLT_CONNECT_NOTIFY ConnectNotifyCallback,
                                                      PFLT_DISCONNECT_NOTIFY DisconnectNotifyCallback,
                                                      PFLT_MESSAGE_NOTIFY MessageNotifyCallback, LONG MaxConnections) {
  if (ServerPort == nullptr) {
    Violation("FltCreateCommunicationPort", "ServerPort is NULL");
    return STATUS_INVALID_PARAMETER;
  }
  *ServerPort = nullptr;
  if (!CheckFilter(Filter, "FltCreateCommunicationPort")) return STATUS_INVALID_PARAMETER;
  if (ObjectAttributes == nullptr || ObjectAttributes->ObjectName == nullptr ||
      ObjectAttributes->ObjectName->Buffer == nullptr || ObjectAttributes->ObjectName->Length == 0 ||
      ObjectAttributes->ObjectName->Length % 2 != 0) {
    return STATUS_OBJECT_NAME_INVALID_;
  }
  if (MaxConnections <= 0) return STATUS_INVALID_PARAMETER;
  if (ConnectNotifyCallback == nullptr || DisconnectNotifyCallback == nullptr) {
    // Both are required by the reference (DisconnectNotify is where FltCloseClientPort belongs).
    Violation("FltCreateCommunicationPort", "ConnectNotifyCallback and DisconnectNotifyCallback are required");
    return STATUS_INVALID_PARAMETER;
  }
  if ((ObjectAttributes->Attributes & OBJ_KERNEL_HANDLE) == 0) {
    Violation("FltCreateCommunicationPort",
              "ObjectAttributes without OBJ_KERNEL_HANDLE: the port handle would be "
              "usable from the user process that happens to run DriverEntry");
  }
  auto port = std::make_unique<_FLT_PORT>();
  port->magic = kPortMagic;
  port->server = true;
  port->name.assign(reinterpret_cast<const char16_t*>(ObjectAttributes->ObjectName->Buffer),
                    ObjectAttributes->ObjectName->Length / 2);
  if (ObjectAttributes->SecurityDescriptor == nullptr) {
    port->defaultSecurity = true;
  } else {
    const NTSTATUS captured = CaptureSecurity(ObjectAttributes->SecurityDescriptor, &port->security);
    if (!NT_SUCCESS(captured)) return captured;
    Log(DPFLTR_TRACE_LEVEL, "harness: port security " + DescribeDacl(port->security));
  }
  port->cookie = ServerPortCookie;
  port->connect = ConnectNotifyCallback;
  port->disconnect = DisconnectNotifyCallback;
  port->message = MessageNotifyCallback;
  uint64_t id;
  _FLT_PORT* object = port.get();
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    id = g_nextServerId++;
    port->id = id;
    g_servers.emplace(id, std::move(port));
  }
  const fltmgr_kh_host* host = Host();
  NTSTATUS status = STATUS_SUCCESS;
  if (host != nullptr) {
    status = host->create_port(host->context, id, reinterpret_cast<const uint16_t*>(object->name.data()),
                               static_cast<uint32_t>(object->name.size()), MaxConnections);
  }
  if (!NT_SUCCESS(status)) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_servers.erase(id);
    return status;
  }
  *ServerPort = object;
  return STATUS_SUCCESS;
}

extern "C" VOID FLTAPI FltCloseCommunicationPort(PFLT_PORT ServerPort) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    _FLT_PORT* port = Lookup(ServerPort, true);
    if (port == nullptr || port->closed) {
      Violation("FltCloseCommunicationPort", "%p is not an open server port (closed twice?)",
                static_cast<void*>(ServerPort));
      return;
    }
    port->closed = true;
    id = port->id;
  }
  const fltmgr_kh_host* host = Host();
  if (host != nullptr) host->close_port(host->context, id);
}

extern "C" VOID FLTAPI FltCloseClientPort(PFLT_FILTER Filter, PFLT_PORT* ClientPort) {
  if (ClientPort == nullptr) {
    Violation("FltCloseClientPort", "ClientPort is NULL");
    return;
  }
  CheckFilter(Filter, "FltCloseClientPort");
  uint64_t id;
  _FLT_PORT* connection;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (*ClientPort == nullptr) return;  // already closed through this variable
    connection = Lookup(*ClientPort, false);
    if (connection == nullptr) {
      Violation("FltCloseClientPort", "%p is not a client port", static_cast<void*>(*ClientPort));
      return;
    }
    if (connection->closedByDriver) {
      Violation("FltCloseClientPort", "connection %llu closed twice (through a copy of the pointer?)",
                static_cast<unsigned long long>(connection->id));
      *ClientPort = nullptr;
      return;
    }
    connection->closedByDriver = true;
    *ClientPort = nullptr;  // new FltSendMessage calls through this variable see the port closed
    id = connection->id;
  }
  const fltmgr_kh_host* host = Host();
  if (host != nullptr) host->close_client(host->context, id);
  // Synchronise with the sends in progress on this connection: the close ended them (PORT_DISCONNECTED).
  std::unique_lock<std::mutex> lock(g_mutex);
  g_sendDone.wait(lock, [connection] { return connection->sendsInFlight == 0; });
}

extern "C" NTSTATUS FLTAPI FltSendMessage(PFLT_FILTER Filter, PFLT_PORT* ClientPort, PVOID SenderBuffer,
                                          ULONG SenderBufferLength, PVOID ReplyBuffer, PULONG ReplyLength,
                                          PLARGE_INTEGER Timeout) {
  if (!CheckFilter(Filter, "FltSendMessage")) return STATUS_FLT_DELETING_OBJECT_;
  if (ClientPort == nullptr) {
    Violation("FltSendMessage", "ClientPort is NULL");
    return STATUS_INVALID_PARAMETER;
  }
  if (ReplyBuffer != nullptr && ReplyLength == nullptr) return STATUS_INVALID_PARAMETER;
  if (SenderBuffer == nullptr && SenderBufferLength != 0) return STATUS_INVALID_PARAMETER;
  _FLT_PORT* connection;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (*ClientPort == nullptr) return STATUS_PORT_DISCONNECTED;
    connection = Lookup(*ClientPort, false);
    if (connection == nullptr) {
      Violation("FltSendMessage", "%p is not a client port", static_cast<void*>(*ClientPort));
      return STATUS_INVALID_PARAMETER;
    }
    if (connection->closedByDriver) {
      Violation("FltSendMessage", "connection %llu was closed with FltCloseClientPort (a stale copy of the pointer)",
                static_cast<unsigned long long>(connection->id));
      return STATUS_PORT_DISCONNECTED;
    }
    connection->sendsInFlight++;
  }
  int64_t timeoutMs = 0;
  if (Timeout != nullptr) timeoutMs = TimeoutMs(*Timeout);
  uint32_t replyBytes = ReplyBuffer != nullptr ? *ReplyLength : 0;
  NTSTATUS status = STATUS_PORT_DISCONNECTED;
  const fltmgr_kh_host* host = Host();
  if (host != nullptr) {
    status =
        host->send_message(host->context, connection->id, SenderBuffer, SenderBufferLength, ReplyBuffer,
                           ReplyBuffer != nullptr ? &replyBytes : nullptr, Timeout != nullptr ? &timeoutMs : nullptr);
  }
  if (ReplyBuffer != nullptr) *ReplyLength = replyBytes;
  TraceSend(status, SenderBuffer, SenderBufferLength, ReplyBuffer, ReplyBuffer != nullptr ? replyBytes : 0);
  TraceCall("FltSendMessage", status);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    connection->sendsInFlight--;
  }
  g_sendDone.notify_all();
  return status;
}
