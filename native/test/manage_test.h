// The management-request tests (manage_test.cc), run by compat_test.cc's main. dir: the run's temporary folder.
#pragma once

#include <string>

void TestManageEncoding();
void TestManageDecoding();
void TestManageRecords();
void TestManageFind(const std::string& dir);
void TestManageInstancesAndVolumes(const std::string& dir);
void TestManageCalls(const std::string& dir);
void TestManagePortsAndSecret();
void TestManageMalformed(const std::string& dir);
