<#
.SYNOPSIS
  Restores the WDK from NuGet and builds fltsample.sys with MSBuild.
.DESCRIPTION
  Needs Visual Studio 2022 or later with "Desktop development with C++", the Spectre-mitigated
  libraries and the "Windows Driver Kit" component, and nuget.exe on PATH
  (winget install Microsoft.NuGet). Output: driver-sample\driver\build\<Platform>\<Configuration>.
  UNVERIFIED: not run yet.
#>
[CmdletBinding()]
param(
    [ValidateSet('Debug', 'Release')] [string] $Configuration = 'Release',
    [ValidateSet('x64', 'ARM64')] [string] $Platform = ''
)
. (Join-Path $PSScriptRoot '_Common.ps1')
if (-not $Platform) { $Platform = Get-HostPlatform }

$nuget = Get-Command nuget.exe -ErrorAction SilentlyContinue
if (-not $nuget) { throw 'nuget.exe not found on PATH: winget install Microsoft.NuGet' }

$vswhere = Join-Path ${env:ProgramFiles(x86)} 'Microsoft Visual Studio\Installer\vswhere.exe'
if (-not (Test-Path $vswhere)) { throw 'Visual Studio not found (no vswhere.exe).' }
$msbuild = & $vswhere -latest -prerelease -products * -requires Microsoft.Component.MSBuild -find 'MSBuild\**\Bin\MSBuild.exe' |
    Select-Object -First 1
if (-not $msbuild) { throw 'MSBuild not found by vswhere.' }

Push-Location $script:DriverDir
try {
    Invoke-Native -FilePath $nuget.Source -ArgumentList @('restore', 'packages.config', '-PackagesDirectory', 'packages') | Out-Null
    Invoke-Native -FilePath $msbuild -ArgumentList @('fltsample.sln', '-m', '-nologo',
        "-p:Configuration=$Configuration", "-p:Platform=$Platform") | Out-Null
} finally {
    Pop-Location
}

$outDir = Join-Path $script:DriverDir "build\$Platform\$Configuration"
if (-not (Test-Path (Join-Path $outDir 'fltsample.sys'))) { throw "Build produced no fltsample.sys in $outDir" }
Write-Output $outDir
