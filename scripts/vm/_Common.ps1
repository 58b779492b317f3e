# Shared helpers for scripts/vm/*.ps1 (dot-sourced). Windows PowerShell 5.1 compatible.
# UNVERIFIED: written and reviewed on Linux; no PowerShell was available to run it.

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '..\..')).Path
$script:DriverDir = Join-Path $script:RepoRoot 'driver-sample\driver'
$script:StateDir = Join-Path $script:DriverDir 'build\vm'
$script:ServiceName = 'FltSample'
$script:CertSubject = 'CN=fltmgr sample driver test signing (TEST ONLY)'

function Assert-Administrator {
    $principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'Run this from an elevated PowerShell (Run as administrator).'
    }
}

# Runs a native program and throws unless its exit code is allowed (PowerShell 5.1 does not).
function Invoke-Native {
    param(
        [Parameter(Mandatory)] [string] $FilePath,
        [string[]] $ArgumentList = @(),
        [int[]] $AllowedExitCodes = @(0)
    )
    Write-Host "> $FilePath $($ArgumentList -join ' ')"
    # Out-Host: show the tool's output without mixing it into this function's return value.
    & $FilePath @ArgumentList | Out-Host
    $code = $LASTEXITCODE
    if ($AllowedExitCodes -notcontains $code) {
        throw "$FilePath exited with code $code"
    }
    return $code
}

function Get-HostPlatform {
    if ($env:PROCESSOR_ARCHITECTURE -eq 'ARM64') { return 'ARM64' }
    return 'x64'
}

function New-StateDirectory {
    if (-not (Test-Path $script:StateDir)) {
        New-Item -ItemType Directory -Path $script:StateDir | Out-Null
    }
    return $script:StateDir
}

# Finds a WDK/SDK tool (signtool.exe, inf2cat.exe, stampinf.exe): the NuGet packages restored next
# to the driver first, then an installed Windows Kit, then PATH. Prefers the host architecture.
function Find-KitTool {
    param([Parameter(Mandatory)] [string] $Name)

    $hostDir = if ((Get-HostPlatform) -eq 'ARM64') { 'arm64' } else { 'x64' }
    $roots = @(
        (Join-Path $script:DriverDir 'packages'),
        (Join-Path ${env:ProgramFiles(x86)} 'Windows Kits\10\bin')
    ) | Where-Object { Test-Path $_ }

    foreach ($root in $roots) {
        $found = @(Get-ChildItem -Path $root -Recurse -Filter $Name -ErrorAction SilentlyContinue |
            Sort-Object FullName -Descending)
        $preferred = @($found | Where-Object { $_.Directory.Name -eq $hostDir })
        if ($preferred.Count -gt 0) { return $preferred[0].FullName }
        $x86 = @($found | Where-Object { $_.Directory.Name -eq 'x86' })
        if ($x86.Count -gt 0) { return $x86[0].FullName }
        if ($found.Count -gt 0) { return $found[0].FullName }
    }

    $command = Get-Command $Name -ErrorAction SilentlyContinue
    if ($command) { return $command.Source }
    throw "$Name not found (restore the WDK NuGet packages with Build-Driver.ps1 or install the WDK)"
}

function Get-TestCertificateThumbprint {
    $file = Join-Path $script:StateDir 'thumbprint.txt'
    if (-not (Test-Path $file)) {
        throw "No test certificate yet: run scripts\vm\New-TestCertificate.ps1 first."
    }
    return (Get-Content $file -Raw).Trim()
}

function Test-FilterLoaded {
    $lines = & fltmc.exe filters 2>$null
    return [bool]($lines | Select-String -Pattern "^\s*$($script:ServiceName)\s" -Quiet)
}
