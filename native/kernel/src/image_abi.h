/*
 * image_abi.h - the interface between a driver image and the addon that loads it (the kernel harness's
 * bridge, native/src/kernel_bridge*.cc). Plain C, versioned: an image is a shared object (the driver's
 * objects + the harness, native/kernel/README.md) that exports one symbol, FLTMGR_KH_ENTRY_NAME.
 *
 * Threads: the image starts none. Every image function runs on the caller's thread; the bridge calls the
 * ones marked "blocking" on threads of its own, never on the JS thread, because driver code may wait
 * (push locks, rundown, FltSendMessage). Host functions marked "blocking" wait for the JS thread to
 * answer: only an image thread (never the JS thread) calls them.
 */
#ifndef FLTMGR_KERNEL_IMAGE_ABI_H
#define FLTMGR_KERNEL_IMAGE_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FLTMGR_KH_ABI_VERSION 1u
#define FLTMGR_KH_ENTRY_NAME "fltmgr_kernel_image_attach_v1"

/* Who a call runs as (kh::Caller): PsGetCurrentProcessId and the token SeCaptureSubjectContext sees. */
typedef struct fltmgr_kh_caller {
  uint32_t process_id;
  uint8_t admin;  /* the simulator counts this identity as an administrator */
  uint8_t system; /* LocalSystem (System process, kernel components) */
  uint8_t reserved[2];
  int64_t uid; /* -1: unknown */
  int64_t gid; /* primary group; -1: unknown */
} fltmgr_kh_caller;

/* What the host (the bridge, on behalf of the simulator) does for the image. */
typedef struct fltmgr_kh_host {
  uint32_t abi_version;
  void* context;
  /* Any thread. DbgPrintEx output and harness messages; level: DPFLTR_*_LEVEL. */
  void (*log)(void* context, uint32_t level, const char* line);
  /* Any thread. A verifier violation ("routine", "reason"); the image also keeps its own list. */
  void (*violation)(void* context, const char* routine, const char* reason);
  /* Any thread. The driver's Parameters key: 1 and the value when `name` (UTF-8) exists, else 0. The data
   * stays valid for the image's lifetime. */
  int (*registry_value)(void* context, const char* name, uint32_t* type, const uint8_t** data, uint32_t* size);
  /* Blocking. FltCreateCommunicationPort: `port` is the image's id for it. Returns an NTSTATUS
   * (STATUS_OBJECT_NAME_COLLISION when the name is taken). */
  int32_t (*create_port)(void* context, uint64_t port, const uint16_t* name, uint32_t name_chars,
                         int32_t max_connections);
  /* Blocking. FltCloseCommunicationPort: no new connections; existing ones live on. */
  void (*close_port)(void* context, uint64_t port);
  /* Blocking. FltCloseClientPort: the connection ends (the client sees the disconnect; the simulator then
   * runs DisconnectNotify, on another thread, unless it already ran). Returns once the host closed it. */
  void (*close_client)(void* context, uint64_t client);
  /* Blocking. FltSendMessage to connection `client`: waits for delivery and, when reply != NULL, for the
   * reply, at most *timeout_ms milliseconds (NULL: no limit). *reply_length: in, the reply capacity; out,
   * the bytes written (at most the capacity; STATUS_BUFFER_OVERFLOW when the reply was longer). Returns the
   * NTSTATUS FltSendMessage returns. */
  int32_t (*send_message)(void* context, uint64_t client, const void* data, uint32_t length, void* reply,
                          uint32_t* reply_length, const int64_t* timeout_ms);
  /* Blocking. FltUnregisterFilter's part in the simulator: every port closed, every connection ended, and
   * their DisconnectNotify calls returned. */
  void (*unregister_filter)(void* context);
} fltmgr_kh_host;

/* A simulated open (the IRP_MJ_CREATE the harness sends through the filter's callbacks). */
typedef struct fltmgr_kh_open_request {
  const uint16_t* path; /* the name FltGetFileNameInformation returns (UTF-16, not NUL-terminated) */
  uint32_t path_chars;
  uint32_t process_id;    /* FltGetRequestorProcessId, PsGetCurrentProcessId in the callbacks */
  const uint8_t* content; /* the file's bytes: FltReadFile reads them, FileStandardInformation sizes them */
  uint64_t content_length;
  uint64_t file_id;        /* FileInternalInformation */
  uint32_t desired_access; /* IO_SECURITY_CONTEXT.DesiredAccess */
  uint32_t create_options; /* Parameters.Create.Options (FILE_DIRECTORY_FILE, ...) */
  uint8_t kernel_mode;     /* RequestorMode KernelMode */
  uint8_t is_directory;    /* the open turned out to be a directory (FileStandardInformation.Directory) */
  uint8_t read_fails;      /* FltReadFile fails with STATUS_UNEXPECTED_IO_ERROR */
  uint8_t reserved;
} fltmgr_kh_open_request;

/* What the filter did with it. Buffers are the image's; release_open_result frees them. */
typedef struct fltmgr_kh_open_result {
  int32_t status;      /* what the opener gets: the final IoStatus.Status */
  int32_t pre_status;  /* FLT_PREOP_CALLBACK_STATUS; -1 when the filter has no pre-create */
  uint8_t post_called; /* the post-create callback ran */
  uint8_t cancelled;   /* FltCancelFileOpen was called */
  uint8_t reserved[2];
  uint32_t sends;      /* FltSendMessage calls made by this open */
  int32_t send_status; /* the last one's status */
  uint8_t* send_data;  /* the last one's message */
  uint32_t send_length;
  uint32_t reply_length; /* bytes of reply it got (0 when none) */
  uint8_t* reply_data;
  char* trace; /* the routines the open called, in order: "FltGetFileNameInformation=0x00000000;..." */
} fltmgr_kh_open_result;

/* What the image offers the host. */
typedef struct fltmgr_kh_image {
  uint32_t abi_version;
  /* Blocking. DriverEntry(DriverObject, RegistryPath). On failure the image is finished (no unload). */
  int32_t (*driver_entry)(const uint16_t* registry_path, uint32_t chars);
  /* Blocking. The unload Filter Manager performs (fltmc unload): FilterUnloadCallback (its status is
   * returned; a failure other than for a mandatory unload leaves the driver loaded), then the KMDF
   * EvtDriverUnload if one was registered, then the end-of-image verifier checks. */
  int32_t (*unload)(void);
  /* Blocking. ConnectNotify for connection `client` of port `port`, as `caller`. NTSTATUS. */
  int32_t (*connect)(uint64_t port, uint64_t client, const fltmgr_kh_caller* caller, const void* context,
                     uint32_t context_length);
  /* Blocking. DisconnectNotify (once per connection whose connect succeeded). */
  void (*disconnect)(uint64_t client);
  /* Blocking. MessageNotify: a FilterSendMessage from `client`, as `caller`. The buffers are the host's,
   * 8-byte aligned and valid for the call. NTSTATUS; *returned: output bytes written. */
  int32_t (*message)(uint64_t client, const fltmgr_kh_caller* caller, const void* input, uint32_t input_length,
                     void* output, uint32_t output_length, uint32_t* returned);
  /* Blocking. A simulated open through the filter's IRP_MJ_CREATE callbacks on the filter's one volume. */
  int32_t (*open_file)(const fltmgr_kh_open_request* request, fltmgr_kh_open_result* result);
  void (*release_open_result)(fltmgr_kh_open_result* result);
  /* Any thread, does not block. Whether port `port`'s security descriptor grants `caller` `desired`. */
  int (*port_access)(uint64_t port, const fltmgr_kh_caller* caller, uint32_t desired);
  /* Blocking. The driver's optional test hook (FltmgrHarnessQuery, see native/kernel/include/
   * fltmgr_harness.h): STATUS_NOT_IMPLEMENTED when the driver has none. */
  int32_t (*query)(uint32_t code, void* buffer, uint32_t length, uint32_t* returned);
  /* Any thread. Violations recorded so far. */
  uint32_t (*violation_count)(void);
} fltmgr_kh_image;

/* The one exported symbol. Called once per load, before anything else. NULL when the versions differ. */
typedef const fltmgr_kh_image* (*fltmgr_kh_attach_fn)(const fltmgr_kh_host* host);

#ifdef __cplusplus
}
#endif

#endif
