<#
.SYNOPSIS
  Makes a signed driver package: fltsample.sys + fltsample.inf + fltsample.cat, signed with the
  test certificate from New-TestCertificate.ps1.
.DESCRIPTION
  Steps: copy the built driver and its stamped INF into driver-sample\driver\build\vm\package-<Platform>,
  sign the .sys (embedded signature), create the catalog with inf2cat, sign the catalog, verify
  both. Prints the package directory.
  UNVERIFIED: not run yet; the inf2cat /os values are the documented names for Windows 10 x64
  (10_X64) and ARM64 (10_RS3_ARM64).
#>
[CmdletBinding()]
param(
    [ValidateSet('Debug', 'Release')] [string] $Configuration = 'Release',
    [ValidateSet('x64', 'ARM64')] [string] $Platform = '',
    [string] $Thumbprint = ''
)
. (Join-Path $PSScriptRoot '_Common.ps1')
if (-not $Platform) { $Platform = Get-HostPlatform }
if (-not $Thumbprint) { $Thumbprint = Get-TestCertificateThumbprint }
New-StateDirectory | Out-Null

$outDir = Join-Path $script:DriverDir "build\$Platform\$Configuration"
$sys = Join-Path $outDir 'fltsample.sys'
if (-not (Test-Path $sys)) { throw "No ${sys}: run Build-Driver.ps1 first." }

$package = Join-Path $script:StateDir "package-$Platform"
if (Test-Path $package) { Remove-Item $package -Recurse -Force }
New-Item -ItemType Directory -Path $package | Out-Null
Copy-Item $sys $package

# The build stamps DriverVer and $ARCH$ into its copy of the INF; use that one when it exists.
$stamped = Get-ChildItem -Path $outDir -Recurse -Filter 'fltsample.inf' -ErrorAction SilentlyContinue |
    Sort-Object LastWriteTime -Descending | Select-Object -First 1
if ($stamped) {
    Copy-Item $stamped.FullName $package
} else {
    $arch = if ($Platform -eq 'ARM64') { 'arm64' } else { 'amd64' }
    $text = (Get-Content (Join-Path $script:DriverDir 'fltsample.inf') -Raw).Replace('$ARCH$', $arch)
    Set-Content -Path (Join-Path $package 'fltsample.inf') -Value $text -Encoding ASCII
}

$signtool = Find-KitTool 'signtool.exe'
$inf2cat = Find-KitTool 'inf2cat.exe'
$os = if ($Platform -eq 'ARM64') { '10_RS3_ARM64' } else { '10_X64' }

# /sm /s My: the key is in the machine store. No timestamp: test VMs are often offline, and test
# signing does not need one.
Invoke-Native -FilePath $signtool -ArgumentList @('sign', '/v', '/fd', 'sha256', '/sm', '/s', 'My', '/sha1', $Thumbprint,
    (Join-Path $package 'fltsample.sys')) | Out-Null
Invoke-Native -FilePath $inf2cat -ArgumentList @("/driver:$package", "/os:$os", '/verbose') | Out-Null
Invoke-Native -FilePath $signtool -ArgumentList @('sign', '/v', '/fd', 'sha256', '/sm', '/s', 'My', '/sha1', $Thumbprint,
    (Join-Path $package 'fltsample.cat')) | Out-Null

# /pa: Authenticode policy, which accepts our test root now that it is trusted on this machine.
Invoke-Native -FilePath $signtool -ArgumentList @('verify', '/pa', '/v', (Join-Path $package 'fltsample.cat')) | Out-Null
Invoke-Native -FilePath $signtool -ArgumentList @('verify', '/pa', '/v', (Join-Path $package 'fltsample.sys')) | Out-Null

Write-Output $package
