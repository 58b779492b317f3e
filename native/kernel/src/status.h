// status.h - NTSTATUS values the harness returns that the driver headers do not declare (a driver that
// tests for one adds it to include/fltmgr_kernel_nt.h, keeping one definition). Values: the NTSTATUS
// reference; lib/status.ts has the same numbers for the TypeScript side.
#pragma once

#include "nt.h"

namespace kh {
constexpr NTSTATUS kStatus(uint32_t v) { return static_cast<NTSTATUS>(v); }
constexpr NTSTATUS STATUS_NOT_IMPLEMENTED_ = kStatus(0xC0000002u);
constexpr NTSTATUS STATUS_INVALID_INFO_CLASS_ = kStatus(0xC0000003u);
constexpr NTSTATUS STATUS_INFO_LENGTH_MISMATCH_ = kStatus(0xC0000004u);
constexpr NTSTATUS STATUS_OBJECT_NAME_INVALID_ = kStatus(0xC0000033u);
constexpr NTSTATUS STATUS_OBJECT_NAME_COLLISION_ = kStatus(0xC0000035u);
constexpr NTSTATUS STATUS_NOT_SUPPORTED_ = kStatus(0xC00000BBu);
constexpr NTSTATUS STATUS_UNEXPECTED_IO_ERROR_ = kStatus(0xC00000E9u);
constexpr NTSTATUS STATUS_NOT_FOUND_ = kStatus(0xC0000225u);
constexpr NTSTATUS STATUS_UNKNOWN_REVISION_ = kStatus(0xC0000058u);
constexpr NTSTATUS STATUS_INVALID_ACL_ = kStatus(0xC0000077u);
constexpr NTSTATUS STATUS_INVALID_SID_ = kStatus(0xC0000078u);
constexpr NTSTATUS STATUS_ALLOTTED_SPACE_EXCEEDED_ = kStatus(0xC0000099u);
constexpr NTSTATUS STATUS_FLT_DO_NOT_DETACH_ = kStatus(0xC01C0010u);
constexpr NTSTATUS STATUS_FLT_DELETING_OBJECT_ = kStatus(0xC01C000Bu);
constexpr NTSTATUS STATUS_FLT_CONTEXT_ALREADY_DEFINED_ = kStatus(0xC01C002Cu);
constexpr NTSTATUS STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND_ = kStatus(0xC01C0016u);
constexpr NTSTATUS STATUS_FLT_NOT_INITIALIZED_ = kStatus(0xC01C0007u);
}  // namespace kh
