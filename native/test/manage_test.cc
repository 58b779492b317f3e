// Tests of the management requests (native/sim/manage.{h,cc}) and the POSIX FltSim*/Filter* management calls
// (native/compat/compat_manage.cc) against the in-process fake simulator. Run by compat_test's main
// (native/test/run.sh: ASan/UBSan and TSan builds).
#include <cstdlib>
#include <string>
#include <vector>

#include "../compat/win32_compat.h"
#include "../sim/manage.h"
#include "fake_sim.h"
#include "manage_test.h"

using fltmgr::manage::Op;
using fltmgr::manage::Result;
using fltmgr::manage::Str;
using fltmgr::wire::Type;
using test::Bytes;
using test::FakeSim;
using test::ManageRequest;
using test::ServerConn;

namespace {

const HRESULT kInsufficient = static_cast<HRESULT>(0x8007007Au);
const HRESULT kNoMoreItems = static_cast<HRESULT>(0x80070103u);
const HRESULT kInvalidData = static_cast<HRESULT>(0x8007000Du);
const HRESULT kNoAnswer = static_cast<HRESULT>(0x8007006Du);
const HRESULT kFilterNotFound = static_cast<HRESULT>(0x801F0013u);
const HRESULT kNotFound = static_cast<HRESULT>(0x80070002u);

LPCWSTR W(const char16_t* s) { return reinterpret_cast<LPCWSTR>(s); }

// A name field of a record: `bytes` bytes at `offset` from the record's start.
Str At(const void* record, size_t offset, size_t bytes) {
  const uint8_t* p = static_cast<const uint8_t*>(record) + offset;
  Str s(bytes / 2, u'\0');
  std::memcpy(&s[0], p, bytes);
  return s;
}

Bytes ThreeFilters() {
  return test::Cat({test::FilterRecordBytes(1, 0, 3, u"WdFilter", u"328010"),
                    test::FilterRecordBytes(2, 0, 0, u"LegacyOne", u""),
                    test::FilterRecordBytes(1, 0, 1, u"scanner", u"265000")});
}

// Serves `count` management requests, one per connection, each answered by answer(request, i).
void ServeManage(FakeSim& sim, std::vector<ManageRequest>* seen, std::function<Bytes(const ManageRequest&)> answer,
                 int count = 1) {
  sim.Serve(
      [seen, answer](ServerConn& c) {
        ManageRequest r;
        if (!c.ReadManage(&r)) {
          ++test::Failures();
          std::fprintf(stderr, "  the client sent no well-formed MANAGE\n");
          return;
        }
        if (seen != nullptr) seen->push_back(r);
        c.AnswerManage(answer(r));
      },
      count);
}

}  // namespace

void TestManageEncoding() {
  std::vector<uint8_t> frame;
  const Str args[4] = {u"Ab", u"\\Device\\X", u"", u"I"};
  CHECK_EQ(fltmgr::manage::EncodeManage(Op::kAttach, 7, args, 4, "s3", &frame), S_OK);
  fltmgr::wire::FrameHeader h;
  CHECK(fltmgr::wire::DecodeClientHeader(frame.data(), &h) == fltmgr::wire::HeaderError::kNone);
  CHECK(h.type == Type::kManage);
  CHECK_EQ(h.id, 0u);
  const Bytes expect = test::Cat({test::U32(6),
                                  test::U32(7),
                                  {4, 0},
                                  test::Str16(u"Ab"),
                                  test::Str16(u"\\Device\\X"),
                                  test::Str16(u""),
                                  test::Str16(u"I"),
                                  {2, 0, 's', '3'}});
  CHECK(Bytes(frame.begin() + 12, frame.end()) == expect);
  CHECK_EQ(h.payloadSize, static_cast<uint32_t>(expect.size()));
  // The op's argument count, and the u16 string limit.
  CHECK_EQ(fltmgr::manage::EncodeManage(Op::kAttach, 7, args, 3, "", &frame), E_INVALIDARG);
  CHECK_EQ(fltmgr::manage::EncodeManage(static_cast<Op>(99), 7, nullptr, 0, "", &frame), E_INVALIDARG);
  const Str longest(32767, u'x');
  const Str tooLong(32768, u'x');
  CHECK_EQ(fltmgr::manage::EncodeManage(Op::kLoad, 1, &longest, 1, "", &frame), S_OK);
  CHECK_EQ(fltmgr::manage::EncodeManage(Op::kLoad, 1, &tooLong, 1, "", &frame), E_INVALIDARG);
  for (int op = 1; op <= 9; ++op) CHECK(fltmgr::manage::ArgCount(static_cast<Op>(op)) >= 0);
}

void TestManageDecoding() {
  Result r;
  auto decode = [&](Op op, const Bytes& p) {
    return fltmgr::manage::DecodeManageResult(op, p.data(), static_cast<uint32_t>(p.size()), &r);
  };
  const Bytes filters = test::ManageResultPayload(0, 3, ThreeFilters());
  CHECK(decode(Op::kFilters, filters));
  CHECK_EQ(r.filters.size(), 3u);
  CHECK(r.filters[0].name == u"WdFilter" && r.filters[0].altitude == u"328010" && r.filters[0].instances == 3);
  CHECK(r.filters[1].flags == 2 && r.filters[1].altitude.empty());
  // Every truncation and every extension of a valid answer is malformed.
  for (size_t n = 0; n < filters.size(); ++n) CHECK(!decode(Op::kFilters, Bytes(filters.begin(), filters.begin() + n)));
  CHECK(!decode(Op::kFilters, test::Cat({filters, {0}})));
  // Count larger or smaller than the records.
  CHECK(!decode(Op::kFilters, test::ManageResultPayload(0, 4, ThreeFilters())));
  CHECK(!decode(Op::kFilters, test::ManageResultPayload(0, 2, ThreeFilters())));
  CHECK(!decode(Op::kFilters, test::ManageResultPayload(0, 0xFFFFFFFFu, ThreeFilters())));
  // An odd string length; a length past the end.
  Bytes odd = test::ManageResultPayload(0, 1, test::FilterRecordBytes(1, 0, 0, u"a", u""));
  odd[8 + 12] = 1;
  CHECK(!decode(Op::kFilters, odd));
  Bytes past = test::ManageResultPayload(0, 1, test::FilterRecordBytes(1, 0, 0, u"a", u""));
  fltmgr::wire::PutU16(past.data() + 8 + 12, 0xFFFE);
  CHECK(!decode(Op::kFilters, past));
  // A failure carries no records.
  CHECK(decode(Op::kInstances, test::ManageResultPayload(0x801F0013u, 0)) && r.hr == kFilterNotFound);
  CHECK(!decode(Op::kInstances,
                test::ManageResultPayload(0x801F0013u, 1, test::InstanceRecordBytes(1, 0, 2, u"i", u"1", u"v", u"f"))));
  CHECK(!decode(Op::kLoad, test::ManageResultPayload(0x80070002u, 0, {0})));
  // ATTACH and DOS_NAME answer exactly one name; LOAD, UNLOAD and DETACH none.
  CHECK(decode(Op::kAttach, test::ManageResultPayload(0, 1, test::Str16(u"scanner Instance"))) &&
        r.name == u"scanner Instance");
  CHECK(!decode(Op::kAttach, test::ManageResultPayload(0, 0)));
  CHECK(!decode(Op::kDosName, test::ManageResultPayload(0, 2, test::Cat({test::Str16(u"C:"), test::Str16(u"D:")}))));
  CHECK(decode(Op::kDosName, test::ManageResultPayload(0, 1, test::Str16(u""))) && r.name.empty());
  CHECK(decode(Op::kUnload, test::ManageResultPayload(0, 0)));
  CHECK(!decode(Op::kDetach, test::ManageResultPayload(0, 1, test::Str16(u"x"))));
  CHECK(decode(Op::kVolumes,
               test::ManageResultPayload(0, 1, test::VolumeRecordBytes(0, 0, 28, u"\\Device\\V2", u"D:"))) &&
        r.volumes.size() == 1 && r.volumes[0].fileSystemType == 28 && r.volumes[0].dosName == u"D:");
  CHECK(
      decode(Op::kPorts, test::ManageResultPayload(0, 1, test::PortRecordBytes(4, 1, u"\\ScannerPort", u"scanner"))) &&
      r.ports.size() == 1 && r.ports[0].maxConnections == 4 && r.ports[0].port == u"\\ScannerPort");
}

void TestManageRecords() {
  alignas(8) uint8_t buf[512];
  DWORD got = 0;
  fltmgr::manage::FilterRecord f;
  f.flags = 1;
  f.frameId = 0;
  f.instances = 3;
  f.name = u"scanner";
  f.altitude = u"265000";

  // FILTER_AGGREGATE_STANDARD_INFORMATION: names after the fixed part, offsets from the record's start.
  CHECK_EQ(fltmgr::manage::BuildFilterRecord(f, FilterAggregateStandardInformation, buf, 10, &got), kInsufficient);
  const DWORD need = static_cast<DWORD>(sizeof(FILTER_AGGREGATE_STANDARD_INFORMATION) + 14 + 12);
  CHECK_EQ(got, need);
  CHECK_EQ(fltmgr::manage::BuildFilterRecord(f, FilterAggregateStandardInformation, buf, need - 1, &got),
           kInsufficient);
  std::memset(buf, 0xCC, sizeof(buf));
  CHECK_EQ(fltmgr::manage::BuildFilterRecord(f, FilterAggregateStandardInformation, buf, need, &got), S_OK);
  CHECK_EQ(got, need);
  const auto* asi = reinterpret_cast<const FILTER_AGGREGATE_STANDARD_INFORMATION*>(buf);
  CHECK_EQ(asi->NextEntryOffset, 0u);
  CHECK_EQ(asi->Flags, FLTFL_ASI_IS_MINIFILTER);
  CHECK_EQ(asi->Type.MiniFilter.NumberOfInstances, 3u);
  CHECK(At(buf, asi->Type.MiniFilter.FilterNameBufferOffset, asi->Type.MiniFilter.FilterNameLength) == u"scanner");
  CHECK(At(buf, asi->Type.MiniFilter.FilterAltitudeBufferOffset, asi->Type.MiniFilter.FilterAltitudeLength) ==
        u"265000");
  CHECK_EQ(buf[need], 0xCC);  // nothing written past the record

  // Legacy: the LegacyFilter part.
  fltmgr::manage::FilterRecord legacy = f;
  legacy.flags = 2;
  CHECK_EQ(fltmgr::manage::BuildFilterRecord(legacy, FilterAggregateBasicInformation, buf, sizeof(buf), &got), S_OK);
  const auto* abi = reinterpret_cast<const FILTER_AGGREGATE_BASIC_INFORMATION*>(buf);
  CHECK_EQ(abi->Flags, FLTFL_AGGREGATE_INFO_IS_LEGACYFILTER);
  CHECK(At(buf, abi->Type.LegacyFilter.FilterNameBufferOffset, abi->Type.LegacyFilter.FilterNameLength) == u"scanner");
  CHECK_EQ(got, static_cast<DWORD>(sizeof(FILTER_AGGREGATE_BASIC_INFORMATION) + 14));

  // FILTER_FULL_INFORMATION: the name inline.
  CHECK_EQ(fltmgr::manage::BuildFilterRecord(f, FilterFullInformation, buf, sizeof(buf), &got), S_OK);
  const auto* full = reinterpret_cast<const FILTER_FULL_INFORMATION*>(buf);
  CHECK_EQ(got, static_cast<DWORD>(offsetof(FILTER_FULL_INFORMATION, FilterNameBuffer) + 14));
  CHECK_EQ(full->NumberOfInstances, 3u);
  CHECK(At(buf, offsetof(FILTER_FULL_INFORMATION, FilterNameBuffer), full->FilterNameLength) == u"scanner");
  CHECK_EQ(fltmgr::manage::BuildFilterRecord(f, 3, buf, sizeof(buf), &got), E_INVALIDARG);

  fltmgr::manage::InstanceRecord i;
  i.flags = 1;
  i.fileSystemType = FLT_FSTYPE_NTFS;
  i.instance = u"scanner Instance";
  i.altitude = u"265000";
  i.volume = u"\\Device\\HarddiskVolume1";
  i.filter = u"scanner";
  CHECK_EQ(fltmgr::manage::BuildInstanceRecord(i, InstanceFullInformation, buf, sizeof(buf), &got), S_OK);
  const auto* ifi = reinterpret_cast<const INSTANCE_FULL_INFORMATION*>(buf);
  CHECK(At(buf, ifi->InstanceNameBufferOffset, ifi->InstanceNameLength) == i.instance);
  CHECK(At(buf, ifi->AltitudeBufferOffset, ifi->AltitudeLength) == i.altitude);
  CHECK(At(buf, ifi->VolumeNameBufferOffset, ifi->VolumeNameLength) == i.volume);
  CHECK(At(buf, ifi->FilterNameBufferOffset, ifi->FilterNameLength) == i.filter);
  CHECK_EQ(fltmgr::manage::BuildInstanceRecord(i, InstanceAggregateStandardInformation, buf, sizeof(buf), &got), S_OK);
  const auto* iasi = reinterpret_cast<const INSTANCE_AGGREGATE_STANDARD_INFORMATION*>(buf);
  CHECK_EQ(iasi->Flags, FLTFL_IASI_IS_MINIFILTER);
  CHECK_EQ(static_cast<uint32_t>(iasi->Type.MiniFilter.VolumeFileSystemType), 2u);
  CHECK(At(buf, iasi->Type.MiniFilter.VolumeNameBufferOffset, iasi->Type.MiniFilter.VolumeNameLength) == i.volume);
  CHECK_EQ(iasi->Type.MiniFilter.SupportedFeatures, 0u);
  CHECK_EQ(fltmgr::manage::BuildInstanceRecord(i, InstanceBasicInformation, buf, sizeof(buf), &got), S_OK);
  CHECK_EQ(got, static_cast<DWORD>(sizeof(INSTANCE_BASIC_INFORMATION) + i.instance.size() * 2));
  CHECK_EQ(fltmgr::manage::BuildInstanceRecord(i, InstancePartialInformation, buf, 8, &got), kInsufficient);
  CHECK_EQ(got, static_cast<DWORD>(sizeof(INSTANCE_PARTIAL_INFORMATION) + (i.instance.size() + i.altitude.size()) * 2));

  fltmgr::manage::VolumeRecord v;
  v.flags = 0;
  v.fileSystemType = FLT_FSTYPE_REFS;
  v.volume = u"\\Device\\HarddiskVolume2";
  CHECK_EQ(fltmgr::manage::BuildVolumeRecord(v, FilterVolumeStandardInformation, buf, sizeof(buf), &got), S_OK);
  const auto* vsi = reinterpret_cast<const FILTER_VOLUME_STANDARD_INFORMATION*>(buf);
  CHECK_EQ(static_cast<uint32_t>(vsi->FileSystemType), 28u);
  CHECK(At(buf, offsetof(FILTER_VOLUME_STANDARD_INFORMATION, FilterVolumeName), vsi->FilterVolumeNameLength) ==
        v.volume);
  CHECK_EQ(got,
           static_cast<DWORD>(offsetof(FILTER_VOLUME_STANDARD_INFORMATION, FilterVolumeName) + v.volume.size() * 2));
  CHECK_EQ(fltmgr::manage::BuildVolumeRecord(v, FilterVolumeBasicInformation, buf, sizeof(buf), &got), S_OK);
  CHECK(At(buf, 2, reinterpret_cast<const FILTER_VOLUME_BASIC_INFORMATION*>(buf)->FilterVolumeNameLength) == v.volume);
  // A file-system number past the enum's names is carried as is.
  v.fileSystemType = 77;
  CHECK_EQ(fltmgr::manage::BuildVolumeRecord(v, FilterVolumeStandardInformation, buf, sizeof(buf), &got), S_OK);
  uint32_t fsType = 0;
  std::memcpy(&fsType, buf + offsetof(FILTER_VOLUME_STANDARD_INFORMATION, FileSystemType), sizeof(fsType));
  CHECK_EQ(fsType, 77u);

  // Names that USHORT offsets cannot describe.
  fltmgr::manage::InstanceRecord huge = i;
  huge.instance.assign(32767, u'i');
  huge.altitude.assign(32767, u'a');
  std::vector<uint8_t> big(300000);
  CHECK_EQ(fltmgr::manage::BuildInstanceRecord(huge, InstanceFullInformation, big.data(), 300000, &got), kInvalidData);
}

void TestManageFind(const std::string& dir) {
  FakeSim sim(dir, "manage-find.sock");
  std::vector<ManageRequest> seen;
  ServeManage(sim, &seen, [](const ManageRequest&) { return test::ManageResultPayload(0, 3, ThreeFilters()); }, 3);
  alignas(8) uint8_t buf[256];
  DWORD got = 0;
  HANDLE find = nullptr;

  // Too small: the size needed, no handle.
  CHECK_EQ(FltSimFilterFindFirst(sim.endpoint().c_str(), FilterAggregateStandardInformation, buf, 8, &got, &find),
           kInsufficient);
  CHECK(find == INVALID_HANDLE_VALUE);
  CHECK_EQ(got, static_cast<DWORD>(sizeof(FILTER_AGGREGATE_STANDARD_INFORMATION) + 16 + 12));

  CHECK_EQ(
      FltSimFilterFindFirst(sim.endpoint().c_str(), FilterAggregateStandardInformation, buf, sizeof(buf), &got, &find),
      S_OK);
  CHECK(find != INVALID_HANDLE_VALUE && find != nullptr);
  const auto* asi = reinterpret_cast<const FILTER_AGGREGATE_STANDARD_INFORMATION*>(buf);
  CHECK(At(buf, asi->Type.MiniFilter.FilterNameBufferOffset, asi->Type.MiniFilter.FilterNameLength) == u"WdFilter");
  // Too small on Next: no advance.
  CHECK_EQ(FltSimFilterFindNext(find, FilterAggregateStandardInformation, buf, 4, &got), kInsufficient);
  CHECK_EQ(FltSimFilterFindNext(find, FilterAggregateStandardInformation, buf, sizeof(buf), &got), S_OK);
  CHECK_EQ(asi->Flags, FLTFL_ASI_IS_LEGACYFILTER);
  CHECK(At(buf, asi->Type.LegacyFilter.FilterNameBufferOffset, asi->Type.LegacyFilter.FilterNameLength) ==
        u"LegacyOne");
  CHECK_EQ(FltSimFilterFindNext(find, FilterAggregateStandardInformation, buf, sizeof(buf), &got), S_OK);
  CHECK_EQ(FltSimFilterFindNext(find, FilterAggregateStandardInformation, buf, sizeof(buf), &got), kNoMoreItems);
  CHECK_EQ(FltSimFilterFindNext(find, FilterAggregateStandardInformation, buf, sizeof(buf), &got), kNoMoreItems);
  // A find handle of another kind, a port-less value: E_HANDLE.
  CHECK_EQ(FltSimFilterVolumeFindNext(find, FilterVolumeBasicInformation, buf, sizeof(buf), &got), E_HANDLE);
  CHECK_EQ(FltSimFilterInstanceFindClose(find), E_HANDLE);
  CHECK_EQ(FltSimFilterFindClose(find), S_OK);
  CHECK_EQ(FltSimFilterFindNext(nullptr, FilterFullInformation, buf, sizeof(buf), &got), E_HANDLE);
  CHECK_EQ(FltSimFilterFindClose(INVALID_HANDLE_VALUE), E_HANDLE);

  // FilterFullInformation: minifilters only (the legacy one is skipped); CloseHandle closes a find handle too.
  CHECK_EQ(FltSimFilterFindFirst(sim.endpoint().c_str(), FilterFullInformation, buf, sizeof(buf), &got, &find), S_OK);
  CHECK_EQ(FltSimFilterFindNext(find, FilterFullInformation, buf, sizeof(buf), &got), S_OK);
  const auto* full = reinterpret_cast<const FILTER_FULL_INFORMATION*>(buf);
  CHECK(At(buf, offsetof(FILTER_FULL_INFORMATION, FilterNameBuffer), full->FilterNameLength) == u"scanner");
  CHECK_EQ(FltSimFilterFindNext(find, FilterFullInformation, buf, sizeof(buf), &got), kNoMoreItems);
  CHECK(CloseHandle(find));
  sim.Join();
  CHECK_EQ(seen.size(), 3u);
  for (const ManageRequest& r : seen) {
    CHECK_EQ(r.op, 1u);
    CHECK(r.args.empty());
    CHECK_EQ(r.pid, static_cast<uint32_t>(getpid()));
  }

  // Arguments checked before any request.
  CHECK_EQ(FltSimFilterFindFirst(sim.endpoint().c_str(), static_cast<FILTER_INFORMATION_CLASS>(3), buf, sizeof(buf),
                                 &got, &find),
           E_INVALIDARG);
  CHECK_EQ(FltSimFilterFindFirst(sim.endpoint().c_str(), FilterFullInformation, buf, sizeof(buf), nullptr, &find),
           E_INVALIDARG);
  CHECK_EQ(FltSimFilterFindFirst(sim.endpoint().c_str(), FilterFullInformation, buf, sizeof(buf), &got, nullptr),
           E_INVALIDARG);
  CHECK_EQ(FltSimFilterInstanceFindFirst(sim.endpoint().c_str(), nullptr, InstanceBasicInformation, buf, sizeof(buf),
                                         &got, &find),
           E_INVALIDARG);
}

void TestManageInstancesAndVolumes(const std::string& dir) {
  FakeSim sim(dir, "manage-inst.sock");
  std::vector<ManageRequest> seen;
  ServeManage(
      sim, &seen,
      [](const ManageRequest& r) {
        if (r.op == 3) {
          return test::ManageResultPayload(
              0, 2,
              test::Cat({test::VolumeRecordBytes(0, 0, 2, u"\\Device\\HarddiskVolume1", u"C:"),
                         test::VolumeRecordBytes(1, 0, 13, u"\\Device\\Mup", u"")}));
        }
        if (r.args.size() == 2 && r.args[0] == u"nosuch") return test::ManageResultPayload(0x801F0013u, 0);
        if (r.args.size() == 2 && r.args[1] == u"\\Device\\Empty") return test::ManageResultPayload(0, 0);
        return test::ManageResultPayload(0, 1,
                                         test::InstanceRecordBytes(1, 0, 2, u"scanner Instance", u"265000",
                                                                   u"\\Device\\HarddiskVolume1", u"scanner"));
      },
      5);
  alignas(8) uint8_t buf[512];
  DWORD got = 0;
  HANDLE find = nullptr;
  CHECK_EQ(FltSimFilterInstanceFindFirst(sim.endpoint().c_str(), W(u"scanner"), InstanceFullInformation, buf,
                                         sizeof(buf), &got, &find),
           S_OK);
  const auto* ifi = reinterpret_cast<const INSTANCE_FULL_INFORMATION*>(buf);
  CHECK(At(buf, ifi->VolumeNameBufferOffset, ifi->VolumeNameLength) == u"\\Device\\HarddiskVolume1");
  CHECK_EQ(FltSimFilterInstanceFindNext(find, InstanceFullInformation, buf, sizeof(buf), &got), kNoMoreItems);
  CHECK_EQ(FltSimFilterInstanceFindClose(find), S_OK);

  CHECK_EQ(FltSimFilterInstanceFindFirst(sim.endpoint().c_str(), W(u"nosuch"), InstanceBasicInformation, buf,
                                         sizeof(buf), &got, &find),
           kFilterNotFound);
  CHECK(find == INVALID_HANDLE_VALUE);

  // An empty list: ERROR_NO_MORE_ITEMS and no handle.
  CHECK_EQ(FltSimFilterVolumeInstanceFindFirst(sim.endpoint().c_str(), W(u"\\Device\\Empty"), InstanceBasicInformation,
                                               buf, sizeof(buf), &got, &find),
           kNoMoreItems);
  CHECK(find == INVALID_HANDLE_VALUE);
  CHECK_EQ(FltSimFilterVolumeInstanceFindFirst(sim.endpoint().c_str(), W(u"\\Device\\HarddiskVolume1"),
                                               InstancePartialInformation, buf, sizeof(buf), &got, &find),
           S_OK);
  CHECK_EQ(FltSimFilterVolumeInstanceFindClose(find), S_OK);

  CHECK_EQ(FltSimFilterVolumeFindFirst(sim.endpoint().c_str(), FilterVolumeStandardInformation, buf, sizeof(buf), &got,
                                       &find),
           S_OK);
  const auto* vsi = reinterpret_cast<const FILTER_VOLUME_STANDARD_INFORMATION*>(buf);
  CHECK_EQ(static_cast<uint32_t>(vsi->FileSystemType), 2u);
  CHECK_EQ(FltSimFilterVolumeFindNext(find, FilterVolumeStandardInformation, buf, sizeof(buf), &got), S_OK);
  CHECK_EQ(vsi->Flags, FLTFL_VSI_DETACHED_VOLUME);
  CHECK(At(buf, offsetof(FILTER_VOLUME_STANDARD_INFORMATION, FilterVolumeName), vsi->FilterVolumeNameLength) ==
        u"\\Device\\Mup");
  CHECK_EQ(FltSimFilterVolumeFindNext(find, FilterVolumeStandardInformation, buf, sizeof(buf), &got), kNoMoreItems);
  CHECK_EQ(FltSimFilterVolumeFindClose(find), S_OK);
  sim.Join();
  CHECK_EQ(seen.size(), 5u);
  if (seen.size() == 5) {
    CHECK(seen[0].op == 2 && seen[0].args.size() == 2 && seen[0].args[0] == u"scanner" && seen[0].args[1].empty());
    CHECK(seen[2].op == 2 && seen[2].args[0].empty() && seen[2].args[1] == u"\\Device\\Empty");
    CHECK(seen[4].op == 3 && seen[4].args.empty());
  }
}

void TestManageCalls(const std::string& dir) {
  FakeSim sim(dir, "manage-calls.sock");
  std::vector<ManageRequest> seen;
  ServeManage(
      sim, &seen,
      [](const ManageRequest& r) {
        switch (r.op) {
          case 4:
            return test::ManageResultPayload(r.args[0] == u"loaded" ? 0x80070420u : 0, 0);
          case 5:
            return test::ManageResultPayload(0, 0);
          case 6:
            return test::ManageResultPayload(0, 1, test::Str16(r.args[3].empty() ? u"scanner Instance" : r.args[3]));
          case 7:
            return test::ManageResultPayload(0x801F0015u, 0);
          case 8:
            return test::ManageResultPayload(0, 1, test::Str16(u"C:"));
          default:
            return test::ManageResultPayload(0x80070057u, 0);
        }
      },
      9);
  const char* ep = sim.endpoint().c_str();
  setenv("FLTMGR_SIMULATOR", ep, 1);
  CHECK_EQ(FilterLoad(W(u"scanner")), S_OK);  // the real name: FLTMGR_SIMULATOR
  unsetenv("FLTMGR_SIMULATOR");
  CHECK_EQ(FltSimFilterLoad(ep, W(u"loaded")), static_cast<HRESULT>(0x80070420u));
  CHECK_EQ(FltSimFilterUnload(ep, W(u"scanner")), S_OK);
  WCHAR created[64];
  CHECK_EQ(FltSimFilterAttach(ep, W(u"scanner"), W(u"C:"), nullptr, sizeof(created), created), S_OK);
  CHECK(Str(reinterpret_cast<const char16_t*>(created)) == u"scanner Instance");
  // dwCreatedInstanceNameLength is in bytes: "Mine" + NUL needs 10.
  CHECK_EQ(FltSimFilterAttachAtAltitude(ep, W(u"scanner"), W(u"C:"), W(u"123.5"), W(u"Mine"), 9, created),
           kInsufficient);
  CHECK_EQ(FltSimFilterAttachAtAltitude(ep, W(u"scanner"), W(u"C:"), W(u"123.5"), W(u"Mine"), 10, created), S_OK);
  CHECK(Str(reinterpret_cast<const char16_t*>(created)) == u"Mine");
  CHECK_EQ(FltSimFilterDetach(ep, W(u"scanner"), W(u"C:"), nullptr), static_cast<HRESULT>(0x801F0015u));
  // dwDosNameBufferSize is in WCHARs: "C:" + NUL needs 3.
  WCHAR dos[8] = {'x', 'x', 'x'};
  CHECK_EQ(FltSimFilterGetDosName(ep, W(u"\\Device\\HarddiskVolume1"), dos, 2), kInsufficient);
  CHECK_EQ(FltSimFilterGetDosName(ep, W(u"\\Device\\HarddiskVolume1"), dos, 3), S_OK);
  CHECK(Str(reinterpret_cast<const char16_t*>(dos)) == u"C:");
  sim.Join();
  CHECK_EQ(seen.size(), 9u);
  if (seen.size() == 9) {
    CHECK(seen[3].op == 6 && seen[3].args.size() == 4 && seen[3].args[2].empty() && seen[3].args[3].empty());
    CHECK(seen[4].args[2] == u"123.5" && seen[4].args[3] == u"Mine");
    CHECK(seen[6].op == 7 && seen[6].args.size() == 3 && seen[6].args[2].empty());
    CHECK(seen[8].op == 8 && seen[8].args[0] == u"\\Device\\HarddiskVolume1");
  }
  // Required arguments, checked before any request.
  CHECK_EQ(FltSimFilterLoad(ep, nullptr), E_INVALIDARG);
  CHECK_EQ(FltSimFilterAttach(ep, W(u"a"), nullptr, nullptr, 0, nullptr), E_INVALIDARG);
  CHECK_EQ(FltSimFilterAttachAtAltitude(ep, W(u"a"), W(u"C:"), nullptr, nullptr, 0, nullptr), E_INVALIDARG);
  CHECK_EQ(FltSimFilterGetDosName(ep, W(u"C:"), nullptr, 3), E_INVALIDARG);
  CHECK_EQ(FltSimFilterDetach(ep, nullptr, W(u"C:"), nullptr), E_INVALIDARG);
}

void TestManagePortsAndSecret() {
  FakeSim sim(std::string("m4n4ge"));
  std::vector<ManageRequest> seen;
  ServeManage(sim, &seen, [](const ManageRequest&) {
    return test::ManageResultPayload(0, 1, test::PortRecordBytes(2, 1, u"\\ScannerPort", u"scanner"));
  });
  alignas(8) uint8_t buf[128];
  DWORD got = 0;
  HANDLE find = nullptr;
  CHECK_EQ(FltSimPortFindFirst(sim.endpoint().c_str(), buf, sizeof(buf), &got, &find), S_OK);
  const auto* p = reinterpret_cast<const FLTSIM_PORT_INFORMATION*>(buf);
  CHECK_EQ(p->MaxConnections, 2u);
  CHECK_EQ(p->Connections, 1u);
  CHECK(At(buf, p->PortNameBufferOffset, p->PortNameLength) == u"\\ScannerPort");
  CHECK(At(buf, p->FilterNameBufferOffset, p->FilterNameLength) == u"scanner");
  CHECK_EQ(got, static_cast<DWORD>(sizeof(FLTSIM_PORT_INFORMATION) + 24 + 14));
  CHECK_EQ(FltSimPortFindNext(find, buf, sizeof(buf), &got), kNoMoreItems);
  CHECK_EQ(FltSimFilterFindClose(find), E_HANDLE);
  CHECK_EQ(FltSimPortFindClose(find), S_OK);
  sim.Join();
  CHECK(seen.size() == 1 && seen[0].op == 9 && seen[0].secret == "m4n4ge");
}

void TestManageMalformed(const std::string& dir) {
  // Each canned server misbehaves once; the call fails cleanly (ASan/UBSan watch the decoding).
  struct Case {
    const char* what;
    std::function<void(ServerConn&)> serve;
    HRESULT expect;
  };
  const Case cases[] = {
      {"close without answer", [](ServerConn& c) { c.Close(); }, kNoAnswer},
      {"truncated frame",
       [](ServerConn& c) {
         Bytes frame(12);
         fltmgr::wire::EncodeHeader(frame.data(), Type::kManageResult, 0, 40);
         c.WriteRaw(test::Cat({frame, test::U32(0)}));
         c.Close();
       },
       kNoAnswer},
      {"wrong frame type", [](ServerConn& c) { c.Write(Type::kConnectResult, 0, test::U32(0)); }, kInvalidData},
      {"nonzero id", [](ServerConn& c) { c.Write(Type::kManageResult, 5, test::ManageResultPayload(0, 0)); },
       kInvalidData},
      {"bad version",
       [](ServerConn& c) {
         Bytes frame(12);
         fltmgr::wire::EncodeHeader(frame.data(), Type::kManageResult, 0, 8);
         frame[4] = 9;
         c.WriteRaw(test::Cat({frame, test::ManageResultPayload(0, 0)}));
       },
       kInvalidData},
      {"count past the records",
       [](ServerConn& c) { c.Write(Type::kManageResult, 0, test::ManageResultPayload(0, 1000000, ThreeFilters())); },
       kInvalidData},
      {"odd string",
       [](ServerConn& c) {
         c.Write(
             Type::kManageResult, 0,
             test::Cat(
                 {test::U32(0), test::U32(1), test::U32(1), test::U32(0), test::U32(0), {3, 0, 'a', 0, 'b'}, {0, 0}}));
       },
       kInvalidData},
      {"records with a failure",
       [](ServerConn& c) {
         c.Write(Type::kManageResult, 0, test::ManageResultPayload(0x80070005u, 3, ThreeFilters()));
       },
       kInvalidData},
      {"short payload", [](ServerConn& c) { c.Write(Type::kManageResult, 0, test::U32(0)); }, kInvalidData},
  };
  for (const Case& k : cases) {
    FakeSim sim(dir, "manage-bad.sock");
    sim.Serve([&](ServerConn& c) {
      ManageRequest r;
      CHECK(c.ReadManage(&r));
      k.serve(c);
    });
    alignas(8) uint8_t buf[256];
    DWORD got = 7;
    HANDLE find = nullptr;
    const HRESULT hr =
        FltSimFilterFindFirst(sim.endpoint().c_str(), FilterFullInformation, buf, sizeof(buf), &got, &find);
    sim.Join();
    if (hr != k.expect) std::fprintf(stderr, "  case: %s (0x%08x)\n", k.what, static_cast<unsigned>(hr));
    CHECK_EQ(hr, k.expect);
    CHECK(find == INVALID_HANDLE_VALUE);
    CHECK_EQ(got, 0u);
  }

  // No endpoint; an endpoint this client cannot reach; nobody listening.
  unsetenv("FLTMGR_SIMULATOR");
  CHECK_EQ(FilterLoad(W(u"x")), kNotFound);
  CHECK_EQ(FltSimFilterLoad("pipe:\\\\.\\pipe\\x#s", W(u"x")), static_cast<HRESULT>(0x80070032u));
  CHECK_EQ(FltSimFilterLoad("not an endpoint", W(u"x")), E_INVALIDARG);
  CHECK_EQ(FltSimFilterLoad((dir + "/nobody.sock").c_str(), W(u"x")), kNotFound);

  // A simulator that never answers: the connect timeout bounds the request.
  FakeSim silent(dir, "manage-silent.sock");
  silent.Serve([](ServerConn& c) {
    ManageRequest r;
    CHECK(c.ReadManage(&r));
    c.WaitEof();
  });
  setenv("FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS", "200", 1);
  CHECK_EQ(FltSimFilterUnload(silent.endpoint().c_str(), W(u"x")), static_cast<HRESULT>(0x800705B4u));
  unsetenv("FLTMGR_SIMULATOR_CONNECT_TIMEOUT_MS");
  silent.Join();
}
